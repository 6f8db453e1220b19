//! Image directories: what `skiff build` writes from a manifest, `skiff run <image>`
//! boots and `skiff inspect` lists.
//!
//! ```text
//! busybox.skiff/
//!   kernel        a copy of the kernel image
//!   initrd.cpio   the root filesystem: program, files, /etc, run configuration
//!   run.toml      how to boot it: format, memory, cpus, machine, volumes
//! ```
//!
//! `run.toml` holds what is not inside the guest:
//!
//! ```toml
//! format = 1
//! memory = "256M"
//! cpus = 1
//! machine = "microvm"
//! net = "user"                     # the network keys only as the manifest gave them
//! ports = ["127.0.0.1:8080:80/tcp"]
//!
//! [[volumes]]
//! file = "/home/me/app/data.img"   # absolute host path
//! mount = "/data"
//! size = "64M"                     # optional: created by `skiff run` if missing
//! ```
//!
//! The program, its arguments, environment and working directory live in the initrd's
//! run configuration (`/.skiff/run`), which is also what the kernel reads; the volume
//! records there match `run.toml`'s volumes in order. The network keys are the
//! manifest's as written (ports in their full form): the defaults of the skiff that
//! runs the image fill in the rest.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skiff_bootproto::RunConfig;

use crate::cpio::reader::{read_archive, ReadEntry};
use crate::cpio::{S_IFDIR, S_IFLNK};
use crate::initrd::{self, describe_io, ImageSpec};
use crate::manifest::{self, Manifest};
use crate::net::{GuestAddress, NetSettings, Source};
use crate::options::{self, format_size, format_size_approx};
use crate::qemu::{shell_words, Machine};

/// The image format this skiff writes and reads.
pub const IMAGE_FORMAT: u32 = 1;
/// The run configuration file of an image directory.
pub const RUN_FILE: &str = "run.toml";
/// The kernel image file of an image directory.
pub const KERNEL_FILE: &str = "kernel";
/// The initrd file of an image directory.
pub const INITRD_FILE: &str = "initrd.cpio";
/// What `skiff build` appends to the program's name for the default output directory.
pub const IMAGE_SUFFIX: &str = ".skiff";

/// `run.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    pub format: u32,
    /// Guest memory, e.g. `256M`.
    pub memory: String,
    pub cpus: u32,
    pub machine: Machine,
    /// `user`, `none` or `tap:IFNAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    /// Published ports, `HOST_IP:HOST_PORT:GUEST_PORT/PROTOCOL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Name servers for the guest's resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// The guest's address on a tap network, `A.B.C.D/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<RunVolume>,
}

/// One volume of `run.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunVolume {
    /// Host path of the image file (absolute; a relative one is taken relative to the
    /// image directory).
    pub file: PathBuf,
    /// Absolute guest mount point.
    pub mount: String,
    /// Create and format the volume with this size if the file is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// A volume to attach to a VM: from an image's `run.toml` or a `--volume`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub file: PathBuf,
    pub mount: Vec<u8>,
    pub size: Option<u64>,
}

/// An image directory, opened and checked.
#[derive(Clone, Debug)]
pub struct Image {
    pub dir: PathBuf,
    pub run: RunFile,
    /// `run.memory` in bytes.
    pub memory: u64,
    /// `run.volumes`, resolved.
    pub volumes: Vec<VolumeSpec>,
    /// The network keys of `run.toml`, parsed and checked.
    pub network: NetSettings,
}

/// Whether `path` is an image directory (a directory with a `run.toml`).
pub fn is_image(path: &Path) -> bool {
    path.is_dir() && path.join(RUN_FILE).is_file()
}

