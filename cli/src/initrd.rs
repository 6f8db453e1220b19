//! The guest's root filesystem, packed as a cpio `newc` initrd.
//!
//! [`InitrdTree`] is an in-memory map from guest path to entry (directory, bytes, a host
//! file to stream, or a symlink) that keeps the tree consistent: parents are created as
//! needed, a later entry replaces an earlier one at the same path, and a file may not
//! replace a directory that has contents. [`skiff_image`] lays out what every Skiff guest
//! gets (`/bin`, `/etc`, `/tmp`, `/root`, a few `/etc` files, the program and its run
//! configuration) plus the user's `--file`s. The archive is deterministic: entries
//! sorted by path, inode numbers sequential, owner root, and times taken from the source
//! files (0 for synthesized entries), so the same inputs give the same bytes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use skiff_bootproto::{RunConfig, RUN_CONFIG_PATH};

use crate::cpio::{CpioWriter, EntryHeader, S_IFDIR, S_IFLNK, S_IFREG};
use crate::options::FileMapping;

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
    /// Seconds since the epoch (0 for synthesized entries).
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

/// Clamp a host timestamp into cpio's 32-bit field.
fn mtime_of(metadata: &fs::Metadata) -> u32 {
    metadata.mtime().clamp(0, i64::from(u32::MAX)) as u32
}

impl InitrdTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry at an absolute guest path, if any.
    #[cfg(test)]
    pub fn get(&self, guest_path: &[u8]) -> Option<&Node> {
        self.nodes.get(key_of(guest_path))
    }

    /// Number of entries (parents created implicitly included).
    pub fn entry_count(&self) -> usize {
        self.nodes.len()
    }

    /// Add or replace the entry at an absolute guest path. Missing parent directories are
    /// created (mode 0755, time 0). Adding at `/` itself only makes sense for a directory
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
                        .insert(parent.to_vec(), Node::directory(0o755, 0));
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
        let permissions = metadata.mode() & 0o7777;
        let mtime = mtime_of(metadata);
        let file_type = metadata.file_type();
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
    /// The program's bytes (already checked by the loader) and its host metadata.
    pub program: &'a [u8],
    /// The program's host path (its file name becomes `/bin/<name>`).
    pub program_path: &'a Path,
    /// Modification time of the program file.
    pub program_mtime: u32,
    /// Arguments after argv[0].
    pub args: &'a [OsString],
    /// `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// The user's `--file`s, in order.
    pub files: &'a [FileMapping],
}

