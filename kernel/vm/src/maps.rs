//! `/proc/self/maps` text, in Linux's exact format (`show_map_vma` in
//! `fs/proc/task_mmu.c`):
//!
//! ```text
//! %08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu <pad to column 72> <space><name>
//! ```
//!
//! The header always ends in a space (so unnamed lines end with `"0 "`), and a name is
//! preceded by padding to column 72 plus one space, which puts it at column 73.

use crate::vma::{Backing, Vma, VmaKind};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Width Linux pads the header to before a name (`25 + sizeof(void *) * 6 - 1`).
const NAME_COLUMN_PAD: usize = 72;

/// Name Linux shows for `MAP_SHARED | MAP_ANONYMOUS` memory (its shmem file is unlinked).
const SHARED_ANONYMOUS_NAME: &str = "/dev/zero (deleted)";

/// Major number of a glibc-encoded `st_dev` (`gnu_dev_major`).
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// Minor number of a glibc-encoded `st_dev` (`gnu_dev_minor`).
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

/// Appends `path` the way `seq_file_path(m, file, "\n")` does: a newline is escaped as
/// `\012`; bytes that are not UTF-8 become U+FFFD because the result is a `String`.
fn push_escaped_path(out: &mut String, path: &[u8]) {
    let text = String::from_utf8_lossy(path);
    for ch in text.chars() {
        if ch == '\n' {
            out.push_str("\\012");
        } else {
            out.push(ch);
        }
    }
}

/// Appends one line for `vma`.
pub(crate) fn write_line(out: &mut String, vma: &Vma) {
    let line_start = out.len();
    let prot = vma.prot();
    let (offset, dev, ino, path): (u64, u64, u64, Option<Vec<u8>>) = match vma.backing() {
        Backing::File { source, offset, .. } => {
            let (dev, ino, path) = source.describe();
            (*offset, dev, ino, Some(path))
        }
        // Linux shows shared anonymous memory on the internal shmem mount (00:01).
        Backing::Anonymous if vma.is_shared() => (0, 1, 0, None),
        Backing::Anonymous => (0, 0, 0, None),
    };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        vma.start(),
        vma.end(),
        if prot.read { 'r' } else { '-' },
        if prot.write { 'w' } else { '-' },
        if prot.exec { 'x' } else { '-' },
        if vma.is_shared() { 's' } else { 'p' },
        offset,
        dev_major(dev),
        dev_minor(dev),
        ino,
    );
    let name_start = |out: &mut String| {
        while out.len() - line_start < NAME_COLUMN_PAD {
            out.push(' ');
        }
        out.push(' ');
    };
    match (vma.kind(), path) {
        (VmaKind::Heap, _) => {
            name_start(out);
            out.push_str("[heap]");
        }
        (VmaKind::Stack, _) => {
            name_start(out);
            out.push_str("[stack]");
        }
        (_, Some(path)) => {
            name_start(out);
            push_escaped_path(out, &path);
        }
        (_, None) if vma.is_shared() => {
            name_start(out);
            out.push_str(SHARED_ANONYMOUS_NAME);
        }
        (_, None) => {}
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_decode_like_glibc() {
        // makedev(0xfe, 0) as glibc encodes it.
        assert_eq!((dev_major(0xfe00), dev_minor(0xfe00)), (0xfe, 0));
        // makedev(259, 70000): high minor bits live above bit 20.
        let dev = (259u64 & 0xfff) << 8 | (70000u64 & 0xff) | ((70000u64 & !0xff) << 12);
        assert_eq!((dev_major(dev), dev_minor(dev)), (259, 70000));
    }

    #[test]
    fn newlines_in_paths_are_escaped() {
        let mut out = String::new();
        push_escaped_path(&mut out, b"/tmp/a\nb");
        assert_eq!(out, "/tmp/a\\012b");
    }
}
