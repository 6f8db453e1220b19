//! The guest's root filesystem, packed as a cpio `newc` initrd.
//!
//! [`InitrdTree`] is an in-memory map from guest path to entry (directory, bytes, a host
//! file to stream, or a symlink) that keeps the tree consistent: parents are created as
//! needed, a later entry replaces an earlier one at the same path, and a file may not
//! replace a directory that has contents. [`skiff_image`] lays out what every Skiff guest
//! gets (`/bin`, `/etc`, `/tmp`, `/root`, a few `/etc` files, the program and its run
//! configuration) plus the user's `--file`s; [`settle_etc`] then fits `/etc/resolv.conf`
//! and `/etc/hosts` to the VM's network.
//!
//! The archive is reproducible: the same inputs give the same bytes, whatever the host's
//! directory order, umask or file times. Entries are sorted by path, inode numbers are
//! sequential in that order, the owner is root, every time is one fixed value
//! ([`source_date_epoch`]: `$SOURCE_DATE_EPOCH`, else 0), and host permissions are
//! reduced to what matters in the guest ([`normalized_permissions`]: 0755 for
//! directories and executables, 0644 for other files).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use skiff_bootproto::{RunConfig, VolumeMount, RUN_CONFIG_PATH};

use crate::cpio::reader::ReadEntry;
use crate::cpio::{CpioWriter, EntryHeader, S_IFDIR, S_IFLNK, S_IFREG};
use crate::net::{Network, GENERATED_RESOLV_CONF_MARK};
use crate::options::FileMapping;

/// The environment variable of the reproducible-builds convention that fixes timestamps.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// The time every initrd entry gets: `$SOURCE_DATE_EPOCH` (seconds since the epoch) if
/// set, else 0. `value` is the variable's value (a parameter for tests). A value that is
/// not a number is an error, as the convention asks.
pub fn source_date_epoch(value: Option<OsString>) -> Result<u32, String> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let text = value.to_string_lossy();
    let seconds: u64 = text.trim().parse().map_err(|_| {
        format!("{SOURCE_DATE_EPOCH}='{text}' is not a number of seconds since 1970")
    })?;
    u32::try_from(seconds)
        .map_err(|_| format!("{SOURCE_DATE_EPOCH}='{text}' is too large for a cpio archive"))
}

/// The permissions a host file or directory gets in the guest: 0755 for directories and
/// for files the owner may execute, 0644 for other files. Nothing else of the host's
/// bits (umask, group/world bits, setuid) reaches the archive, so a checkout with a
/// different umask builds the same bytes.
pub fn normalized_permissions(host_mode: u32, is_dir: bool) -> u32 {
    if is_dir || host_mode & 0o100 != 0 {
        0o755
    } else {
        0o644
    }
}

/// What one path holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Directory,
    /// A regular file whose bytes are already in memory.
    Bytes(Vec<u8>),
    /// A regular file streamed from the host when the archive is written; `size` is what
    /// the file held when it was added (a file that changes meanwhile is an error).
    HostFile {
        path: PathBuf,
        size: u32,
    },
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
}

/// One entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Permission bits (`0o7777` at most); the type comes from `content`.
    pub permissions: u32,
    /// Seconds since the epoch (the tree's fixed time for everything skiff adds).
    pub mtime: u32,
    pub content: Content,
}

impl Node {
    fn directory(permissions: u32, mtime: u32) -> Node {
        Node {
            permissions,
            mtime,
            content: Content::Directory,
        }
    }

    fn is_directory(&self) -> bool {
        self.content == Content::Directory
    }

    fn type_bits(&self) -> u32 {
        match self.content {
            Content::Directory => S_IFDIR,
            Content::Bytes(_) | Content::HostFile { .. } => S_IFREG,
            Content::Symlink(_) => S_IFLNK,
        }
    }
}

/// A guest filesystem tree, keyed by path without the leading `/` (as cpio stores names).
#[derive(Clone, Debug, Default)]
pub struct InitrdTree {
    nodes: BTreeMap<Vec<u8>, Node>,
    /// The time given to host entries and to parent directories created implicitly.
    mtime: u32,
}

/// Turn an absolute, normalized guest path into a tree key (`/a/b` → `a/b`, `/` → ``).
fn key_of(guest_path: &[u8]) -> &[u8] {
    let mut key = guest_path;
    while let [b'/', rest @ ..] = key {
        key = rest;
    }
    key
}

fn shown(key: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(key))
}

impl InitrdTree {
    /// An empty tree whose host entries and implicit directories get time `mtime`.
    pub fn new(mtime: u32) -> Self {
        InitrdTree {
            nodes: BTreeMap::new(),
            mtime,
        }
    }

    /// Change the time given to entries added from now on.
    pub fn set_mtime(&mut self, mtime: u32) {
        self.mtime = mtime;
    }

    /// Rebuild a tree from archive entries (an image's initrd, to change its run
    /// configuration). Times and permissions are kept as they are.
    pub fn from_entries(entries: Vec<ReadEntry>) -> Result<Self, String> {
        let mut tree = InitrdTree::new(0);
        for entry in entries {
            let header = entry.header;
            let content = match header.mode & 0o170000 {
                S_IFDIR => Content::Directory,
                S_IFREG => Content::Bytes(entry.data),
                S_IFLNK => Content::Symlink(entry.data),
                other => {
                    return Err(format!(
                        "{}: unsupported file type {other:#o} in the initrd",
                        shown(&header.name)
                    ))
                }
            };
            let node = Node {
                permissions: header.mode & 0o7777,
                mtime: header.mtime,
                content,
            };
            let mut path = b"/".to_vec();
            path.extend_from_slice(&header.name);
            tree.insert(&path, node)?;
        }
        Ok(tree)
    }