impl Image {
    /// Open the image directory `dir`: read and check `run.toml`, and check that the
    /// kernel and initrd are there.
    pub fn open(dir: &Path) -> Result<Image, String> {
        let shown = dir.display();
        let metadata = fs::metadata(dir).map_err(|e| describe_io(dir, &e))?;
        if !metadata.is_dir() {
            return Err(format!(
                "{shown} is not a skiff image (images are directories made by skiff build)"
            ));
        }
        let run_path = dir.join(RUN_FILE);
        let text = match fs::read_to_string(&run_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "{shown} is not a skiff image (it has no {RUN_FILE}; make one with skiff build)"
                ))
            }
            Err(e) => return Err(describe_io(&run_path, &e)),
        };
        let run = parse_run_file(&text).map_err(|e| format!("{}: {e}", run_path.display()))?;
        for file in [KERNEL_FILE, INITRD_FILE] {
            if !dir.join(file).is_file() {
                return Err(format!(
                    "the image {shown} is incomplete: it has no {file}; rebuild it with skiff build"
                ));
            }
        }
        let memory = options::parse_memory_size(&run.memory)
            .map_err(|e| format!("{}: memory: {e}", run_path.display()))?;
        if run.cpus != 1 {
            return Err(format!(
                "{}: cpus = {}: Skiff runs its guest on one CPU today",
                run_path.display(),
                run.cpus
            ));
        }
        let mut volumes = Vec::new();
        for volume in &run.volumes {
            let mount = options::parse_mount_point(volume.mount.as_bytes())
                .map_err(|e| format!("{}: volume mount: {e}", run_path.display()))?;
            let size = match &volume.size {
                Some(size) => Some(
                    options::parse_volume_size(size)
                        .map_err(|e| format!("{}: volume size: {e}", run_path.display()))?,
                ),
                None => None,
            };
            volumes.push(VolumeSpec {
                file: dir.join(&volume.file),
                mount,
                size,
            });
        }
        let network = network_of(&run).map_err(|e| format!("{}: {e}", run_path.display()))?;
        Ok(Image {
            dir: dir.to_path_buf(),
            run,
            memory,
            volumes,
            network,
        })
    }

    pub fn kernel(&self) -> PathBuf {
        self.dir.join(KERNEL_FILE)
    }

    pub fn initrd(&self) -> PathBuf {
        self.dir.join(INITRD_FILE)
    }

    /// The initrd's entries and run configuration.
    pub fn read_initrd(&self) -> Result<(Vec<ReadEntry>, RunConfig), String> {
        let path = self.initrd();
        let bytes = fs::read(&path).map_err(|e| describe_io(&path, &e))?;
        let entries = read_archive(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let config =
            initrd::run_config_in(&entries).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((entries, config))
    }
}

/// The network settings of `run.toml`, parsed and checked as a manifest's are.
fn network_of(run: &RunFile) -> Result<NetSettings, String> {
    fn parse<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        text.parse().map_err(|e| format!("{key}: {e}"))
    }
    let address = |key: &str, text: &str| {
        parse::<std::net::Ipv4Addr>(key, text)
            .map_err(|_| format!("{key}: '{text}' is not an IPv4 address"))
    };
    let settings = NetSettings {
        mode: run.net.as_deref().map(|t| parse("net", t)).transpose()?,
        ports: run
            .ports
            .iter()
            .map(|t| parse("ports", t))
            .collect::<Result<_, _>>()?,
        ip: run.ip.as_deref().map(|t| parse("ip", t)).transpose()?,
        gateway: run
            .gateway
            .as_deref()
            .map(|t| address("gateway", t))
            .transpose()?,
        dhcp: run.dhcp,
        dns: run
            .dns
            .iter()
            .map(|t| address("dns", t))
            .collect::<Result<_, _>>()?,
    };
    settings.resolve(Source::Manifest)?;
    Ok(settings)
}

/// Parse `run.toml`, checking the format version before anything else so that an image
/// from a newer skiff gets a clear message rather than a complaint about a new key.
pub fn parse_run_file(text: &str) -> Result<RunFile, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    match table.get("format") {
        Some(toml::Value::Integer(n)) if *n == i64::from(IMAGE_FORMAT) => {}
        Some(toml::Value::Integer(n)) => {
            return Err(format!(
                "image format {n} is not supported (this skiff reads format {IMAGE_FORMAT}); \
                 rebuild the image with this skiff"
            ))
        }
        _ => return Err("no image format number; rebuild the image with skiff build".into()),
    }
    toml::from_str(text).map_err(|e| e.message().trim().to_string())
}

/// Render `run.toml`.
pub fn render_run_file(run: &RunFile) -> Result<String, String> {
    let body = toml::to_string(run).map_err(|e| format!("cannot write {RUN_FILE}: {e}"))?;
    Ok(format!(
        "# Written by skiff build; read by skiff run and skiff inspect.\n{body}"
    ))
}

