//! Finding the kernel image and the QEMU binary.
//!
//! The kernel image is, in order: `--kernel`, `$SKIFF_KERNEL`, `skiff-kernel` beside the
//! `skiff` executable (where `cargo build --release` puts both), then
//! `../lib/skiff/skiff-kernel` relative to the executable's directory (an installed
//! layout: `bin/skiff` and `lib/skiff/skiff-kernel`). An explicitly named image that does
//! not exist is an error rather than a reason to look elsewhere.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::qemu::DEFAULT_QEMU;

/// File name of the kernel image.
pub const KERNEL_FILE_NAME: &str = "skiff-kernel";
/// Environment variable naming the kernel image.
pub const KERNEL_ENV: &str = "SKIFF_KERNEL";
/// Environment variable naming the QEMU binary.
pub const QEMU_ENV: &str = "SKIFF_QEMU";

/// Find the kernel image. `exe_dir` is the directory of the running `skiff`;
/// `is_file` tells whether a path is an existing file (a parameter for tests).
pub fn find_kernel(
    flag: Option<&Path>,
    env: Option<OsString>,
    exe_dir: Option<&Path>,
    is_file: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let named = flag.map(|p| (p.to_path_buf(), "--kernel")).or_else(|| {
        env.filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), KERNEL_ENV))
    });
    if let Some((path, source)) = named {
        return if is_file(&path) {
            Ok(path)
        } else {
            Err(format!(
                "kernel image {} (from {source}) not found",
                path.display()
            ))
        };
    }
    let Some(dir) = exe_dir else {
        return Err(format!(
            "cannot locate the kernel image (the skiff executable's directory is unknown); \
             pass --kernel PATH or set {KERNEL_ENV}"
        ));
    };
    let candidates = [
        dir.join(KERNEL_FILE_NAME),
        dir.join("..")
            .join("lib")
            .join("skiff")
            .join(KERNEL_FILE_NAME),
    ];
    for candidate in &candidates {
        if is_file(candidate) {
            return Ok(candidate.clone());
        }
    }
    Err(format!(
        "kernel image not found (looked for {} and {}); build it with \
         'cargo build --release', or pass --kernel PATH or set {KERNEL_ENV}",
        candidates[0].display(),
        candidates[1].display()
    ))
}

/// The QEMU program: `--qemu`, else `$SKIFF_QEMU`, else `qemu-system-x86_64` from `PATH`.
/// Returns the program and whether the user named it explicitly.
pub fn find_qemu(flag: Option<&Path>, env: Option<OsString>) -> (PathBuf, bool) {
    match flag
        .map(Path::to_path_buf)
        .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
    {
        Some(path) => (path, true),
        None => (PathBuf::from(DEFAULT_QEMU), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(existing: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p| existing.iter().any(|e| Path::new(e) == p)
    }

    #[test]
    fn explicit_kernel_wins_and_must_exist() {
        let found = find_kernel(
            Some(Path::new("/k/a")),
            Some("/k/b".into()),
            Some(Path::new("/opt/bin")),
            only(&["/k/a", "/k/b", "/opt/bin/skiff-kernel"]),
        );
        assert_eq!(found, Ok(PathBuf::from("/k/a")));
        let from_env = find_kernel(
            None,
            Some("/k/b".into()),
            None,
            only(&["/k/b", "/opt/bin/skiff-kernel"]),
        );
        assert_eq!(from_env, Ok(PathBuf::from("/k/b")));
        let missing = find_kernel(
            Some(Path::new("/k/a")),
            None,
            Some(Path::new("/opt/bin")),
            only(&["/opt/bin/skiff-kernel"]),
        );
        assert!(missing
            .unwrap_err()
            .contains("/k/a (from --kernel) not found"));
        let missing_env = find_kernel(None, Some("/k/b".into()), None, only(&[]));
        assert!(missing_env.unwrap_err().contains("from SKIFF_KERNEL"));
    }

    #[test]
    fn kernel_beside_executable_then_lib_dir() {
        let beside = find_kernel(
            None,
            None,
            Some(Path::new("/t/release")),
            only(&["/t/release/skiff-kernel"]),
        );
        assert_eq!(beside, Ok(PathBuf::from("/t/release/skiff-kernel")));
        let installed = find_kernel(
            None,
            Some("".into()),
            Some(Path::new("/usr/local/bin")),
            only(&["/usr/local/bin/../lib/skiff/skiff-kernel"]),
        );
        assert_eq!(
            installed,
            Ok(PathBuf::from("/usr/local/bin/../lib/skiff/skiff-kernel"))
        );
        let none = find_kernel(None, None, Some(Path::new("/x")), only(&[])).unwrap_err();
        assert!(
            none.contains("/x/skiff-kernel") && none.contains("--kernel"),
            "{none}"
        );
    }

    #[test]
    fn qemu_choice() {
        assert_eq!(
            find_qemu(None, None),
            (PathBuf::from("qemu-system-x86_64"), false)
        );
        assert_eq!(
            find_qemu(None, Some("".into())),
            (PathBuf::from("qemu-system-x86_64"), false)
        );
        assert_eq!(
            find_qemu(None, Some("/q".into())),
            (PathBuf::from("/q"), true)
        );
        assert_eq!(
            find_qemu(Some(Path::new("/f")), Some("/q".into())),
            (PathBuf::from("/f"), true)
        );
    }
}