    /// The entry at an absolute guest path, if any.
    pub fn get(&self, guest_path: &[u8]) -> Option<&Node> {
        self.nodes.get(key_of(guest_path))
    }

    /// Remove the entry at an absolute guest path (not its children), returning it.
    pub fn remove(&mut self, guest_path: &[u8]) -> Option<Node> {
        self.nodes.remove(key_of(guest_path))
    }

    /// Whether both trees hold the same entries (paths, permissions, times, contents).
    pub fn same_entries(&self, other: &InitrdTree) -> bool {
        self.nodes == other.nodes
    }

    /// Number of entries (parents created implicitly included).
    pub fn entry_count(&self) -> usize {
        self.nodes.len()
    }

    /// Add or replace the entry at an absolute guest path. Missing parent directories are
    /// created (mode 0755, the tree's time). Adding at `/` itself only makes sense for a directory
    /// and is a no-op (the root always exists and is not an archive entry).
    pub fn insert(&mut self, guest_path: &[u8], node: Node) -> Result<(), String> {
        let key = key_of(guest_path).to_vec();
        if key.is_empty() {
            return if node.is_directory() {
                Ok(())
            } else {
                Err("/ is the root directory; it cannot be replaced by a file".into())
            };
        }
        for (i, _) in key.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            let parent = &key[..i];
            match self.nodes.get(parent) {
                Some(existing) if !existing.is_directory() => {
                    return Err(format!(
                        "cannot put {} inside {}, which is not a directory",
                        shown(&key),
                        shown(parent)
                    ))
                }
                Some(_) => {}
                None => {
                    self.nodes
                        .insert(parent.to_vec(), Node::directory(0o755, self.mtime));
                }
            }
        }
        if let Some(existing) = self.nodes.get(&key) {
            if existing.is_directory() && !node.is_directory() && self.has_children(&key) {
                return Err(format!(
                    "cannot replace the directory {} (which has contents) with a file",
                    shown(&key)
                ));
            }
        }
        self.nodes.insert(key, node);
        Ok(())
    }

    /// The guest path of the first entry below `key`, if any.
    fn first_child(&self, key: &[u8]) -> Option<String> {
        let mut prefix = key.to_vec();
        prefix.push(b'/');
        self.nodes
            .range(prefix.clone()..)
            .next()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| shown(k))
    }

    fn has_children(&self, key: &[u8]) -> bool {
        let mut prefix = key.to_vec();
        prefix.push(b'/');
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Add a host file, directory (recursively) or symlink target at `guest_path`. The
    /// host path itself is followed if it is a symlink (as `cp` treats its arguments);
    /// symlinks inside a directory are kept as symlinks.
    pub fn add_host_path(&mut self, host: &Path, guest_path: &[u8]) -> Result<(), String> {
        let metadata = fs::metadata(host).map_err(|e| describe_io(host, &e))?;
        self.add_host_entry(host, &metadata, guest_path)
    }

    fn add_host_entry(
        &mut self,
        host: &Path,
        metadata: &fs::Metadata,
        guest_path: &[u8],
    ) -> Result<(), String> {
        let file_type = metadata.file_type();
        let permissions = normalized_permissions(metadata.mode(), file_type.is_dir());
        let mtime = self.mtime;
        if file_type.is_dir() {
            self.insert(guest_path, Node::directory(permissions, mtime))?;
            let mut children = Vec::new();
            for child in fs::read_dir(host).map_err(|e| describe_io(host, &e))? {
                let child = child.map_err(|e| describe_io(host, &e))?;
                children.push(child.file_name());
            }
            children.sort();
            for name in children {
                let child_host = host.join(&name);
                let child_metadata =
                    fs::symlink_metadata(&child_host).map_err(|e| describe_io(&child_host, &e))?;
                let mut child_guest = key_of(guest_path).to_vec();
                if !child_guest.is_empty() {
                    child_guest.push(b'/');
                }
                child_guest.extend_from_slice(name.as_bytes());
                self.add_host_entry(&child_host, &child_metadata, &child_guest)?;
            }
            Ok(())
        } else if file_type.is_file() {
            let size = u32::try_from(metadata.len()).map_err(|_| {
                format!(
                    "{}: files over 4 GiB do not fit in an initrd",
                    host.display()
                )
            })?;
            let content = Content::HostFile {
                path: host.to_path_buf(),
                size,
            };
            self.insert(
                guest_path,
                Node {
                    permissions,
                    mtime,
                    content,
                },
            )
        } else if file_type.is_symlink() {
            let target = fs::read_link(host).map_err(|e| describe_io(host, &e))?;
            let content = Content::Symlink(target.as_os_str().as_bytes().to_vec());
            self.insert(
                guest_path,
                Node {
                    permissions: 0o777,
                    mtime,
                    content,
                },
            )
        } else {
            Err(format!(
                "{}: only regular files, directories and symlinks can be copied into the guest",
                host.display()
            ))
        }
    }

    /// Write the archive. Returns the writer after the trailer.
    pub fn write_to<W: Write>(&self, out: W) -> Result<W, String> {
        let io_error = |e: io::Error| format!("writing the initrd: {e}");
        let mut writer = CpioWriter::new(out);
        for (index, (key, node)) in self.nodes.iter().enumerate() {
            let mut header = EntryHeader {
                name: key.clone(),
                ino: index as u32 + 1,
                mode: node.type_bits() | node.permissions,
                uid: 0,
                gid: 0,
                nlink: if node.is_directory() { 2 } else { 1 },
                mtime: node.mtime,
                file_size: 0,
            };
            match &node.content {
                Content::Directory => writer.write_entry(&header, &[]).map_err(io_error)?,
                Content::Bytes(data) | Content::Symlink(data) => {
                    writer.write_entry(&header, data).map_err(io_error)?
                }
                Content::HostFile { path, size } => {
                    header.file_size = *size;
                    writer.write_header(&header).map_err(io_error)?;
                    stream_host_file(path, *size, &mut writer)?;
                    writer.finish_data().map_err(io_error)?;
                }
            }
        }
        writer.finish().map_err(io_error)
    }
}

