//! Parsers for the values of skiff's options: memory and volume sizes, environment
//! entries, `--file` and `--volume` mappings and timeouts. Each is a pure function (clap calls them as value
//! parsers) so that the accepted syntax is pinned down by unit tests.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// The smallest guest memory Skiff accepts: the kernel, the unpacked initrd and a useful
/// heap do not fit in less.
pub const MIN_MEMORY_BYTES: u64 = 32 * MIB;

/// The guest memory size used when `--memory` is not given.
pub const DEFAULT_MEMORY: &str = "512M";

/// Parse a size such as `512M`, `1G`, `98304K` or `268435456` (bytes).
///
/// Suffixes are binary (K = 1024) and case-insensitive, and may be followed by `B` or
/// `iB` (`512MiB`, `1gb`), like QEMU's own `-m`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a size; use a number of bytes or a number with K, M or G (e.g. 512M, 1G)"
        ));
    }
    let unit = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit '{suffix}'; use K, M or G (e.g. 512M, 1G)"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parse a guest memory size ([`parse_size`]). Sizes below [`MIN_MEMORY_BYTES`] are
/// rejected because the guest could not boot in them.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < MIN_MEMORY_BYTES {
        return Err(format!(
            "{text} is too little memory; Skiff needs at least 32M"
        ));
    }
    Ok(bytes)
}

/// A size for humans: `64M`, `1G`, `1536K`, or bytes when it is not a whole KiB.
pub fn format_size(bytes: u64) -> String {
    for (unit, suffix) in [(TIB, "T"), (GIB, "G"), (MIB, "M"), (KIB, "K")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// A size for humans, rounded: `1.4 MiB`, `512 KiB`, `100 B`.
pub fn format_size_approx(bytes: u64) -> String {
    let mut value = bytes as f64;
    for suffix in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 {
            return if suffix == "B" {
                format!("{bytes} B")
            } else {
                format!("{value:.1} {suffix}")
            };
        }
        value /= 1024.0;
    }
    format!("{value:.1} TiB")
}

/// The smallest volume `skiff volume create` makes (a FAT12 filesystem with room for a
/// few files).
pub const MIN_VOLUME_BYTES: u64 = 64 * KIB;
/// The largest: FAT32's limit with 512-byte sectors.
pub const MAX_VOLUME_BYTES: u64 = 2 * TIB - 512;

/// Parse a volume size ([`parse_size`]): a whole number of 512-byte sectors between
/// [`MIN_VOLUME_BYTES`] and [`MAX_VOLUME_BYTES`].
pub fn parse_volume_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < MIN_VOLUME_BYTES {
        return Err(format!(
            "{text} is too small for a volume; use at least 64K"
        ));
    }
    if bytes > MAX_VOLUME_BYTES {
        return Err(format!(
            "{text} is too large for a FAT volume; use at most 2T"
        ));
    }
    if !bytes.is_multiple_of(512) {
        return Err(format!(
            "{text} is not a whole number of 512-byte sectors; use K, M or G"
        ));
    }
    Ok(bytes)
}

/// The guest memory in whole MiB, as QEMU's `-m` takes it (rounded up: QEMU maps RAM in
/// page-sized units and a partial MiB is never what anyone meant).
pub fn memory_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// One `-e/--env` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvArg {
    /// `-e KEY=VALUE`: set exactly this.
    Set { key: Vec<u8>, value: Vec<u8> },
    /// `-e KEY`: copy the host's value of KEY; if the host does not have KEY it stays
    /// unset in the guest (as `docker run -e KEY` does).
    FromHost { key: Vec<u8> },
}

impl EnvArg {
    pub fn key(&self) -> &[u8] {
        match self {
            EnvArg::Set { key, .. } | EnvArg::FromHost { key } => key,
        }
    }
}

/// Parse `KEY=VALUE` or `KEY`. The key must be non-empty; nothing may contain NUL (a
/// Linux environment cannot hold it).
pub fn parse_env_arg(arg: &OsStr) -> Result<EnvArg, String> {
    let bytes = arg.as_bytes();
    if bytes.contains(&0) {
        return Err("environment entries cannot contain a NUL byte".into());
    }
    match bytes.iter().position(|&b| b == b'=') {
        Some(0) => Err(format!(
            "'{}' has an empty variable name; use KEY=VALUE",
            arg.to_string_lossy()
        )),
        Some(eq) => Ok(EnvArg::Set {
            key: bytes[..eq].to_vec(),
            value: bytes[eq + 1..].to_vec(),
        }),
        None if bytes.is_empty() => Err("empty environment entry; use KEY=VALUE or KEY".into()),
        None => Ok(EnvArg::FromHost {
            key: bytes.to_vec(),
        }),
    }
}

