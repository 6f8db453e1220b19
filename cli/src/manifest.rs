//! `skiff.toml`, the manifest `skiff build` reads: which program to run with which
//! arguments and environment, which host files to include, which volumes to mount, and
//! the VM's size and type.
//!
//! ```toml
//! [program]
//! path = "busybox"              # host path of the static ELF, relative to this file
//! args = ["sh", "/app/run.sh"]  # argv[1..]; argv[0] is the guest path
//! env = ["GREETING=hi"]         # KEY=VALUE entries over the defaults (optional)
//! workdir = "/"                 # optional
//! guest_path = "/bin/busybox"   # optional, default /bin/<file name of path>
//!
//! [[files]]                     # files or whole directories to include
//! host = "run.sh"               # relative to this file
//! guest = "/app/run.sh"         # optional: like `--file HOST` without :GUEST
//!
//! [[volumes]]
//! file = "data.img"             # a FAT volume image, relative to this file
//! mount = "/data"
//! size = "64M"                  # optional: `skiff run` creates the volume if missing
//!
//! [vm]
//! memory = "256M"               # default 512M
//! cpus = 1                      # only 1 today
//! machine = "microvm"           # or q35
//! net = "user"                  # or "none" or "tap:IFNAME" (default: see crate::net)
//! ports = ["8080:80", "5353:53/udp"]  # published as with -p (selects user networking)
//! dns = ["10.0.2.3"]            # name servers for /etc/resolv.conf (optional)
//! ip = "192.168.100.2/24"       # with a tap network: the guest's address...
//! gateway = "192.168.100.1"     # ...and gateway,
//! dhcp = false                  # or DHCP
//! ```
//!
//! Parsing is strict: an unknown key, a wrong type or a bad value is an error naming the
//! file, the line and the key. Nothing here reads the host's environment, so a manifest
//! builds the same image wherever it is built.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::initrd::{default_exe_path, describe_io, is_at_or_under};
use crate::net::{NetSettings, Source};
use crate::options::{
    self, normalize_guest_path, parse_mount_point, parse_volume_size, EnvArg, FileMapping,
};
use crate::qemu::Machine;

/// The manifest's file name, looked for when `skiff build` is given a directory.
pub const MANIFEST_NAME: &str = "skiff.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    program: RawProgram,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    volumes: Vec<RawVolume>,
    #[serde(default)]
    vm: RawVm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgram {
    path: Spanned<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    env: Option<Vec<Spanned<String>>>,
    workdir: Option<Spanned<String>>,
    guest_path: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    host: Spanned<String>,
    guest: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    file: Spanned<String>,
    mount: Spanned<String>,
    size: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVm {
    memory: Option<Spanned<String>>,
    cpus: Option<Spanned<i64>>,
    machine: Option<Spanned<String>>,
    net: Option<Spanned<String>>,
    ports: Option<Spanned<Vec<Spanned<String>>>>,
    dns: Option<Spanned<Vec<Spanned<String>>>>,
    ip: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    dhcp: Option<Spanned<bool>>,
}

/// A volume of a manifest, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestVolume {
    /// Absolute host path of the image file.
    pub file: PathBuf,
    /// Absolute, normalized guest mount point.
    pub mount: Vec<u8>,
    /// Create the volume with this many bytes if it is missing.
    pub size: Option<u64>,
}

/// A checked manifest with host paths made absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The directory relative paths are resolved against (absolute).
    pub dir: PathBuf,
    /// Absolute host path of the program.
    pub program: PathBuf,
    /// Guest path of the program (argv[0]).
    pub exe: Vec<u8>,
    pub args: Vec<OsString>,
    /// The environment (`KEY=VALUE`), defaults included.
    pub env: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub files: Vec<FileMapping>,
    pub volumes: Vec<ManifestVolume>,
    pub memory: u64,
    pub cpus: u32,
    pub machine: Machine,
    /// The network settings as written (checked; defaults are applied when the image
    /// is run, so that an image follows the defaults of the skiff that runs it).
    pub network: NetSettings,
}