/// Copy exactly `size` bytes of `path` into the archive, failing if the file changed size
/// since it was added (the header already promised `size` bytes).
fn stream_host_file<W: Write>(
    path: &Path,
    size: u32,
    writer: &mut CpioWriter<W>,
) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| describe_io(path, &e))?;
    let mut remaining = size as usize;
    let mut buffer = vec![0u8; 64 * 1024];
    while remaining > 0 {
        let want = remaining.min(buffer.len());
        let got = match file.read(&mut buffer[..want]) {
            Ok(0) => {
                return Err(format!(
                    "{}: file shrank while it was being packed",
                    path.display()
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(describe_io(path, &e)),
        };
        writer
            .write_data(&buffer[..got])
            .map_err(|e| format!("writing the initrd: {e}"))?;
        remaining -= got;
    }
    let mut probe = [0u8; 1];
    if matches!(file.read(&mut probe), Ok(n) if n > 0) {
        return Err(format!(
            "{}: file grew while it was being packed",
            path.display()
        ));
    }
    Ok(())
}

/// A host I/O error as a one-line reason.
pub fn describe_io(path: &Path, error: &io::Error) -> String {
    let reason = match error.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => error.to_string(),
    };
    format!("{}: {reason}", path.display())
}

/// The program to run and what goes around it.
pub struct ImageSpec<'a> {
    /// The program's bytes (already checked by the loader).
    pub program: &'a [u8],
    /// Absolute, normalized guest path of the program; also `argv[0]`.
    pub exe: Vec<u8>,
    /// Arguments after argv[0].
    pub args: &'a [OsString],
    /// `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// Absolute, normalized initial working directory.
    pub cwd: Vec<u8>,
    /// The user's `--file`s (or a manifest's `[[files]]`), in order.
    pub files: &'a [FileMapping],
    /// Absolute, normalized mount points of the volumes, in order: volume `i` is the disk
    /// with serial [`skiff_bootproto::volume_serial`]`(i)`.
    pub volumes: &'a [Vec<u8>],
    /// The VM's network (for `/etc/resolv.conf`).
    pub network: &'a Network,
    /// The time of every entry ([`source_date_epoch`]).
    pub mtime: u32,
}

/// Where a host program lands by default: `/bin/<file name>`.
pub fn default_exe_path(program_path: &Path) -> Result<Vec<u8>, String> {
    let name = program_path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", program_path.display()))?;
    Ok([b"/bin/", name.as_bytes()].concat())
}

/// Synthesized files every guest gets; `--file`s may replace them. (`/etc/resolv.conf`
/// depends on the network: see [`settle_etc`].)
const DEFAULT_FILES: &[(&str, &str)] = &[
    ("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ("/etc/group", "root:x:0:\n"),
    (HOSTS_PATH, "127.0.0.1 localhost\n::1 localhost\n"),
    ("/etc/hostname", "skiff\n"),
];

const HOSTS_PATH: &str = "/etc/hosts";
const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";
/// The line `/etc/hosts` must have: programs resolve `localhost` through it (there is
/// no other resolver for it in the guest).
const LOCALHOST_LINE: &str = "127.0.0.1 localhost\n";

/// Fit `/etc` to the VM's network once the user's files are in the tree:
///
/// * `/etc/resolv.conf` lists the network's DNS servers. A resolv.conf skiff generated
///   (or none) is replaced by the one for `network`, or removed when the network has no
///   DNS server; one the user gave is kept, unless DNS servers were asked for
///   explicitly (`--dns`).
/// * `/etc/hosts` gets a `127.0.0.1 localhost` line if it has none.
pub fn settle_etc(tree: &mut InitrdTree, network: &Network) -> Result<(), String> {
    let resolv_path = RESOLV_CONF_PATH.as_bytes();
    let generated = match tree.get(resolv_path) {
        None => true,
        Some(node) => matches!(&node.content,
            Content::Bytes(bytes) if bytes.starts_with(GENERATED_RESOLV_CONF_MARK.as_bytes())),
    };
    match network.resolv_conf() {
        Some(contents) if generated || network.dns_explicit => {
            let node = Node {
                permissions: 0o644,
                mtime: tree.mtime,
                content: Content::Bytes(contents),
            };
            tree.insert(resolv_path, node)?;
        }
        None if generated => {
            tree.remove(resolv_path);
        }
        _ => {}
    }
    ensure_localhost(tree)
}

/// Add [`LOCALHOST_LINE`] to `/etc/hosts` unless a line already maps `127.0.0.1` to
/// `localhost` (a hosts file the user gave stays otherwise as it is). A symlink or
/// directory there is the user's business.
fn ensure_localhost(tree: &mut InitrdTree) -> Result<(), String> {
    let path = HOSTS_PATH.as_bytes();
    let (mut text, permissions, mtime) = match tree.get(path) {
        None => (Vec::new(), 0o644, tree.mtime),
        Some(node) => {
            let text = match &node.content {
                Content::Bytes(bytes) => bytes.clone(),
                Content::HostFile { path, .. } => {
                    fs::read(path).map_err(|e| describe_io(path, &e))?
                }
                Content::Directory | Content::Symlink(_) => return Ok(()),
            };
            (text, node.permissions, node.mtime)
        }
    };
    if maps_localhost(&text) {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(LOCALHOST_LINE.as_bytes());
    let node = Node {
        permissions,
        mtime,
        content: Content::Bytes(text),
    };
    tree.insert(path, node)
}

/// Whether a hosts file has a line `127.0.0.1 ... localhost ...` (comments ignored).
fn maps_localhost(hosts: &[u8]) -> bool {
    String::from_utf8_lossy(hosts).lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        fields.next() == Some("127.0.0.1") && fields.any(|name| name == "localhost")
    })
}

