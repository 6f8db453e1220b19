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
}