/// Build the guest's environment: the user's `-e` entries (later ones replace earlier
/// ones with the same key, keeping the first position), then the defaults for keys the
/// user did not mention. `host_var` looks up host variables (`std::env::var_os` in the
/// real CLI; a table in tests).
///
/// The defaults are deliberately few: `PATH=/bin:/usr/bin:/sbin:/usr/sbin`, `HOME=/root`
/// (the image's only user is root) and `TERM` (the host's, else `linux`) so that
/// terminal programs format output for the terminal the user is looking at.
pub fn build_environment(
    args: &[EnvArg],
    host_var: impl Fn(&OsStr) -> Option<OsString>,
) -> Vec<Vec<u8>> {
    let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for arg in args {
        let value = match arg {
            EnvArg::Set { value, .. } => Some(value.clone()),
            EnvArg::FromHost { key } => host_var(OsStr::from_bytes(key))
                .map(|v| v.into_vec())
                .filter(|v| !v.contains(&0)),
        };
        match entries.iter_mut().find(|(k, _)| k.as_slice() == arg.key()) {
            Some(existing) => existing.1 = value,
            None => entries.push((arg.key().to_vec(), value)),
        }
    }
    let mentioned = |key: &[u8]| entries.iter().any(|(k, _)| k.as_slice() == key);
    let term = host_var(OsStr::new("TERM"))
        .map(|v| v.into_vec())
        .filter(|v| !v.is_empty() && !v.contains(&0))
        .unwrap_or_else(|| b"linux".to_vec());
    let defaults: [(&[u8], Vec<u8>); 3] = [
        (b"PATH", b"/bin:/usr/bin:/sbin:/usr/sbin".to_vec()),
        (b"HOME", b"/root".to_vec()),
        (b"TERM", term),
    ];
    let mut env: Vec<Vec<u8>> = Vec::new();
    for (key, value) in defaults {
        if !mentioned(key) {
            env.push([key, b"=", &value].concat());
        }
    }
    for (key, value) in entries {
        if let Some(value) = value {
            env.push([&key[..], b"=", &value[..]].concat());
        }
    }
    env
}

/// Apply `-e` entries to an existing environment (an image's): `KEY=VALUE` replaces the
/// entry for KEY or is appended; `KEY` takes the host's value, or removes KEY if the host
/// has none.
pub fn override_environment(
    env: &mut Vec<Vec<u8>>,
    args: &[EnvArg],
    host_var: impl Fn(&OsStr) -> Option<OsString>,
) {
    for arg in args {
        let key = arg.key();
        let value = match arg {
            EnvArg::Set { value, .. } => Some(value.clone()),
            EnvArg::FromHost { key } => host_var(OsStr::from_bytes(key))
                .map(|v| v.into_vec())
                .filter(|v| !v.contains(&0)),
        };
        let position = env
            .iter()
            .position(|e| e.len() > key.len() && e.starts_with(key) && e[key.len()] == b'=');
        match (position, value) {
            (Some(i), Some(value)) => env[i] = [key, b"=", &value].concat(),
            (None, Some(value)) => env.push([key, b"=", &value].concat()),
            (Some(i), None) => {
                env.remove(i);
            }
            (None, None) => {}
        }
    }
}

/// One `--file HOST[:GUEST]` argument: a host file or directory and where it appears in
/// the guest (an absolute, normalized path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMapping {
    pub host: PathBuf,
    pub guest: Vec<u8>,
}

/// Parse `HOST[:GUEST]`. The split is at the first `:`; GUEST must be absolute. Without
/// GUEST the file keeps its path if HOST is absolute, else it lands at `/` + HOST
/// (`--file data/x.txt` → `/data/x.txt`). Host paths with `..` need an explicit GUEST,
/// since "/" + `../x` would not mean anything.
pub fn parse_file_mapping(arg: &OsStr) -> Result<FileMapping, String> {
    let bytes = arg.as_bytes();
    let shown = arg.to_string_lossy();
    let (host, guest) = match bytes.iter().position(|&b| b == b':') {
        Some(colon) => (&bytes[..colon], Some(&bytes[colon + 1..])),
        None => (bytes, None),
    };
    if host.is_empty() {
        return Err(format!(
            "'{shown}' has an empty host path; use HOST[:GUEST]"
        ));
    }
    let host = PathBuf::from(OsStr::from_bytes(host));
    let guest = match guest {
        Some(guest) => {
            if !guest.starts_with(b"/") {
                return Err(format!(
                    "'{shown}': the guest path must be absolute (start with /)"
                ));
            }
            normalize_guest_path(guest)
                .ok_or_else(|| format!("'{shown}': the guest path must not contain '..'"))?
        }
        None => {
            let mut rooted = b"/".to_vec();
            rooted.extend_from_slice(host.as_os_str().as_bytes());
            normalize_guest_path(&rooted).ok_or_else(|| {
                format!(
                    "'{shown}': a host path with '..' needs an explicit guest path (HOST:/GUEST)"
                )
            })?
        }
    };
    Ok(FileMapping { host, guest })
}