/// Whether `path` is `dir` or below it (both absolute and normalized).
pub fn is_at_or_under(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// The run configuration for `spec` (what the kernel reads from [`RUN_CONFIG_PATH`]).
pub fn run_config_of(spec: &ImageSpec) -> RunConfig {
    let mut argv = vec![spec.exe.clone()];
    argv.extend(spec.args.iter().map(|a| a.as_bytes().to_vec()));
    RunConfig {
        volumes: spec
            .volumes
            .iter()
            .enumerate()
            .map(|(i, mount)| VolumeMount {
                serial: skiff_bootproto::volume_serial(i).into_bytes(),
                mount_point: mount.clone(),
            })
            .collect(),
        exe: spec.exe.clone(),
        argv,
        envp: spec.env.clone(),
        cwd: spec.cwd.clone(),
    }
}

/// Put `config` at [`RUN_CONFIG_PATH`] (replacing any there).
pub fn insert_run_config(tree: &mut InitrdTree, config: &RunConfig) -> Result<(), String> {
    let encoded = config
        .encode()
        .map_err(|e| format!("the run configuration cannot be encoded: {e:?}"))?;
    let config_path = [b"/", RUN_CONFIG_PATH.as_bytes()].concat();
    let parent = &config_path[..config_path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
    let mtime = tree.mtime;
    if !parent.is_empty() && tree.get(parent).is_none() {
        tree.insert(parent, Node::directory(0o700, mtime))?;
    }
    tree.insert(
        &config_path,
        Node {
            permissions: 0o600,
            mtime,
            content: Content::Bytes(encoded),
        },
    )
}

/// The run configuration stored in an archive's entries, if it has one.
pub fn run_config_in(entries: &[ReadEntry]) -> Result<RunConfig, String> {
    let entry = entries
        .iter()
        .find(|e| e.header.name == RUN_CONFIG_PATH.as_bytes())
        .ok_or_else(|| format!("the initrd has no run configuration (/{RUN_CONFIG_PATH})"))?;
    RunConfig::decode(&entry.data)
        .map_err(|e| format!("the initrd's run configuration is invalid: {e:?}"))
}

/// Check that the volumes' mount points do not hide anything the image holds, and that
/// none is a file in the image.
pub fn check_mount_points(
    tree: &InitrdTree,
    exe: &[u8],
    volumes: &[Vec<u8>],
) -> Result<(), String> {
    for (i, mount) in volumes.iter().enumerate() {
        if mount.as_slice() == b"/" {
            return Err("a volume cannot be mounted at / (the root is the initrd)".into());
        }
        if let Some(other) = volumes[..i].iter().find(|m| *m == mount) {
            return Err(format!(
                "two volumes are mounted at {}",
                String::from_utf8_lossy(other)
            ));
        }
        let shown_mount = String::from_utf8_lossy(mount);
        if is_at_or_under(exe, mount) {
            return Err(format!(
                "the volume mounted at {shown_mount} would hide the program {}",
                String::from_utf8_lossy(exe)
            ));
        }
        match tree.get(mount) {
            Some(node) if !node.is_directory() => {
                return Err(format!(
                    "cannot mount a volume at {shown_mount}: the image has a file there"
                ))
            }
            Some(_) if tree.has_children(key_of(mount)) => {
                let hidden = tree.first_child(key_of(mount)).unwrap_or_default();
                return Err(format!(
                    "the volume mounted at {shown_mount} would hide {hidden} from the image"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lay out a Skiff guest: the standard directories and `/etc` files, then the user's
/// files (which override those defaults), then the program at `spec.exe`, the working
/// directory, and the run configuration (added last so that no file can replace what is
/// being run).
pub fn skiff_image(spec: &ImageSpec) -> Result<(InitrdTree, RunConfig), String> {
    let mtime = spec.mtime;
    let mut tree = InitrdTree::new(mtime);
    for (dir, permissions) in [
        ("/bin", 0o755),
        ("/etc", 0o755),
        ("/root", 0o700),
        ("/tmp", 0o1777),
    ] {
        tree.insert(dir.as_bytes(), Node::directory(permissions, mtime))?;
    }
    for (path, text) in DEFAULT_FILES {
        let content = Content::Bytes(text.as_bytes().to_vec());
        tree.insert(
            path.as_bytes(),
            Node {
                permissions: 0o644,
                mtime,
                content,
            },
        )?;
    }
    for mapping in spec.files {
        tree.add_host_path(&mapping.host, &mapping.guest)
            .map_err(|e| format!("--file {}: {e}", mapping.host.display()))?;
    }
    settle_etc(&mut tree, spec.network)?;
    if key_of(&spec.exe).is_empty() {
        return Err("the program's guest path cannot be /".into());
    }
    let program = Content::Bytes(spec.program.to_vec());
    tree.insert(
        &spec.exe,
        Node {
            permissions: 0o755,
            mtime,
            content: program,
        },
    )?;
    let under_a_volume = spec.volumes.iter().any(|m| is_at_or_under(&spec.cwd, m));
    match tree.get(&spec.cwd) {
        Some(node) if !node.is_directory() => {
            return Err(format!(
                "the working directory {} is a file in the image",
                String::from_utf8_lossy(&spec.cwd)
            ))
        }
        None if !under_a_volume => tree.insert(&spec.cwd, Node::directory(0o755, mtime))?,
        _ => {}
    }
    check_mount_points(&tree, &spec.exe, spec.volumes)?;
    let config = run_config_of(spec);
    insert_run_config(&mut tree, &config)?;
    Ok((tree, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::reader::read_archive;
    use crate::net::{NetMode, NetSettings, Source};
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn archive(tree: &InitrdTree) -> Vec<u8> {
        tree.write_to(Vec::new()).unwrap()
    }

    fn entries_of(bytes: &[u8]) -> Vec<ReadEntry> {
        read_archive(bytes).unwrap()
    }

    fn find<'a>(entries: &'a [ReadEntry], name: &str) -> &'a ReadEntry {
        entries
            .iter()
            .find(|e| e.header.name == name.as_bytes())
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn parents_are_created_and_entries_sorted() {
        let mut tree = InitrdTree::new(0);
        let file = |data: &str| Node {
            permissions: 0o644,
            mtime: 5,
            content: Content::Bytes(data.as_bytes().to_vec()),
        };
        tree.insert(b"/z/y/x", file("deep")).unwrap();
        tree.insert(b"/a-b", file("dash")).unwrap();
        tree.insert(b"/a/c", file("c")).unwrap();
        let entries = entries_of(&archive(&tree));
        let names: Vec<_> = entries
            .iter()
            .map(|e| String::from_utf8(e.header.name.clone()).unwrap())
            .collect();
        assert_eq!(names, ["a", "a-b", "a/c", "z", "z/y", "z/y/x"]);
        let inodes: Vec<_> = entries.iter().map(|e| e.header.ino).collect();
        assert_eq!(inodes, [1, 2, 3, 4, 5, 6]);
        assert_eq!(find(&entries, "z/y").header.mode, S_IFDIR | 0o755);
        assert_eq!(find(&entries, "z/y").header.mtime, 0);
        assert_eq!(find(&entries, "z/y/x").header.mode, S_IFREG | 0o644);
        assert_eq!(find(&entries, "z/y/x").data, b"deep");
    }

    #[test]
    fn conflicting_types_are_rejected() {
        let file = || Node {
            permissions: 0o644,
            mtime: 0,
            content: Content::Bytes(vec![]),
        };
        let mut tree = InitrdTree::new(0);
        tree.insert(b"/f", file()).unwrap();
        assert!(tree
            .insert(b"/f/g", file())
            .unwrap_err()
            .contains("not a directory"));
        tree.insert(b"/d/inner", file()).unwrap();
        assert!(tree
            .insert(b"/d", file())
            .unwrap_err()
            .contains("has contents"));
        // An empty directory may become a file; a file may become a directory.
        tree.insert(b"/empty", Node::directory(0o755, 0)).unwrap();
        tree.insert(b"/empty", file()).unwrap();
        tree.insert(b"/f", Node::directory(0o700, 0)).unwrap();
        assert!(tree.get(b"/f").unwrap().is_directory());
        assert!(tree.insert(b"/", file()).is_err());
        tree.insert(b"/", Node::directory(0o755, 0)).unwrap();
    }

    fn sample_host_dir() -> crate::tempfiles::TempPath {
        let dir = crate::tempfiles::test_dir();
        let root = dir.path();
        fs::create_dir_all(root.join("conf/sub")).unwrap();
        fs::write(root.join("conf/app.toml"), b"port = 80\n").unwrap();
        fs::write(root.join("conf/sub/data.bin"), [0u8, 1, 2, 255]).unwrap();
        fs::set_permissions(
            root.join("conf/sub/data.bin"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        symlink("app.toml", root.join("conf/link")).unwrap();
        fs::write(root.join("conf/run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("conf/run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(root.join("passwd"), b"root:x:0:0::/:/bin/app\n").unwrap();
        fs::write(root.join("prog"), b"\x7fELF pretend").unwrap();
        dir
    }

    fn spec_files(root: &Path) -> Vec<FileMapping> {
        vec![
            FileMapping {
                host: root.join("conf"),
                guest: b"/srv/conf".to_vec(),
            },
            FileMapping {
                host: root.join("passwd"),
                guest: b"/etc/passwd".to_vec(),
            },
        ]
    }

    /// Networks as `skiff run` resolves them.
    fn network(settings: NetSettings) -> &'static Network {
        Box::leak(Box::new(settings.resolve(Source::CommandLine).unwrap()))
    }

    fn user_network() -> &'static Network {
        network(NetSettings {
            mode: Some(NetMode::User),
            ..NetSettings::default()
        })
    }

    fn base_spec<'a>(files: &'a [FileMapping], args: &'a [OsString]) -> ImageSpec<'a> {
        ImageSpec {
            network: user_network(),
            program: b"\x7fELF pretend",
            exe: b"/bin/prog".to_vec(),
            args,
            env: vec![b"PATH=/bin".to_vec()],
            cwd: b"/".to_vec(),
            files,
            volumes: &[],
            mtime: 1_600_000_000,
        }
    }

    fn build(_root: &Path, files: &[FileMapping]) -> (Vec<u8>, RunConfig) {
        let args = [OsString::from("--port"), OsString::from("8080")];
        let (tree, config) = skiff_image(&base_spec(files, &args)).unwrap();
        (archive(&tree), config)
    }

    #[test]
    fn skiff_layout() {
        let dir = sample_host_dir();
        let (bytes, config) = build(dir.path(), &spec_files(dir.path()));
        let entries = entries_of(&bytes);

        assert_eq!(find(&entries, "tmp").header.mode, S_IFDIR | 0o1777);
        assert_eq!(find(&entries, "root").header.mode, S_IFDIR | 0o700);
        for dir in [
            "bin",
            "etc",
            "tmp",
            "root",
            "srv",
            "srv/conf",
            "srv/conf/sub",
        ] {
            assert_eq!(find(&entries, dir).header.mode & S_IFDIR, S_IFDIR, "{dir}");
        }
        let program = find(&entries, "bin/prog");
        assert_eq!(program.header.mode, S_IFREG | 0o755);
        assert_eq!(program.header.mtime, 1_600_000_000);
        assert_eq!(program.data, b"\x7fELF pretend");
        assert_eq!(find(&entries, "etc/hostname").data, b"skiff\n");
        assert_eq!(
            find(&entries, "etc/resolv.conf").data,
            b"# Generated by skiff from the VM's network settings.\nnameserver 10.0.2.3\n"
        );
        assert_eq!(
            find(&entries, "etc/hosts").data,
            b"127.0.0.1 localhost\n::1 localhost\n"
        );
        assert_eq!(find(&entries, "etc/group").data, b"root:x:0:\n");
        // The user's file replaced the default /etc/passwd.
        assert_eq!(
            find(&entries, "etc/passwd").data,
            b"root:x:0:0::/:/bin/app\n"
        );
        assert_eq!(find(&entries, "srv/conf/app.toml").data, b"port = 80\n");
        // Host permissions are normalized: 0600 becomes 0644, 0755 stays.
        let data = find(&entries, "srv/conf/sub/data.bin");
        assert_eq!(
            (data.data.as_slice(), data.header.mode),
            (&[0u8, 1, 2, 255][..], S_IFREG | 0o644)
        );
        assert_eq!(
            find(&entries, "srv/conf/run.sh").header.mode,
            S_IFREG | 0o755
        );
        let link = find(&entries, "srv/conf/link");
        assert_eq!(
            (link.data.as_slice(), link.header.mode & 0o170000),
            (&b"app.toml"[..], S_IFLNK)
        );
        for entry in &entries {
            assert_eq!((entry.header.uid, entry.header.gid), (0, 0));
            assert_eq!(entry.header.mtime, 1_600_000_000, "{:?}", entry.header.name);
        }

        let run = find(&entries, RUN_CONFIG_PATH);
        assert_eq!(RunConfig::decode(&run.data).unwrap(), config);
        assert_eq!(run_config_in(&entries).unwrap(), config);
        assert_eq!(config.exe, b"/bin/prog");
        assert_eq!(config.argv, [&b"/bin/prog"[..], b"--port", b"8080"]);
        assert_eq!(config.envp, [b"PATH=/bin"]);
        assert_eq!(config.cwd, b"/");

        let mut names: Vec<_> = entries.iter().map(|e| e.header.name.clone()).collect();
        let unsorted = names.clone();
        names.sort();
        assert_eq!(names, unsorted);
    }

    fn text_at(tree: &InitrdTree, path: &str) -> Option<String> {
        match &tree.get(path.as_bytes())?.content {
            Content::Bytes(bytes) => Some(String::from_utf8(bytes.clone()).unwrap()),
            Content::HostFile { path, .. } => Some(fs::read_to_string(path).unwrap()),
            other => panic!("{path} is {other:?}"),
        }
    }

    fn file_mapping(dir: &Path, name: &str, text: &str, guest: &str) -> FileMapping {
        fs::write(dir.join(name), text).unwrap();
        FileMapping {
            host: dir.join(name),
            guest: guest.as_bytes().to_vec(),
        }
    }

    #[test]
    fn resolv_conf_follows_the_network() {
        let dir = crate::tempfiles::test_dir();
        let none = network(NetSettings {
            mode: Some(NetMode::None),
            ..NetSettings::default()
        });
        let custom = network(NetSettings {
            dns: vec!["9.9.9.9".parse().unwrap()],
            ..NetSettings::default()
        });
        let image = |files: &[FileMapping], network: &'static Network| {
            let spec = ImageSpec {
                network,
                ..base_spec(files, &[])
            };
            skiff_image(&spec).unwrap().0
        };
        // Without a network there is no DNS server to name.
        let tree = image(&[], none);
        assert_eq!(text_at(&tree, "/etc/resolv.conf"), None);
        // The user's own resolv.conf beats the network's default...
        let mine = [file_mapping(
            dir.path(),
            "resolv",
            "nameserver 8.8.8.8\n",
            "/etc/resolv.conf",
        )];
        let tree = image(&mine, user_network());
        assert!(matches!(
            tree.get(b"/etc/resolv.conf").unwrap().content,
            Content::HostFile { .. }
        ));
        // ...but not servers asked for by name.
        let tree = image(&mine, custom);
        let text = text_at(&tree, "/etc/resolv.conf").unwrap();
        assert!(text.ends_with("\nnameserver 9.9.9.9\n"), "{text}");

        // An image's generated resolv.conf follows the network it is run with; the
        // user's stays.
        let mut tree = image(&[], user_network());
        settle_etc(&mut tree, custom).unwrap();
        assert!(text_at(&tree, "/etc/resolv.conf")
            .unwrap()
            .contains("9.9.9.9"));
        settle_etc(&mut tree, none).unwrap();
        assert_eq!(text_at(&tree, "/etc/resolv.conf"), None);
        let mut tree = image(&[], none);
        tree.insert(
            b"/etc/resolv.conf",
            Node {
                permissions: 0o644,
                mtime: 0,
                content: Content::Bytes(b"nameserver 8.8.4.4\n".to_vec()),
            },
        )
        .unwrap();
        let before = tree.clone();
        settle_etc(&mut tree, user_network()).unwrap();
        assert!(tree.same_entries(&before));
        settle_etc(&mut tree, none).unwrap();
        assert!(tree.same_entries(&before));
    }

    #[test]
    fn hosts_always_maps_localhost() {
        let dir = crate::tempfiles::test_dir();
        let hosts = |text: &str| {
            let files = [file_mapping(dir.path(), "hosts", text, "/etc/hosts")];
            let tree = skiff_image(&base_spec(&files, &[])).unwrap().0;
            text_at(&tree, "/etc/hosts").unwrap()
        };
        assert_eq!(hosts("10.0.0.5 db\n"), "10.0.0.5 db\n127.0.0.1 localhost\n");
        assert_eq!(hosts("10.0.0.5 db"), "10.0.0.5 db\n127.0.0.1 localhost\n");
        assert_eq!(
            hosts("# 127.0.0.1 localhost\n"),
            "# 127.0.0.1 localhost\n127.0.0.1 localhost\n"
        );
        assert_eq!(
            hosts("127.0.0.1 localhost.localdomain localhost\n"),
            "127.0.0.1 localhost.localdomain localhost\n"
        );
        assert_eq!(hosts(""), "127.0.0.1 localhost\n");
        let tree = skiff_image(&base_spec(&[], &[])).unwrap().0;
        assert_eq!(
            text_at(&tree, "/etc/hosts").unwrap(),
            "127.0.0.1 localhost\n::1 localhost\n"
        );
    }

    #[test]
    fn builds_are_byte_identical() {
        let dir = sample_host_dir();
        let (first, _) = build(dir.path(), &spec_files(dir.path()));
        let (second, _) = build(dir.path(), &spec_files(dir.path()));
        assert_eq!(first, second);
    }

    #[test]
    fn host_times_and_umask_do_not_change_the_bytes() {
        let dir = sample_host_dir();
        let (before, _) = build(dir.path(), &spec_files(dir.path()));
        let target = dir.path().join("conf/app.toml");
        File::options()
            .write(true)
            .open(&target)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567))
            .unwrap();
        // What a different umask would have produced.
        fs::set_permissions(&target, fs::Permissions::from_mode(0o664)).unwrap();
        fs::set_permissions(
            dir.path().join("conf/sub"),
            fs::Permissions::from_mode(0o775),
        )
        .unwrap();
        let (after, _) = build(dir.path(), &spec_files(dir.path()));
        assert!(before == after, "the archive changed");
        let entries = entries_of(&after);
        assert_eq!(
            find(&entries, "srv/conf/app.toml").header.mtime,
            1_600_000_000
        );
    }

    #[test]
    fn source_date_epoch_values() {
        assert_eq!(source_date_epoch(None), Ok(0));
        assert_eq!(source_date_epoch(Some("".into())), Ok(0));
        assert_eq!(
            source_date_epoch(Some("1700000000".into())),
            Ok(1_700_000_000)
        );
        assert!(source_date_epoch(Some("yesterday".into()))
            .unwrap_err()
            .contains("SOURCE_DATE_EPOCH='yesterday'"));
        assert!(source_date_epoch(Some("99999999999".into()))
            .unwrap_err()
            .contains("too large"));
        assert!(source_date_epoch(Some("-5".into())).is_err());
    }

    #[test]
    fn permissions_are_normalized() {
        assert_eq!(normalized_permissions(0o100600, false), 0o644);
        assert_eq!(normalized_permissions(0o100664, false), 0o644);
        assert_eq!(normalized_permissions(0o104750, false), 0o755);
        assert_eq!(normalized_permissions(0o040700, true), 0o755);
    }

    #[test]
    fn program_path_workdir_and_volumes() {
        let dir = sample_host_dir();
        let files = spec_files(dir.path());
        let args = [OsString::from("x")];
        let volumes = [b"/data".to_vec(), b"/var/cache".to_vec()];
        let spec = ImageSpec {
            exe: b"/opt/app/prog".to_vec(),
            cwd: b"/srv/work".to_vec(),
            volumes: &volumes,
            ..base_spec(&files, &args)
        };
        let (tree, config) = skiff_image(&spec).unwrap();
        assert_eq!(config.exe, b"/opt/app/prog");
        assert_eq!(config.argv, [&b"/opt/app/prog"[..], b"x"]);
        assert_eq!(config.cwd, b"/srv/work");
        let mounts: Vec<_> = config
            .volumes
            .iter()
            .map(|v| (v.serial.as_slice(), v.mount_point.as_slice()))
            .collect();
        assert_eq!(
            mounts,
            [
                (&b"skiff-vol0"[..], &b"/data"[..]),
                (&b"skiff-vol1"[..], &b"/var/cache"[..])
            ]
        );
        // The working directory is created; mount points are left to the kernel.
        assert!(tree.get(b"/srv/work").unwrap().is_directory());
        assert!(tree.get(b"/data").is_none());
        assert!(tree.get(b"/bin/prog").is_none());

        // A working directory on a volume is not created in the initrd.
        let spec = ImageSpec {
            cwd: b"/data/sub".to_vec(),
            volumes: &volumes,
            ..base_spec(&files, &args)
        };
        let (tree, _) = skiff_image(&spec).unwrap();
        assert!(tree.get(b"/data/sub").is_none() && tree.get(b"/data").is_none());
    }

    #[test]
    fn volumes_may_not_hide_the_image() {
        let dir = sample_host_dir();
        let files = spec_files(dir.path());
        let error = |volumes: &[Vec<u8>], cwd: &[u8]| {
            let spec = ImageSpec {
                volumes,
                cwd: cwd.to_vec(),
                ..base_spec(&files, &[])
            };
            skiff_image(&spec).unwrap_err()
        };
        let e = error(&[b"/srv".to_vec()], b"/");
        assert!(e.contains("would hide /srv/conf"), "{e}");
        let e = error(&[b"/bin".to_vec()], b"/");
        assert!(e.contains("would hide the program /bin/prog"), "{e}");
        let e = error(&[b"/etc/hosts".to_vec()], b"/");
        assert!(e.contains("the image has a file there"), "{e}");
        let e = error(&[b"/a".to_vec(), b"/a".to_vec()], b"/");
        assert!(e.contains("two volumes are mounted at /a"), "{e}");
        let e = error(&[b"/".to_vec()], b"/");
        assert!(e.contains("cannot be mounted at /"), "{e}");
        let e = error(&[], b"/etc/hosts");
        assert!(e.contains("working directory /etc/hosts is a file"), "{e}");
        // /tmp exists but is empty: mounting over it is fine.
        let spec = ImageSpec {
            volumes: &[b"/tmp".to_vec()],
            ..base_spec(&files, &[])
        };
        skiff_image(&spec).unwrap();
    }

    #[test]
    fn archives_read_back_into_the_same_tree() {
        let dir = sample_host_dir();
        let (bytes, config) = build(dir.path(), &spec_files(dir.path()));
        let mut tree = InitrdTree::from_entries(entries_of(&bytes)).unwrap();
        assert!(archive(&tree) == bytes);
        let changed = RunConfig {
            argv: vec![b"/bin/prog".to_vec(), b"other".to_vec()],
            ..config
        };
        insert_run_config(&mut tree, &changed).unwrap();
        let entries = entries_of(&archive(&tree));
        assert_eq!(run_config_in(&entries).unwrap(), changed);
        assert_eq!(find(&entries, "bin/prog").data, b"\x7fELF pretend");
        assert!(run_config_in(&[])
            .unwrap_err()
            .contains("no run configuration"));
    }

    #[test]
    fn whole_directory_at_root_merges() {
        let dir = sample_host_dir();
        let files = [FileMapping {
            host: dir.path().join("conf"),
            guest: b"/".to_vec(),
        }];
        let (bytes, _) = build(dir.path(), &files);
        let entries = entries_of(&bytes);
        assert_eq!(find(&entries, "app.toml").data, b"port = 80\n");
        assert_eq!(find(&entries, "sub/data.bin").data, [0u8, 1, 2, 255]);
        assert!(entries.iter().all(|e| !e.header.name.is_empty()));
    }

    #[test]
    fn program_wins_over_a_file_at_its_path() {
        let dir = sample_host_dir();
        let files = [FileMapping {
            host: dir.path().join("passwd"),
            guest: b"/bin/prog".to_vec(),
        }];
        let (bytes, _) = build(dir.path(), &files);
        assert_eq!(
            find(&entries_of(&bytes), "bin/prog").data,
            b"\x7fELF pretend"
        );
    }

    #[test]
    fn missing_and_special_host_files_are_errors() {
        let dir = sample_host_dir();
        let mut tree = InitrdTree::new(0);
        let missing = tree
            .add_host_path(&dir.path().join("nope"), b"/x")
            .unwrap_err();
        assert!(
            missing.ends_with("nope: no such file or directory"),
            "{missing}"
        );
        let special = tree
            .add_host_path(Path::new("/dev/null"), b"/x")
            .unwrap_err();
        assert!(special.contains("only regular files"), "{special}");
    }

    #[test]
    fn changed_host_file_is_detected() {
        let dir = sample_host_dir();
        let path = dir.path().join("passwd");
        let mut tree = InitrdTree::new(0);
        tree.add_host_path(&path, b"/p").unwrap();
        fs::write(&path, b"longer contents than before\n").unwrap();
        assert!(tree.write_to(Vec::new()).unwrap_err().contains("grew"));
        fs::write(&path, b"x").unwrap();
        assert!(tree.write_to(Vec::new()).unwrap_err().contains("shrank"));
    }

    #[test]
    fn key_normalization() {
        assert_eq!(key_of(b"/a/b"), b"a/b");
        assert_eq!(key_of(b"//a"), b"a");
        assert_eq!(key_of(b"/"), b"");
    }
}