/// The options of `skiff build`.
pub struct BuildRequest {
    /// The image directory to write (default: `<manifest dir>/<program name>.skiff`).
    pub output: Option<PathBuf>,
    /// The kernel image to copy in.
    pub kernel: PathBuf,
    /// `$SOURCE_DATE_EPOCH` resolved ([`initrd::source_date_epoch`]).
    pub mtime: u32,
}

/// What `skiff build` made.
pub struct Built {
    pub dir: PathBuf,
    pub entries: usize,
    pub kernel_bytes: u64,
    pub initrd_bytes: u64,
    /// Warnings to show (volumes that do not exist yet).
    pub warnings: Vec<String>,
}

/// The run configuration of `run.toml` for a manifest.
pub fn run_file_of(manifest: &Manifest) -> Result<RunFile, String> {
    let mut volumes = Vec::new();
    for volume in &manifest.volumes {
        if volume.file.to_str().is_none() {
            return Err(format!(
                "{}: volume file names must be UTF-8",
                volume.file.display()
            ));
        }
        volumes.push(RunVolume {
            file: volume.file.clone(),
            mount: manifest::shown(&volume.mount),
            size: volume.size.map(format_size),
        });
    }
    let network = &manifest.network;
    Ok(RunFile {
        format: IMAGE_FORMAT,
        memory: format!("{}M", options::memory_mib(manifest.memory)),
        cpus: manifest.cpus,
        machine: manifest.machine,
        net: network.mode.as_ref().map(ToString::to_string),
        ports: network.ports.iter().map(ToString::to_string).collect(),
        dns: network.dns.iter().map(ToString::to_string).collect(),
        ip: network.ip.map(|ip| ip.to_string()),
        gateway: network.gateway.map(|gateway| gateway.to_string()),
        dhcp: network.dhcp,
        volumes,
    })
}

/// Where `skiff build` writes by default: `<manifest dir>/<program file name>.skiff`.
pub fn default_output(manifest: &Manifest) -> PathBuf {
    let mut name = manifest
        .program
        .file_name()
        .unwrap_or_default()
        .to_os_string();
    name.push(IMAGE_SUFFIX);
    manifest.dir.join(name)
}

/// Build the image a manifest describes. `program` is the checked program's bytes.
pub fn build(request: &BuildRequest, manifest: &Manifest, program: &[u8]) -> Result<Built, String> {
    let mounts: Vec<Vec<u8>> = manifest.volumes.iter().map(|v| v.mount.clone()).collect();
    let network = manifest
        .network
        .resolve(Source::Manifest)
        .map_err(|e| format!("{}: {e}", manifest.path.display()))?;
    let spec = ImageSpec {
        network: &network,
        program,
        exe: manifest.exe.clone(),
        args: &manifest.args,
        env: manifest.env.clone(),
        cwd: manifest.cwd.clone(),
        files: &manifest.files,
        volumes: &mounts,
        mtime: request.mtime,
    };
    let (tree, _) =
        initrd::skiff_image(&spec).map_err(|e| format!("{}: {e}", manifest.path.display()))?;
    let run = render_run_file(&run_file_of(manifest)?)?;

    let output = request
        .output
        .clone()
        .unwrap_or_else(|| default_output(manifest));
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if output.exists() && !is_image(&output) && !is_empty_dir(&output) {
        return Err(format!(
            "{} exists and is not a skiff image; remove it or choose another -o",
            output.display()
        ));
    }
    // Write next to the destination, then move into place: a failed build leaves any
    // previous image as it was.
    let staging =
        crate::tempfiles::temp_dir(parent, ".skiff-build-").map_err(|e| describe_io(parent, &e))?;
    let kernel_copy = staging.path().join(KERNEL_FILE);
    let kernel_bytes =
        fs::copy(&request.kernel, &kernel_copy).map_err(|e| describe_io(&request.kernel, &e))?;
    let initrd_path = staging.path().join(INITRD_FILE);
    let initrd_file = fs::File::create(&initrd_path).map_err(|e| describe_io(&initrd_path, &e))?;
    let initrd_file = tree
        .write_to(BufWriter::new(initrd_file))?
        .into_inner()
        .map_err(|e| describe_io(&initrd_path, e.error()))?;
    let initrd_bytes = initrd_file
        .metadata()
        .map_err(|e| describe_io(&initrd_path, &e))?
        .len();
    let run_path = staging.path().join(RUN_FILE);
    fs::write(&run_path, run).map_err(|e| describe_io(&run_path, &e))?;
    set_dir_mode(staging.path())?;

    if output.exists() {
        fs::remove_dir_all(&output).map_err(|e| describe_io(&output, &e))?;
    }
    let staged = staging.keep();
    fs::rename(&staged, &output).map_err(|e| {
        let _ = fs::remove_dir_all(&staged);
        describe_io(&output, &e)
    })?;

    let warnings = manifest
        .volumes
        .iter()
        .filter(|v| v.size.is_none() && !v.file.exists())
        .map(|v| {
            format!(
                "volume {} does not exist yet; create it before running: skiff volume create --size 64M {}",
                v.file.display(),
                v.file.display()
            )
        })
        .collect();
    Ok(Built {
        dir: output,
        entries: tree.entry_count(),
        kernel_bytes,
        initrd_bytes,
        warnings,
    })
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// Image directories are world-readable like any build output (the staging directory
/// starts private).
fn set_dir_mode(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| describe_io(dir, &e))
}