/// One `--volume FILE:/MOUNT[:SIZE]` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeArg {
    /// The host image file.
    pub file: PathBuf,
    /// Absolute, normalized guest mount point (never `/`).
    pub mount: Vec<u8>,
    /// Create and format the volume with this size if the file does not exist.
    pub size: Option<u64>,
}

/// Parse `FILE:/MOUNT[:SIZE]`. The split is at the first `:`; MOUNT must be absolute and
/// not `/`. A last `:` followed by a digit starts SIZE.
pub fn parse_volume_arg(arg: &OsStr) -> Result<VolumeArg, String> {
    let bytes = arg.as_bytes();
    let shown = arg.to_string_lossy();
    let usage = "use FILE:/MOUNT or FILE:/MOUNT:SIZE";
    let Some(colon) = bytes.iter().position(|&b| b == b':') else {
        return Err(format!("'{shown}' has no mount point; {usage}"));
    };
    let (file, mut rest) = (&bytes[..colon], &bytes[colon + 1..]);
    if file.is_empty() {
        return Err(format!("'{shown}' has an empty file name; {usage}"));
    }
    let mut size = None;
    if let Some(last) = rest.iter().rposition(|&b| b == b':') {
        if rest.get(last + 1).is_some_and(u8::is_ascii_digit) {
            let text = String::from_utf8_lossy(&rest[last + 1..]);
            size = Some(parse_volume_size(&text).map_err(|e| format!("'{shown}': {e}"))?);
            rest = &rest[..last];
        }
    }
    let mount = parse_mount_point(rest).map_err(|e| format!("'{shown}': {e}"))?;
    Ok(VolumeArg {
        file: PathBuf::from(OsStr::from_bytes(file)),
        mount,
        size,
    })
}

/// Check and normalize a volume's guest mount point: absolute, no `..`, not `/`.
pub fn parse_mount_point(mount: &[u8]) -> Result<Vec<u8>, String> {
    if !mount.starts_with(b"/") {
        return Err("the mount point must be an absolute guest path (start with /)".into());
    }
    let normalized = normalize_guest_path(mount).ok_or("the mount point must not contain '..'")?;
    if normalized == b"/" {
        return Err("a volume cannot be mounted at / (the root is the initrd)".into());
    }
    if normalized.contains(&0) {
        return Err("the mount point must not contain a NUL byte".into());
    }
    Ok(normalized)
}