/// Synthesized files every guest gets; `--file`s may replace them.
const DEFAULT_FILES: &[(&str, &str)] = &[
    ("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ("/etc/group", "root:x:0:\n"),
    ("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n"),
    ("/etc/hostname", "skiff\n"),
    ("/etc/resolv.conf", "nameserver 10.0.2.3\n"),
];

/// Lay out a Skiff guest: the standard directories and `/etc` files, then the user's
/// `--file`s (which override those defaults), then the program at `/bin/<name>` and the
/// run configuration (added last so that no `--file` can replace what is being run).
pub fn skiff_image(spec: &ImageSpec) -> Result<(InitrdTree, RunConfig), String> {
    let name = spec
        .program_path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", spec.program_path.display()))?;
    let exe = [b"/bin/", name.as_bytes()].concat();

    let mut tree = InitrdTree::new();
    for (dir, permissions) in [
        ("/bin", 0o755),
        ("/etc", 0o755),
        ("/root", 0o700),
        ("/tmp", 0o1777),
    ] {
        tree.insert(dir.as_bytes(), Node::directory(permissions, 0))?;
    }
    for (path, text) in DEFAULT_FILES {
        let content = Content::Bytes(text.as_bytes().to_vec());
        tree.insert(
            path.as_bytes(),
            Node {
                permissions: 0o644,
                mtime: 0,
                content,
            },
        )?;
    }
    for mapping in spec.files {
        tree.add_host_path(&mapping.host, &mapping.guest)
            .map_err(|e| format!("--file {}: {e}", mapping.host.display()))?;
    }
    let program = Content::Bytes(spec.program.to_vec());
    tree.insert(
        &exe,
        Node {
            permissions: 0o755,
            mtime: spec.program_mtime,
            content: program,
        },
    )?;

    let mut argv = vec![exe.clone()];
    argv.extend(spec.args.iter().map(|a| a.as_bytes().to_vec()));
    let config = RunConfig {
        volumes: Vec::new(),
        exe,
        argv,
        envp: spec.env.clone(),
        cwd: b"/".to_vec(),
    };
    let encoded = config
        .encode()
        .map_err(|e| format!("the run configuration cannot be encoded: {e:?}"))?;
    let config_path = [b"/", RUN_CONFIG_PATH.as_bytes()].concat();
    let parent = &config_path[..config_path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
    if !parent.is_empty() {
        tree.insert(parent, Node::directory(0o700, 0))?;
    }
    tree.insert(
        &config_path,
        Node {
            permissions: 0o600,
            mtime: 0,
            content: Content::Bytes(encoded),
        },
    )?;
    Ok((tree, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::reader::{read_archive, ReadEntry};
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn archive(tree: &InitrdTree) -> Vec<u8> {
        tree.write_to(Vec::new()).unwrap()
    }

    fn find<'a>(entries: &'a [ReadEntry], name: &str) -> &'a ReadEntry {
        entries
            .iter()
            .find(|e| e.header.name == name.as_bytes())
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn parents_are_created_and_entries_sorted() {
        let mut tree = InitrdTree::new();
        let file = |data: &str| Node {
            permissions: 0o644,
            mtime: 5,
            content: Content::Bytes(data.as_bytes().to_vec()),
        };
        tree.insert(b"/z/y/x", file("deep")).unwrap();
        tree.insert(b"/a-b", file("dash")).unwrap();
        tree.insert(b"/a/c", file("c")).unwrap();
        let entries = read_archive(&archive(&tree));
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
        let mut tree = InitrdTree::new();
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

    fn sample_host_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
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

    fn build(root: &Path, files: &[FileMapping]) -> (Vec<u8>, RunConfig) {
        let args = [OsString::from("--port"), OsString::from("8080")];
        let spec = ImageSpec {
            program: b"\x7fELF pretend",
            program_path: &root.join("prog"),
            program_mtime: 1_600_000_000,
            args: &args,
            env: vec![b"PATH=/bin".to_vec()],
            files,
        };
        let (tree, config) = skiff_image(&spec).unwrap();
        (archive(&tree), config)
    }

    #[test]
    fn skiff_layout() {
        let dir = sample_host_dir();
        let (bytes, config) = build(dir.path(), &spec_files(dir.path()));
        let entries = read_archive(&bytes);

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
            b"nameserver 10.0.2.3\n"
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
        let data = find(&entries, "srv/conf/sub/data.bin");
        assert_eq!(
            (data.data.as_slice(), data.header.mode),
            (&[0u8, 1, 2, 255][..], S_IFREG | 0o600)
        );
        let link = find(&entries, "srv/conf/link");
        assert_eq!(
            (link.data.as_slice(), link.header.mode & 0o170000),
            (&b"app.toml"[..], S_IFLNK)
        );
        for entry in &entries {
            assert_eq!((entry.header.uid, entry.header.gid), (0, 0));
        }

        let run = find(&entries, RUN_CONFIG_PATH);
        assert_eq!(RunConfig::decode(&run.data).unwrap(), config);
        assert_eq!(config.exe, b"/bin/prog");
        assert_eq!(config.argv, [&b"/bin/prog"[..], b"--port", b"8080"]);
        assert_eq!(config.envp, [b"PATH=/bin"]);
        assert_eq!(config.cwd, b"/");

        let mut names: Vec<_> = entries.iter().map(|e| e.header.name.clone()).collect();
        let unsorted = names.clone();
        names.sort();
        assert_eq!(names, unsorted);
    }

    #[test]
    fn builds_are_byte_identical() {
        let dir = sample_host_dir();
        let (first, _) = build(dir.path(), &spec_files(dir.path()));
        let (second, _) = build(dir.path(), &spec_files(dir.path()));
        assert_eq!(first, second);
    }

    #[test]
    fn host_mtimes_are_kept() {
        let dir = sample_host_dir();
        let target = dir.path().join("conf/app.toml");
        File::options()
            .write(true)
            .open(&target)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567))
            .unwrap();
        let (bytes, _) = build(dir.path(), &spec_files(dir.path()));
        assert_eq!(
            find(&read_archive(&bytes), "srv/conf/app.toml")
                .header
                .mtime,
            1_234_567
        );
    }

    #[test]
    fn whole_directory_at_root_merges() {
        let dir = sample_host_dir();
        let files = [FileMapping {
            host: dir.path().join("conf"),
            guest: b"/".to_vec(),
        }];
        let (bytes, _) = build(dir.path(), &files);
        let entries = read_archive(&bytes);
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
            find(&read_archive(&bytes), "bin/prog").data,
            b"\x7fELF pretend"
        );
    }

    #[test]
    fn missing_and_special_host_files_are_errors() {
        let dir = sample_host_dir();
        let mut tree = InitrdTree::new();
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
        let mut tree = InitrdTree::new();
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