/// `drwxr-xr-x` for a mode, as `ls -l` shows it.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        0o100000 => '-',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '?',
    };
    let mut out = String::from(kind);
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Write `skiff inspect`'s report of the image at `dir` to `out`.
pub fn inspect(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let image = Image::open(dir)?;
    let (entries, config) = image.read_initrd()?;
    let size_of = |path: PathBuf| {
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| describe_io(&path, &e))
    };
    let kernel_bytes = size_of(image.kernel())?;
    let initrd_bytes = size_of(image.initrd())?;
    let run_bytes = size_of(image.dir.join(RUN_FILE))?;
    let total = kernel_bytes + initrd_bytes + run_bytes;

    let mut text = String::new();
    let mut line = |key: &str, value: String| {
        text.push_str(&format!("{key:<9} {value}\n"));
    };
    line("image", image.dir.display().to_string());
    line("format", image.run.format.to_string());
    line("program", lossy(&config.exe));
    let argv: Vec<std::ffi::OsString> = config
        .argv
        .iter()
        .map(|a| std::ffi::OsString::from(lossy(a)))
        .collect();
    line("argv", shell_words(argv.iter().map(|a| a.as_os_str())));
    for (i, entry) in config.envp.iter().enumerate() {
        line(if i == 0 { "env" } else { "" }, lossy(entry));
    }
    if config.envp.is_empty() {
        line("env", "(empty)".into());
    }
    line("workdir", lossy(&config.cwd));
    line("machine", image.run.machine.name().to_string());
    line("memory", image.run.memory.clone());
    line("cpus", image.run.cpus.to_string());
    for (i, volume) in image.volumes.iter().enumerate() {
        let mut value = format!("{} -> {}", volume.file.display(), lossy(&volume.mount));
        match (volume.file.exists(), volume.size) {
            (true, _) => {}
            (false, Some(size)) => value.push_str(&format!(
                " (missing; skiff run creates it with {})",
                format_size(size)
            )),
            (false, None) => value.push_str(" (missing)"),
        }
        line(if i == 0 { "volumes" } else { "" }, value);
    }
    if image.volumes.is_empty() {
        line("volumes", "(none)".into());
    }
    let network = image.network.resolve(Source::Manifest)?;
    let chosen = if image.network.uses_default_mode() {
        " (default)"
    } else {
        ""
    };
    line("network", format!("{}{chosen}", network.mode));
    match network.address {
        Some(GuestAddress::Static { ip, gateway }) => line(
            "address",
            match gateway {
                Some(gateway) => format!("{ip} via {gateway}"),
                None => ip.to_string(),
            },
        ),
        Some(GuestAddress::Dhcp) => line("address", "by DHCP".into()),
        None => {}
    }
    if !network.dns.is_empty() {
        let servers: Vec<String> = network.dns.iter().map(ToString::to_string).collect();
        line("dns", servers.join(" "));
    }
    for (i, port) in network.ports.iter().enumerate() {
        line(if i == 0 { "ports" } else { "" }, port.describe());
    }
    if network.ports.is_empty() {
        line("ports", "(none)".into());
    }
    let sized = |bytes: u64| format!("{bytes} bytes ({})", format_size_approx(bytes));
    line("kernel", sized(kernel_bytes));
    line(
        "initrd",
        format!("{}, {} entries", sized(initrd_bytes), entries.len()),
    );
    line("total", sized(total));
    text.push('\n');
    let width = entries
        .iter()
        .map(|e| e.header.file_size.to_string().len())
        .max()
        .unwrap_or(1);
    for entry in &entries {
        let header = &entry.header;
        let mut name = format!("/{}", lossy(&header.name));
        if header.mode & 0o170000 == S_IFLNK {
            name.push_str(&format!(" -> {}", lossy(&entry.data)));
        }
        text.push_str(&format!(
            "{} {:>width$} {}\n",
            mode_string(header.mode),
            header.file_size,
            name
        ));
    }
    out.write_all(text.as_bytes())
        .map_err(|e| format!("writing the report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_file_round_trip() {
        let run = RunFile {
            format: IMAGE_FORMAT,
            memory: "256M".into(),
            cpus: 1,
            machine: Machine::Q35,
            net: Some("user".into()),
            ports: vec!["127.0.0.1:8080:80/tcp".into(), "0.0.0.0:53:53/udp".into()],
            dns: vec!["9.9.9.9".into()],
            ip: None,
            gateway: None,
            dhcp: true,
            volumes: vec![RunVolume {
                file: "/v/data.img".into(),
                mount: "/data".into(),
                size: Some("64M".into()),
            }],
        };
        let text = render_run_file(&run).unwrap();
        assert!(text.contains("machine = \"q35\""), "{text}");
        assert!(text.contains("[[volumes]]"), "{text}");
        assert_eq!(parse_run_file(&text).unwrap(), run);
        let parsed = network_of(&run).unwrap();
        assert_eq!(parsed.ports.len(), 2);
        assert_eq!(parsed.dns, [std::net::Ipv4Addr::new(9, 9, 9, 9)]);
        assert!(parsed.dhcp);
        let bare = RunFile {
            volumes: vec![],
            net: None,
            ports: vec![],
            dns: vec![],
            dhcp: false,
            ..run
        };
        let text = render_run_file(&bare).unwrap();
        for key in ["volumes", "net", "ports", "dns", "dhcp", "ip", "gateway"] {
            assert!(!text.contains(key), "{key} in {text}");
        }
        assert_eq!(parse_run_file(&text).unwrap(), bare);
    }

    #[test]
    fn run_file_errors() {
        let e = parse_run_file("format = 2\nmemory = \"1G\"\nwhatever = 1\n").unwrap_err();
        assert!(e.contains("image format 2 is not supported"), "{e}");
        let e = parse_run_file("memory = \"1G\"\n").unwrap_err();
        assert!(e.contains("no image format"), "{e}");
        let e = parse_run_file("format = 1\nmemory = \"1G\"\ncpus = 1\nmachine = \"pc\"\n")
            .unwrap_err();
        assert!(e.contains("unknown variant"), "{e}");
        let e = parse_run_file("format = 1\nmemory = \"1G\"\ncpus = 1\nmachine = \"q35\"\nx = 1\n")
            .unwrap_err();
        assert!(e.contains("unknown field `x`"), "{e}");
        let network = |extra: &str| {
            let text =
                format!("format = 1\nmemory = \"1G\"\ncpus = 1\nmachine = \"q35\"\n{extra}\n");
            network_of(&parse_run_file(&text).unwrap()).unwrap_err()
        };
        assert!(network("ports = [\"80\"]").starts_with("ports: '80' needs both ports"));
        assert!(network("net = \"bridge\"").starts_with("net: unknown network"));
        assert!(network("gateway = \"x\"").starts_with("gateway: 'x' is not an IPv4"));
        let e = network("net = \"none\"\nports = [\"8080:80\"]");
        assert!(e.contains("needs a network, but net = \"none\""), "{e}");
    }

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104754), "-rwsr-xr--");
        assert_eq!(mode_string(0o100600), "-rw-------");
    }
}