/// Reports problems as `FILE:LINE: message`.
struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Reporter<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn at(&self, span: Range<usize>, message: impl std::fmt::Display) -> String {
        format!(
            "{}:{}: {message}",
            self.file.display(),
            self.line_of(span.start)
        )
    }

    /// The table header (`[program]`, `[[files]]`) in force at `offset`, if any.
    fn section_at(&self, offset: usize) -> Option<&str> {
        let end = offset.min(self.text.len());
        let line_start = self.text[..end].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        self.text[..line_end]
            .lines()
            .rev()
            .map(|line| line.split('#').next().unwrap_or("").trim())
            .find(|line| line.starts_with('['))
    }

    /// A TOML or schema error from the `toml` crate, rephrased in the manifest's terms.
    fn toml_error(&self, error: &toml::de::Error) -> String {
        let message = error.message().trim();
        let where_ = |offset: usize| {
            self.section_at(offset)
                .map(|s| format!(" in {s}"))
                .unwrap_or_else(|| " at the top level".to_string())
        };
        let span = error.span();
        let offset = span.as_ref().map_or(0, |s| s.start);
        let rephrased = if let Some(rest) = message.strip_prefix("unknown field ") {
            let (key, expected) = rest.split_once(", ").unwrap_or((rest, ""));
            let expected = expected.replace("expected", "expected keys:");
            format!("unknown key {key}{}; {expected}", where_(offset))
        } else if let Some(key) = message.strip_prefix("missing field ") {
            format!("missing key {key}{}", where_(offset))
        } else {
            message.to_string()
        };
        match span {
            Some(span) => self.at(span, rephrased),
            None => format!("{}: {rephrased}", self.file.display()),
        }
    }
}

/// Read and check the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, String> {
    let text = fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{}: not UTF-8 text", path.display()),
        _ => describe_io(path, &e),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).map_err(|e| describe_io(dir, &e))?;
    parse(&text, path, &dir)
}

/// The manifest a `skiff build` argument names: the file itself, or `skiff.toml` in a
/// directory.
pub fn manifest_path(arg: &Path) -> PathBuf {
    if arg.is_dir() {
        arg.join(MANIFEST_NAME)
    } else {
        arg.to_path_buf()
    }
}

fn guest_path(text: &str) -> Option<Vec<u8>> {
    if !text.starts_with('/') || text.contains('\0') {
        return None;
    }
    normalize_guest_path(text.as_bytes())
}