/// Normalize an absolute guest path: collapse `//` and `.`; `None` if it has `..`.
pub fn normalize_guest_path(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for component in Path::new(OsStr::from_bytes(path)).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                out.push(b'/');
                out.extend_from_slice(name.as_bytes());
            }
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// Parse a `--timeout` value the way `timeout(1)` reads its duration: a non-negative
/// decimal number with an optional unit `s` (default), `m`, `h` or `d`. Zero
/// (`Duration::ZERO`) means no timeout, as with `timeout(1)`.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, multiplier) = match trimmed.char_indices().last() {
        Some((i, 's')) => (&trimmed[..i], 1.0),
        Some((i, 'm')) => (&trimmed[..i], 60.0),
        Some((i, 'h')) => (&trimmed[..i], 3600.0),
        Some((i, 'd')) => (&trimmed[..i], 86400.0),
        _ => (trimmed, 1.0),
    };
    let invalid = || format!("'{text}' is not a duration; use seconds, e.g. 30 or 1.5 or 2m");
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = value * multiplier;
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_memory_size("1G"), Ok(GIB));
        assert_eq!(parse_memory_size("65536K"), Ok(64 * MIB));
        assert_eq!(parse_memory_size("98304k"), Ok(96 * MIB));
        assert_eq!(parse_memory_size("2GiB"), Ok(2 * GIB));
        assert_eq!(parse_memory_size("64mb"), Ok(64 * MIB));
        assert_eq!(parse_memory_size("33554432"), Ok(32 * MIB));
        assert_eq!(parse_memory_size("32M"), Ok(32 * MIB));
    }

    #[test]
    fn memory_sizes_rejected() {
        assert!(parse_memory_size("1536K")
            .unwrap_err()
            .contains("at least 32M"));
        let small = parse_memory_size("16M").unwrap_err();
        assert!(small.contains("at least 32M"), "{small}");
        assert!(parse_memory_size("33554431")
            .unwrap_err()
            .contains("at least 32M"));
        assert!(parse_memory_size("").is_err());
        assert!(parse_memory_size("M").is_err());
        assert!(parse_memory_size("12X")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_memory_size("1.5G").is_err());
        assert!(parse_memory_size("-1G").is_err());
        assert!(parse_memory_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_memory_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_for_humans() {
        assert_eq!(format_size(64 * MIB), "64M");
        assert_eq!(format_size(GIB), "1G");
        assert_eq!(format_size(1536 * KIB), "1536K");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size_approx(100), "100 B");
        assert_eq!(format_size_approx(1536 * KIB), "1.5 MiB");
        assert_eq!(format_size_approx(3 * GIB), "3.0 GiB");
    }

    #[test]
    fn volume_sizes() {
        assert_eq!(parse_volume_size("64M"), Ok(64 * MIB));
        assert_eq!(parse_volume_size("64K"), Ok(64 * KIB));
        assert_eq!(
            parse_volume_size("2T"),
            Err("2T is too large for a FAT volume; use at most 2T".into())
        );
        assert!(parse_volume_size("1K").unwrap_err().contains("too small"));
        assert!(parse_volume_size("100000")
            .unwrap_err()
            .contains("512-byte"));
        assert!(parse_volume_size("lots").is_err());
    }

    fn volume(arg: &str) -> Result<(String, String, Option<u64>), String> {
        parse_volume_arg(OsStr::new(arg)).map(|v| {
            (
                v.file.to_string_lossy().into_owned(),
                String::from_utf8(v.mount).unwrap(),
                v.size,
            )
        })
    }

    #[test]
    fn volume_args() {
        let ok = |f: &str, m: &str, s: Option<u64>| Ok((f.to_string(), m.to_string(), s));
        assert_eq!(volume("data.img:/data"), ok("data.img", "/data", None));
        assert_eq!(
            volume("/v/d.img://data/./x/"),
            ok("/v/d.img", "/data/x", None)
        );
        assert_eq!(
            volume("d.img:/data:64M"),
            ok("d.img", "/data", Some(64 * MIB))
        );
        assert_eq!(volume("d.img:/a:b"), ok("d.img", "/a:b", None));
        assert_eq!(volume("d.img:/a:b:1G"), ok("d.img", "/a:b", Some(GIB)));
        assert!(volume("d.img").unwrap_err().contains("no mount point"));
        assert!(volume(":/data").unwrap_err().contains("empty file name"));
        assert!(volume("d.img:data").unwrap_err().contains("absolute"));
        assert!(volume("d.img:/")
            .unwrap_err()
            .contains("cannot be mounted at /"));
        assert!(volume("d.img:/a/../b").unwrap_err().contains(".."));
        assert!(volume("d.img:/data:64X")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(volume("d.img:/data:1K").unwrap_err().contains("too small"));
    }

    #[test]
    fn memory_rounds_up_to_mib() {
        assert_eq!(memory_mib(512 * MIB), 512);
        assert_eq!(memory_mib(1536 * KIB * 1024), 1536);
        assert_eq!(memory_mib(32 * MIB + 1), 33);
    }

    #[test]
    fn env_args() {
        assert_eq!(
            parse_env_arg(OsStr::new("A=b=c")),
            Ok(EnvArg::Set {
                key: b"A".to_vec(),
                value: b"b=c".to_vec()
            })
        );
        assert_eq!(
            parse_env_arg(OsStr::new("EMPTY=")),
            Ok(EnvArg::Set {
                key: b"EMPTY".to_vec(),
                value: vec![]
            })
        );
        assert_eq!(
            parse_env_arg(OsStr::new("HOSTVAR")),
            Ok(EnvArg::FromHost {
                key: b"HOSTVAR".to_vec()
            })
        );
        assert!(parse_env_arg(OsStr::new("=x")).is_err());
        assert!(parse_env_arg(OsStr::new("")).is_err());
        assert!(parse_env_arg(OsStr::from_bytes(b"A=\0")).is_err());
    }

    fn host(table: &'static [(&'static str, &'static str)]) -> impl Fn(&OsStr) -> Option<OsString> {
        move |key| {
            table
                .iter()
                .find(|(k, _)| OsStr::new(k) == key)
                .map(|(_, v)| v.into())
        }
    }

    fn strings(env: Vec<Vec<u8>>) -> Vec<String> {
        env.into_iter()
            .map(|e| String::from_utf8(e).unwrap())
            .collect()
    }

    #[test]
    fn environment_defaults() {
        let env = build_environment(&[], host(&[]));
        assert_eq!(
            strings(env),
            [
                "PATH=/bin:/usr/bin:/sbin:/usr/sbin",
                "HOME=/root",
                "TERM=linux"
            ]
        );
        let env = build_environment(&[], host(&[("TERM", "xterm-256color")]));
        assert_eq!(strings(env)[2], "TERM=xterm-256color");
    }

    #[test]
    fn environment_user_entries_override_and_dedupe() {
        let args = [
            parse_env_arg(OsStr::new("A=1")).unwrap(),
            parse_env_arg(OsStr::new("PATH=/opt")).unwrap(),
            parse_env_arg(OsStr::new("FROM_HOST")).unwrap(),
            parse_env_arg(OsStr::new("MISSING")).unwrap(),
            parse_env_arg(OsStr::new("A=2")).unwrap(),
        ];
        let env = build_environment(&args, host(&[("FROM_HOST", "yes"), ("TERM", "vt100")]));
        assert_eq!(
            strings(env),
            [
                "HOME=/root",
                "TERM=vt100",
                "A=2",
                "PATH=/opt",
                "FROM_HOST=yes"
            ]
        );
    }

    #[test]
    fn environment_from_host_missing_key_unsets_default() {
        // `-e TERM` when the host has no TERM: the user asked for the host's TERM, and
        // there is none, so the guest has none either (no silent default).
        let args = [parse_env_arg(OsStr::new("TERM")).unwrap()];
        let env = build_environment(&args, host(&[]));
        assert_eq!(
            strings(env),
            ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/root"]
        );
    }

    #[test]
    fn environment_overrides() {
        let mut env: Vec<Vec<u8>> = vec![
            b"PATH=/bin".to_vec(),
            b"TERM=linux".to_vec(),
            b"A=1".to_vec(),
        ];
        let args = [
            parse_env_arg(OsStr::new("A=2")).unwrap(),
            parse_env_arg(OsStr::new("NEW=x")).unwrap(),
            parse_env_arg(OsStr::new("TERM")).unwrap(),
            parse_env_arg(OsStr::new("PATH")).unwrap(),
            parse_env_arg(OsStr::new("ABSENT")).unwrap(),
        ];
        override_environment(&mut env, &args, host(&[("TERM", "xterm")]));
        assert_eq!(strings(env), ["TERM=xterm", "A=2", "NEW=x"]);
    }

    fn mapping(arg: &str) -> Result<(String, String), String> {
        parse_file_mapping(OsStr::new(arg)).map(|m| {
            (
                m.host.to_string_lossy().into_owned(),
                String::from_utf8(m.guest).unwrap(),
            )
        })
    }

    #[test]
    fn file_mappings() {
        let pair = |h: &str, g: &str| Ok((h.to_string(), g.to_string()));
        assert_eq!(mapping("/etc/ssl"), pair("/etc/ssl", "/etc/ssl"));
        assert_eq!(mapping("data/x.txt"), pair("data/x.txt", "/data/x.txt"));
        assert_eq!(mapping("./data/"), pair("./data/", "/data"));
        assert_eq!(
            mapping("conf.toml:/app/conf.toml"),
            pair("conf.toml", "/app/conf.toml")
        );
        assert_eq!(mapping("/a/b://srv/./c/"), pair("/a/b", "/srv/c"));
        assert_eq!(mapping("rootfs:/"), pair("rootfs", "/"));
    }

    #[test]
    fn file_mappings_rejected() {
        assert!(mapping("x:relative").unwrap_err().contains("absolute"));
        assert!(mapping("x:").unwrap_err().contains("absolute"));
        assert!(mapping(":/x").unwrap_err().contains("empty host path"));
        assert!(mapping("x:/a/../b").unwrap_err().contains(".."));
        assert!(mapping("../x").unwrap_err().contains("explicit guest path"));
        assert_eq!(mapping("../x:/x"), Ok(("../x".into(), "/x".into())));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_timeout("0"), Ok(Duration::ZERO));
        assert!(parse_timeout("").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("abc").is_err());
        assert!(parse_timeout("1x").is_err());
        assert!(parse_timeout("inf").is_err());
        assert!(parse_timeout("1e99").is_err());
    }
}
