//! Temporary files and directories, with std only.
//!
//! The `tempfile` crate would pull in `rustix`, whose `std` feature switches on
//! `bitflags/std`; the kernel (built in the same workspace, so with unified features)
//! uses `bitflags` through `virtio-drivers` and `starry-fatfs`, and a `bitflags` linked
//! against std breaks the no_std kernel. This module is the little the CLI needs.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A temporary file or directory, removed (recursively) when dropped.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    is_dir: bool,
    keep: bool,
}

impl TempPath {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the file or directory: it is no longer removed on drop.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = if self.is_dir {
            fs::remove_dir_all(&self.path)
        } else {
            fs::remove_file(&self.path)
        };
    }
}

/// A name nobody else is likely to pick: prefix, process id, a clock reading and a
/// counter. Creation uses exclusive modes, so a clash is retried, never shared.
fn candidate(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{prefix}{}-{nanos:08x}-{count}{suffix}",
        std::process::id()
    ))
}

fn retry<T>(mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    for _ in 0..100 {
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not find an unused temporary name",
    ))
}

/// Create a new private (0600) file in `dir`.
pub fn temp_file(dir: &Path, prefix: &str, suffix: &str) -> io::Result<(File, TempPath)> {
    retry(|| {
        let path = candidate(dir, prefix, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok((
            file,
            TempPath {
                path,
                is_dir: false,
                keep: false,
            },
        ))
    })
}

/// How old a leftover temporary file must be before [`remove_stale`] takes it: a
/// process in another PID namespace sharing the directory looks dead from here, and its
/// file is only needed until its QEMU has read it, moments after it was written.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes files in `dir` that an earlier skiff left behind when it was killed before
/// it could clean up: regular files named `{prefix}{pid}-{hex}-{count}{suffix}` (the
/// pattern [`temp_file`] makes), owned by `uid`, unchanged for a minute, whose process
/// `pid` no longer exists. Files of live processes, of other users and of any other
/// name are never touched; failures are ignored (it is only tidying). Returns how many
/// were removed.
pub fn remove_stale(dir: &Path, prefix: &str, suffix: &str, uid: u32) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix)?.strip_suffix(suffix))
            .and_then(stale_pattern_pid)
        else {
            continue;
        };
        let path = entry.path();
        let ours = fs::symlink_metadata(&path).is_ok_and(|m| {
            let old = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_AFTER);
            m.is_file() && m.uid() == uid && old
        });
        if ours
            && pid != std::process::id()
            && !process_exists(pid)
            && fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The pid of a temporary name's middle part, `{pid}-{hex}-{count}`.
fn stale_pattern_pid(middle: &str) -> Option<u32> {
    let mut parts = middle.split('-');
    let pid = parts.next()?.parse().ok()?;
    let nanos = parts.next()?;
    let count = parts.next()?;
    let valid = parts.next().is_none()
        && !nanos.is_empty()
        && nanos.bytes().all(|b| b.is_ascii_hexdigit())
        && !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit());
    valid.then_some(pid)
}

fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Create a new private (0700) directory in `parent`.
pub fn temp_dir(parent: &Path, prefix: &str) -> io::Result<TempPath> {
    retry(|| {
        let path = candidate(parent, prefix, "");
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(TempPath {
            path,
            is_dir: true,
            keep: false,
        })
    })
}

/// A scratch directory for a unit test.
#[cfg(test)]
pub fn test_dir() -> TempPath {
    temp_dir(&std::env::temp_dir(), "skiff-test-").unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_are_removed_unless_kept() {
        let dir = test_dir();
        let (_file, temp) = temp_file(dir.path(), "a-", ".cpio").unwrap();
        let file_path = temp.path().to_path_buf();
        assert!(file_path.is_file());
        assert!(file_path.to_string_lossy().ends_with(".cpio"));
        drop(temp);
        assert!(!file_path.exists());

        let sub = temp_dir(dir.path(), "d-").unwrap();
        fs::write(sub.path().join("x"), b"x").unwrap();
        let sub_path = sub.path().to_path_buf();
        drop(sub);
        assert!(!sub_path.exists());

        let kept = temp_dir(dir.path(), "k-").unwrap().keep();
        assert!(kept.is_dir());
        let (_a, first) = temp_file(dir.path(), "same-", "").unwrap();
        let (_b, second) = temp_file(dir.path(), "same-", "").unwrap();
        assert_ne!(first.path(), second.path());
        let root = dir.path().to_path_buf();
        drop(dir);
        assert!(!root.exists());
    }

    #[test]
    fn stale_files_of_dead_processes_are_removed_and_nothing_else() {
        use std::os::unix::fs::MetadataExt;
        let dir = test_dir();
        let (_file, mine) = temp_file(dir.path(), "skiff-initrd-", ".cpio").unwrap();
        let uid = fs::metadata(mine.path()).unwrap().uid();
        // A process that has exited: its pid is free until reused.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let write = |name: String| {
            let path = dir.path().join(name);
            let file = File::create(&path).unwrap();
            let past = SystemTime::now() - std::time::Duration::from_secs(120);
            file.set_modified(past).unwrap();
            path
        };
        let stale = write(format!("skiff-initrd-{dead}-0badf00d-3.cpio"));
        // Just written: its QEMU may not have read it yet.
        let fresh = dir
            .path()
            .join(format!("skiff-initrd-{dead}-0badf00d-4.cpio"));
        fs::write(&fresh, b"x").unwrap();
        let keep = [
            write(format!("skiff-initrd-{}-0badf00d-3.cpio", live.id())),
            write(format!("skiff-initrd-{dead}-0badf00d-3.img")),
            write(format!("other-{dead}-0badf00d-3.cpio")),
            write(format!("skiff-initrd-{dead}-xyz-3.cpio")),
            write(format!("skiff-initrd-{dead}.cpio")),
        ];
        let stale_dir = dir.path().join(format!("skiff-initrd-{dead}-00-1.cpio"));
        fs::create_dir(&stale_dir).unwrap();
        assert_eq!(
            remove_stale(dir.path(), "skiff-initrd-", ".cpio", uid + 1),
            0
        );
        assert_eq!(remove_stale(dir.path(), "skiff-initrd-", ".cpio", uid), 1);
        assert!(!stale.exists());
        assert!(keep.iter().all(|p| p.exists()) && stale_dir.is_dir() && fresh.exists());
        assert!(mine.path().exists(), "this process's own file");
        let mut live = live;
        let _ = live.kill();
        let _ = live.wait();
    }
}