/// Check `text` (the manifest at `file`); relative host paths are resolved against `dir`.
pub fn parse(text: &str, file: &Path, dir: &Path) -> Result<Manifest, String> {
    let report = Reporter { file, text };
    let raw: RawManifest = toml::from_str(text).map_err(|e| report.toml_error(&e))?;
    let resolve = |host: &str| dir.join(host);

    // [program]
    let program = raw.program;
    if program.path.get_ref().is_empty() {
        return Err(report.at(program.path.span(), "program.path is empty"));
    }
    let program_path = resolve(program.path.get_ref());
    let exe = match &program.guest_path {
        Some(spanned) => guest_path(spanned.get_ref()).ok_or_else(|| {
            report.at(
                spanned.span(),
                "program.guest_path must be an absolute guest path without '..'",
            )
        })?,
        None => default_exe_path(&program_path).map_err(|e| report.at(program.path.span(), e))?,
    };
    if exe == b"/" {
        return Err(report.at(
            program
                .guest_path
                .as_ref()
                .map_or(program.path.span(), |g| g.span()),
            "program.guest_path cannot be /",
        ));
    }
    let mut args = Vec::new();
    for arg in &program.args {
        if arg.get_ref().contains('\0') {
            return Err(report.at(arg.span(), "program.args: an argument contains a NUL"));
        }
        args.push(OsString::from(arg.get_ref()));
    }
    let mut env_args = Vec::new();
    for entry in program.env.iter().flatten() {
        let text = entry.get_ref();
        match options::parse_env_arg(OsStr::new(text)) {
            Ok(arg @ EnvArg::Set { .. }) => env_args.push(arg),
            Ok(EnvArg::FromHost { .. }) => {
                return Err(report.at(
                    entry.span(),
                    format!(
                        "program.env: '{text}' needs a value (KEY=VALUE); a manifest does not \
                         copy the host's environment"
                    ),
                ))
            }
            Err(e) => return Err(report.at(entry.span(), format!("program.env: {e}"))),
        }
    }
    // The defaults are the ones of `skiff run`, except that TERM is `linux` rather than
    // the building host's: an image must not depend on where it was built.
    let env = options::build_environment(&env_args, |_| None);
    let cwd = match &program.workdir {
        Some(spanned) => guest_path(spanned.get_ref()).ok_or_else(|| {
            report.at(
                spanned.span(),
                "program.workdir must be an absolute guest path without '..'",
            )
        })?,
        None => b"/".to_vec(),
    };

    // [[files]]
    let mut files = Vec::new();
    for entry in &raw.files {
        let host = entry.host.get_ref();
        if host.is_empty() {
            return Err(report.at(entry.host.span(), "files.host is empty"));
        }
        let guest = match &entry.guest {
            Some(spanned) => guest_path(spanned.get_ref()).ok_or_else(|| {
                report.at(
                    spanned.span(),
                    "files.guest must be an absolute guest path without '..'",
                )
            })?,
            // As `--file HOST`: an absolute host path keeps its path, a relative one
            // lands under /.
            None => guest_path(&format!("/{host}")).ok_or_else(|| {
                report.at(
                    entry.host.span(),
                    format!("files.host '{host}' has '..': give files.guest too"),
                )
            })?,
        };
        let host_path = resolve(host);
        fs::symlink_metadata(&host_path)
            .map_err(|e| report.at(entry.host.span(), describe_io(&host_path, &e)))?;
        files.push(FileMapping {
            host: host_path,
            guest,
        });
    }

    // [[volumes]]
    let mut volumes: Vec<ManifestVolume> = Vec::new();
    for entry in &raw.volumes {
        if entry.file.get_ref().is_empty() {
            return Err(report.at(entry.file.span(), "volumes.file is empty"));
        }
        let file = resolve(entry.file.get_ref());
        let mount = parse_mount_point(entry.mount.get_ref().as_bytes())
            .map_err(|e| report.at(entry.mount.span(), format!("volumes.mount: {e}")))?;
        let size = match &entry.size {
            Some(size) => Some(
                parse_volume_size(size.get_ref())
                    .map_err(|e| report.at(size.span(), format!("volumes.size: {e}")))?,
            ),
            None => None,
        };
        if volumes.iter().any(|v| v.mount == mount) {
            return Err(report.at(
                entry.mount.span(),
                format!(
                    "two volumes are mounted at {}",
                    String::from_utf8_lossy(&mount)
                ),
            ));
        }
        if let Some(other) = volumes.iter().find(|v| same_file(&v.file, &file)) {
            return Err(report.at(
                entry.file.span(),
                format!(
                    "{} is already the volume at {}; each volume needs its own file",
                    entry.file.get_ref(),
                    String::from_utf8_lossy(&other.mount)
                ),
            ));
        }
        if is_at_or_under(&exe, &mount) {
            return Err(report.at(
                entry.mount.span(),
                format!(
                    "the volume at {} would hide the program {}",
                    String::from_utf8_lossy(&mount),
                    String::from_utf8_lossy(&exe)
                ),
            ));
        }
        if let Some(hidden) = files.iter().find(|f| is_at_or_under(&f.guest, &mount)) {
            return Err(report.at(
                entry.mount.span(),
                format!(
                    "the volume at {} would hide the file {} from the image",
                    String::from_utf8_lossy(&mount),
                    String::from_utf8_lossy(&hidden.guest)
                ),
            ));
        }
        volumes.push(ManifestVolume { file, mount, size });
    }

    // [vm]
    let memory = match &raw.vm.memory {
        Some(memory) => options::parse_memory_size(memory.get_ref())
            .map_err(|e| report.at(memory.span(), format!("vm.memory: {e}")))?,
        None => options::parse_memory_size(options::DEFAULT_MEMORY)?,
    };
    let cpus = match &raw.vm.cpus {
        Some(cpus) if *cpus.get_ref() != 1 => {
            return Err(report.at(
                cpus.span(),
                format!(
                    "vm.cpus = {}: Skiff runs its guest on one CPU today; use cpus = 1",
                    cpus.get_ref()
                ),
            ))
        }
        _ => 1,
    };
    let machine = match &raw.vm.machine {
        Some(machine) => match machine.get_ref().as_str() {
            "microvm" => Machine::Microvm,
            "q35" => Machine::Q35,
            other => {
                return Err(report.at(
                    machine.span(),
                    format!("vm.machine: unknown machine '{other}'; use microvm or q35"),
                ))
            }
        },
        None => Machine::Microvm,
    };
    let network = network_settings(&raw.vm, &report)?;

    Ok(Manifest {
        path: file.to_path_buf(),
        dir: dir.to_path_buf(),
        program: program_path,
        exe,
        args,
        env,
        cwd,
        files,
        volumes,
        memory,
        cpus,
        machine,
        network,
    })
}

/// Parse a value of `[vm]` with `FromStr`, reporting `vm.KEY: message` at its line.
fn parse_value<T: std::str::FromStr>(
    value: &Spanned<String>,
    key: &str,
    report: &Reporter,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .get_ref()
        .parse()
        .map_err(|e| report.at(value.span(), format!("vm.{key}: {e}")))
}

/// The network keys of `[vm]`, checked one by one and then together.
fn network_settings(vm: &RawVm, report: &Reporter) -> Result<NetSettings, String> {
    let list = |values: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<Spanned<String>> {
        values
            .as_ref()
            .map_or_else(Vec::new, |v| v.get_ref().clone())
    };
    let mut settings = NetSettings::default();
    if let Some(net) = &vm.net {
        settings.mode = Some(parse_value(net, "net", report)?);
    }
    for port in list(&vm.ports) {
        settings.ports.push(parse_value(&port, "ports", report)?);
    }
    for server in list(&vm.dns) {
        let address = server.get_ref().parse().map_err(|_| {
            report.at(
                server.span(),
                format!("vm.dns: '{}' is not an IPv4 address", server.get_ref()),
            )
        })?;
        settings.dns.push(address);
    }
    if let Some(ip) = &vm.ip {
        settings.ip = Some(parse_value(ip, "ip", report)?);
    }
    if let Some(gateway) = &vm.gateway {
        settings.gateway = Some(gateway.get_ref().parse().map_err(|_| {
            report.at(
                gateway.span(),
                format!("vm.gateway: '{}' is not an IPv4 address", gateway.get_ref()),
            )
        })?);
    }
    settings.dhcp = vm.dhcp.as_ref().is_some_and(|d| *d.get_ref());
    // A problem with the combination is reported where the network is chosen (or, when
    // it is implied, at the first network key).
    let span = vm
        .net
        .as_ref()
        .map(Spanned::span)
        .or_else(|| vm.ports.as_ref().map(Spanned::span))
        .or_else(|| vm.dns.as_ref().map(Spanned::span))
        .or_else(|| vm.ip.as_ref().map(Spanned::span))
        .or_else(|| vm.gateway.as_ref().map(Spanned::span))
        .or_else(|| vm.dhcp.as_ref().map(Spanned::span))
        .unwrap_or(0..0);
    settings
        .resolve(Source::Manifest)
        .map_err(|e| report.at(span, format!("vm: {e}")))?;
    Ok(settings)
}

/// Whether two host paths name the same file: equal paths, or the same inode when both
/// exist (a symlink or hard link to the other).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The guest path text of `bytes`, for messages.
pub fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetMode;

    fn dir() -> crate::tempfiles::TempPath {
        let dir = crate::tempfiles::test_dir();
        fs::write(dir.path().join("busybox"), b"elf").unwrap();
        fs::write(dir.path().join("run.sh"), b"echo hi").unwrap();
        fs::create_dir(dir.path().join("site")).unwrap();
        dir
    }

    fn parse_in(dir: &Path, text: &str) -> Result<Manifest, String> {
        parse(text, Path::new("skiff.toml"), dir)
    }

    const FULL: &str = r#"
[program]
path = "busybox"
args = ["sh", "/app/run.sh"]
env = ["GREETING=hi", "HOME=/home"]
workdir = "/app"
guest_path = "/usr/bin/busybox"

[[files]]
host = "run.sh"
guest = "/app/run.sh"

[[files]]
host = "site"

[[volumes]]
file = "data.img"
mount = "/data"
size = "64M"

[[volumes]]
file = "/abs/logs.img"
mount = "/var/log/"

[vm]
memory = "256M"
cpus = 1
machine = "q35"
net = "user"
ports = ["8080:80", "0.0.0.0:5353:53/udp"]
dns = ["9.9.9.9"]
"#;

    #[test]
    fn full_manifest() {
        let dir = dir();
        let m = parse_in(dir.path(), FULL).unwrap();
        assert_eq!(m.program, dir.path().join("busybox"));
        assert_eq!(m.exe, b"/usr/bin/busybox");
        assert_eq!(m.args, ["sh", "/app/run.sh"]);
        let env: Vec<_> = m.env.iter().map(|e| shown(e)).collect();
        assert_eq!(
            env,
            [
                "PATH=/bin:/usr/bin:/sbin:/usr/sbin",
                "TERM=linux",
                "GREETING=hi",
                "HOME=/home"
            ]
        );
        assert_eq!(m.cwd, b"/app");
        assert_eq!(
            m.files,
            [
                FileMapping {
                    host: dir.path().join("run.sh"),
                    guest: b"/app/run.sh".to_vec()
                },
                FileMapping {
                    host: dir.path().join("site"),
                    guest: b"/site".to_vec()
                }
            ]
        );
        assert_eq!(
            m.volumes,
            [
                ManifestVolume {
                    file: dir.path().join("data.img"),
                    mount: b"/data".to_vec(),
                    size: Some(64 << 20)
                },
                ManifestVolume {
                    file: "/abs/logs.img".into(),
                    mount: b"/var/log".to_vec(),
                    size: None
                }
            ]
        );
        assert_eq!((m.memory, m.cpus, m.machine), (256 << 20, 1, Machine::Q35));
        assert_eq!(m.network.mode, Some(NetMode::User));
        let ports: Vec<String> = m.network.ports.iter().map(|p| p.to_string()).collect();
        assert_eq!(ports, ["127.0.0.1:8080:80/tcp", "0.0.0.0:5353:53/udp"]);
        assert_eq!(m.network.dns, [std::net::Ipv4Addr::new(9, 9, 9, 9)]);
    }

    #[test]
    fn tap_network_manifest() {
        let dir = dir();
        let m = parse_in(
            dir.path(),
            "[program]\npath = \"busybox\"\n[vm]\nnet = \"tap:tap0\"\nip = \"192.168.100.2/24\"\n\
             gateway = \"192.168.100.1\"\n",
        )
        .unwrap();
        assert_eq!(m.network.mode, Some(NetMode::Tap("tap0".into())));
        assert_eq!(m.network.ip.unwrap().to_string(), "192.168.100.2/24");
        assert_eq!(
            m.network.gateway,
            Some(std::net::Ipv4Addr::new(192, 168, 100, 1))
        );
        let m = parse_in(
            dir.path(),
            "[program]\npath = \"busybox\"\n[vm]\nnet = \"tap:tap0\"\ndhcp = true\n",
        )
        .unwrap();
        assert!(m.network.dhcp);
    }

    #[test]
    fn minimal_manifest_defaults() {
        let dir = dir();
        let m = parse_in(dir.path(), "[program]\npath = \"busybox\"\n").unwrap();
        assert_eq!(m.exe, b"/bin/busybox");
        assert!(m.args.is_empty() && m.files.is_empty() && m.volumes.is_empty());
        assert_eq!(m.cwd, b"/");
        assert_eq!(m.env.len(), 3);
        assert_eq!(
            (m.memory, m.cpus, m.machine),
            (512 << 20, 1, Machine::Microvm)
        );
    }

    fn error(text: &str) -> String {
        let dir = dir();
        parse_in(dir.path(), text).unwrap_err()
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e = error("[program]\npath = \"busybox\"\nargz = [\"x\"]\n");
        assert!(
            e.starts_with("skiff.toml:3: unknown key `argz` in [program]"),
            "{e}"
        );
        assert!(e.contains("`args`"), "{e}");
        let e = error("[program]\npath = \"busybox\"\n\n[vm]\nmemory = \"1G\"\ncpu = 1\n");
        assert!(
            e.starts_with("skiff.toml:6: unknown key `cpu` in [vm]"),
            "{e}"
        );
        let e = error("[program]\npath = \"busybox\"\n[[volumes]]\nfile = \"a\"\nmount = \"/a\"\nsise = \"1M\"\n");
        assert!(
            e.starts_with("skiff.toml:6: unknown key `sise` in [[volumes]]"),
            "{e}"
        );
        let e = error("name = \"x\"\n[program]\npath = \"busybox\"\n");
        assert!(
            e.starts_with("skiff.toml:1: unknown key `name` at the top level"),
            "{e}"
        );
        let e = error("[programme]\npath = \"busybox\"\n");
        assert!(e.contains("unknown key `programme`"), "{e}");
    }

    #[test]
    fn missing_and_mistyped_values() {
        let e = error("[vm]\nmemory = \"1G\"\n");
        assert!(e.contains("missing key `program`"), "{e}");
        let e = error("[program]\nargs = []\n");
        assert!(e.contains("missing key `path`"), "{e}");
        assert!(
            e.starts_with("skiff.toml:1:") || e.starts_with("skiff.toml:2:"),
            "{e}"
        );
        let e = error("[program]\npath = \"busybox\"\nargs = \"sh\"\n");
        assert!(e.starts_with("skiff.toml:3:"), "{e}");
        let e = error("[program]\npath = \"busybox\"\n[vm]\nmemory = 256\n");
        assert!(e.starts_with("skiff.toml:4:"), "{e}");
        let e = error("[program\npath = 1\n");
        assert!(e.starts_with("skiff.toml:1:"), "{e}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let base = "[program]\npath = \"busybox\"\n";
        let cases = [
            ("[vm]\nmemory = \"16M\"\n", 4, "at least 32M"),
            ("[vm]\nmemory = \"lots\"\n", 4, "vm.memory"),
            ("[vm]\ncpus = 2\n", 4, "use cpus = 1"),
            ("[vm]\nmachine = \"pc\"\n", 4, "unknown machine 'pc'; use microvm or q35"),
            ("[[volumes]]\nfile = \"d.img\"\nmount = \"data\"\n", 5, "absolute"),
            ("[[volumes]]\nfile = \"d.img\"\nmount = \"/\"\n", 5, "cannot be mounted at /"),
            ("[[volumes]]\nfile = \"d.img\"\nmount = \"/d\"\nsize = \"1K\"\n", 6, "too small"),
            (
                "[[volumes]]\nfile = \"a.img\"\nmount = \"/d\"\n[[volumes]]\nfile = \"b.img\"\nmount = \"/d/\"\n",
                8,
                "two volumes are mounted at /d",
            ),
            (
                "[[volumes]]\nfile = \"a.img\"\nmount = \"/a\"\n[[volumes]]\nfile = \"./a.img\"\nmount = \"/b\"\n",
                7,
                "each volume needs its own file",
            ),
            ("[[volumes]]\nfile = \"a.img\"\nmount = \"/bin\"\n", 5, "would hide the program /bin/busybox"),
            (
                "[[files]]\nhost = \"run.sh\"\nguest = \"/data/run.sh\"\n[[volumes]]\nfile = \"a.img\"\nmount = \"/data\"\n",
                8,
                "would hide the file /data/run.sh",
            ),
            ("[[files]]\nhost = \"nope\"\n", 4, "nope: no such file or directory"),
            ("[[files]]\nhost = \"run.sh\"\nguest = \"rel\"\n", 5, "files.guest must be an absolute"),
            ("[[files]]\nhost = \"../x\"\n", 4, "give files.guest too"),
            ("[vm]\nports = [\"80\"]\n", 4, "vm.ports: '80' needs both ports"),
            (
                "[vm]\nports = [\n  \"8080:80\",\n  \"8080:81\",\n]\n",
                4,
                "vm: host port 8080/tcp is published twice",
            ),
            ("[vm]\nports = [\n  \"8080:80\",\n  \"x:81\",\n]\n", 6, "vm.ports: 'x:81'"),
            ("[vm]\nnet = \"bridge\"\n", 4, "vm.net: unknown network 'bridge'"),
            (
                "[vm]\nnet = \"none\"\nports = [\"8080:80\"]\n",
                4,
                "vm: publishing ports (ports) needs a network, but net = \"none\" gives the VM none",
            ),
            ("[vm]\nnet = \"tap:tap0\"\n", 4, "ip = \"A.B.C.D/N\" (with gateway"),
            ("[vm]\ndns = [\"one\"]\n", 4, "vm.dns: 'one' is not an IPv4 address"),
            ("[vm]\nip = \"10.0.0.1\"\n", 4, "vm.ip: '10.0.0.1' needs a prefix length"),
            (
                "[vm]\nmemory = \"1G\"\nip = \"10.0.0.2/24\"\n",
                5,
                "vm: ip and gateway are for net = \"tap:IFNAME\"",
            ),
            ("[vm]\ndhcp = \"yes\"\n", 4, "boolean"),
            ("[vm]\ngateway = \"10.0.0\"\n", 4, "vm.gateway: '10.0.0' is not an IPv4"),
        ];
        for (extra, line, needle) in cases {
            let e = error(&format!("{base}{extra}"));
            let prefix = format!("skiff.toml:{line}: ");
            assert!(
                e.starts_with(&prefix) && e.contains(needle),
                "{extra:?}: {e}"
            );
        }
        let program_cases = [
            ("env = [\"NOVALUE\"]", "needs a value"),
            ("env = [\"=x\"]", "empty variable name"),
            ("workdir = \"app\"", "program.workdir must be an absolute"),
            (
                "guest_path = \"/a/../b\"",
                "program.guest_path must be an absolute",
            ),
            ("guest_path = \"/\"", "cannot be /"),
            ("args = [\"a\\u0000b\"]", "NUL"),
        ];
        for (line, needle) in program_cases {
            let e = error(&format!("{base}{line}\n"));
            assert!(
                e.starts_with("skiff.toml:3: ") && e.contains(needle),
                "{line}: {e}"
            );
        }
        let e = error("[program]\npath = \"\"\n");
        assert!(e.starts_with("skiff.toml:2: program.path is empty"), "{e}");
    }

    #[test]
    fn manifest_paths() {
        let dir = dir();
        fs::write(
            dir.path().join(MANIFEST_NAME),
            "[program]\npath = \"busybox\"\n",
        )
        .unwrap();
        assert_eq!(manifest_path(dir.path()), dir.path().join(MANIFEST_NAME));
        let file = dir.path().join("other.toml");
        assert_eq!(manifest_path(&file), file);
        let m = load(&dir.path().join(MANIFEST_NAME)).unwrap();
        assert_eq!(m.dir, dir.path());
        let e = load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(
            e.ends_with("missing.toml: no such file or directory"),
            "{e}"
        );
    }
}
