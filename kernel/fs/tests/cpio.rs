mod common;
use common::*;
use skiff_errno::Errno;
use skiff_fs::*;

/// A tiny newc writer for the tests.
struct Writer {
    out: Vec<u8>,
    crc: bool,
}

struct Entry<'a> {
    name: &'a str,
    mode: u32,
    ino: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl<'a> Entry<'a> {
    fn new(name: &'a str, mode: u32, data: &'a [u8]) -> Entry<'a> {
        Entry {
            name,
            mode,
            ino: 0,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime: 0,
            rdev: (0, 0),
            data,
        }
    }
}

impl Writer {
    fn new(crc: bool) -> Writer {
        Writer {
            out: Vec::new(),
            crc,
        }
    }
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
    fn add(&mut self, e: &Entry) -> &mut Self {
        let check = if self.crc {
            e.data.iter().map(|&b| b as u32).sum::<u32>()
        } else {
            0
        };
        self.out
            .extend_from_slice(if self.crc { b"070702" } else { b"070701" });
        for v in [
            e.ino,
            e.mode,
            e.uid,
            e.gid,
            e.nlink,
            e.mtime,
            e.data.len() as u32,
            0,
            0,
            e.rdev.0,
            e.rdev.1,
            e.name.len() as u32 + 1,
            check,
        ] {
            self.out.extend_from_slice(format!("{v:08X}").as_bytes());
        }
        self.out.extend_from_slice(e.name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(e.data);
        self.pad();
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        self.add(&Entry::new("TRAILER!!!", 0, b""));
        self.out.clone()
    }
}

fn sample(crc: bool) -> Vec<u8> {
    let mut w = Writer::new(crc);
    w.add(&Entry {
        mtime: 1000,
        ..Entry::new(".", S_IFDIR | 0o755, b"")
    })
    .add(&Entry {
        mtime: 2000,
        uid: 3,
        gid: 4,
        ..Entry::new("./etc", S_IFDIR | 0o750, b"")
    })
    .add(&Entry {
        mtime: 3000,
        uid: 5,
        gid: 6,
        ..Entry::new("etc/passwd", S_IFREG | 0o644, b"root:x:0:0\n")
    })
    .add(&Entry::new("/bin/app", S_IFREG | 0o755, b"\x7fELF"))
    .add(&Entry::new(
        "deep/er/file",
        S_IFREG | 0o600,
        b"auto parents",
    ))
    .add(&Entry::new("etc/link", S_IFLNK | 0o777, b"passwd"))
    .add(&Entry {
        ino: 42,
        nlink: 2,
        ..Entry::new("hard1", S_IFREG | 0o644, b"")
    })
    .add(&Entry {
        ino: 42,
        nlink: 2,
        ..Entry::new("hard2", S_IFREG | 0o644, b"shared")
    })
    .add(&Entry {
        rdev: (1, 3),
        ..Entry::new("mynull", S_IFCHR | 0o666, b"")
    })
    .add(&Entry::new("afifo", S_IFIFO | 0o644, b""));
    w.finish()
}

#[test]
fn round_trip() {
    for crc in [false, true] {
        let (_clock, vfs) = bare();
        let stats = unpack_cpio(&vfs, &sample(crc)).unwrap();
        assert_eq!(stats.files, 4);
        assert_eq!(stats.dirs, 1);
        assert_eq!(stats.symlinks, 1);
        assert_eq!(stats.hard_links, 1);
        assert_eq!(stats.devices, 1);
        assert_eq!(stats.skipped, 1);
        let root = vfs.root();
        let read = |p: &str| {
            let f = vfs
                .open(&root, p.as_bytes(), OpenFlags(OpenFlags::O_RDONLY), 0)
                .unwrap();
            read_to_end(&f).unwrap()
        };
        assert_eq!(read("/etc/passwd"), b"root:x:0:0\n");
        assert_eq!(read("/etc/link"), b"root:x:0:0\n");
        assert_eq!(read("/bin/app"), b"\x7fELF");
        assert_eq!(read("/deep/er/file"), b"auto parents");
        assert_eq!(read("/hard1"), b"shared");
        let st = |p: &str| vfs.stat(&root, p.as_bytes(), false).unwrap();
        assert_eq!(st("/hard1").ino, st("/hard2").ino);
        assert_eq!(st("/hard1").nlink, 2);
        let passwd = st("/etc/passwd");
        assert_eq!(
            (passwd.mode, passwd.uid, passwd.gid, passwd.mtime.sec),
            (S_IFREG | 0o644, 5, 6, 3000)
        );
        let etc = st("/etc");
        assert_eq!(
            (etc.mode, etc.uid, etc.gid, etc.mtime.sec),
            (S_IFDIR | 0o750, 3, 4, 2000)
        );
        assert_eq!(st("/").mtime.sec, 1000);
        assert_eq!(st("/bin/app").mode, S_IFREG | 0o755);
        assert_eq!(st("/bin").mode, S_IFDIR | 0o755);
        assert_eq!(st("/etc/link").mode, S_IFLNK | 0o777);
        assert_eq!(st("/mynull").rdev, makedev(1, 3));
        assert!(vfs.stat(&root, b"/afifo", false).is_err());
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_clock, vfs) = bare();
    let mut w = Writer::new(false);
    w.add(&Entry::new("etc", S_IFDIR | 0o755, b""))
        .add(&Entry::new(
            "etc/passwd",
            S_IFREG | 0o644,
            b"default contents that are long",
        ))
        .add(&Entry::new("etc/passwd", S_IFREG | 0o600, b"user"))
        .add(&Entry::new("thing", S_IFREG | 0o644, b"file"))
        .add(&Entry::new("thing", S_IFLNK | 0o777, b"etc/passwd"))
        .add(&Entry::new("etc", S_IFDIR | 0o700, b""));
    unpack_cpio(&vfs, &w.finish()).unwrap();
    let root = vfs.root();
    let f = vfs.open(&root, b"/thing", OpenFlags(0), 0).unwrap();
    assert_eq!(read_to_end(&f).unwrap(), b"user");
    assert_eq!(
        vfs.stat(&root, b"/etc/passwd", true).unwrap().mode,
        S_IFREG | 0o600
    );
    assert_eq!(
        vfs.stat(&root, b"/etc", true).unwrap().mode,
        S_IFDIR | 0o700
    );
    // Unpacking a second archive over the first works too (user files over defaults).
    let mut w = Writer::new(false);
    w.add(&Entry::new("etc/passwd", S_IFREG | 0o644, b"second"));
    unpack_cpio(&vfs, &w.finish()).unwrap();
    let f = vfs.open(&root, b"/etc/passwd", OpenFlags(0), 0).unwrap();
    assert_eq!(read_to_end(&f).unwrap(), b"second");
}

#[test]
fn corrupt_archives_are_einval() {
    let good = sample(true);
    let (_c, vfs) = bare();
    // Every truncation fails cleanly (no panic), except ones that still include the trailer.
    for cut in [0, 1, 6, 50, 109, 110, 115, 200, good.len() - 20] {
        let (_c, vfs) = bare();
        assert_eq!(
            unpack_cpio(&vfs, &good[..cut]).err(),
            Some(Errno::EINVAL),
            "cut at {cut}"
        );
    }
    let mut bad_magic = good.clone();
    bad_magic[5] = b'9';
    assert_eq!(unpack_cpio(&vfs, &bad_magic).err(), Some(Errno::EINVAL));
    let mut bad_hex = good.clone();
    bad_hex[10] = b'G';
    assert_eq!(unpack_cpio(&vfs, &bad_hex).err(), Some(Errno::EINVAL));
    // A wrong checksum in the crc format.
    let mut w = Writer::new(true);
    w.add(&Entry::new("f", S_IFREG | 0o644, b"abc"));
    let mut bad_crc = w.finish();
    bad_crc[6 + 12 * 8 + 7] ^= 1;
    let (_c, vfs2) = bare();
    assert_eq!(unpack_cpio(&vfs2, &bad_crc).err(), Some(Errno::EINVAL));
    // Name size zero, name without NUL, huge file size.
    let mut w = Writer::new(false);
    w.add(&Entry::new("f", S_IFREG | 0o644, b"abc"));
    let mut no_nul = w.finish();
    no_nul[110 + 1] = b'x';
    assert_eq!(unpack_cpio(&vfs, &no_nul).err(), Some(Errno::EINVAL));
    let mut zero_name = no_nul.clone();
    zero_name[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000000");
    assert_eq!(unpack_cpio(&vfs, &zero_name).err(), Some(Errno::EINVAL));
    let mut w = Writer::new(false);
    w.add(&Entry::new("f", S_IFREG | 0o644, b"abc"));
    let mut huge = w.finish();
    huge[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"FFFFFFFF");
    assert_eq!(unpack_cpio(&vfs, &huge).err(), Some(Errno::EINVAL));
    // An invalid file type.
    let mut w = Writer::new(false);
    w.add(&Entry::new("f", 0o170644, b""));
    assert_eq!(unpack_cpio(&vfs, &w.finish()).err(), Some(Errno::EINVAL));
    // Garbage of every length never panics.
    for len in 0..300 {
        let junk: Vec<u8> = (0..len).map(|i| b"070701"[i % 6]).collect();
        assert!(unpack_cpio(&vfs, &junk).is_err());
    }
}

#[test]
fn unpack_then_mount_standard() {
    let (_clock, vfs) = bare();
    let mut w = Writer::new(false);
    w.add(&Entry::new("tmp", S_IFDIR | 0o755, b""))
        .add(&Entry::new("dev", S_IFDIR | 0o755, b""));
    unpack_cpio(&vfs, &w.finish()).unwrap();
    vfs.mount_standard(
        std::sync::Arc::new(FakeConsole::default()),
        true,
        std::sync::Arc::new(FakeEntropy),
        std::sync::Arc::new(FakeProc),
    )
    .unwrap();
    let root = vfs.root();
    // An existing /tmp is left as the archive made it.
    assert_eq!(
        vfs.stat(&root, b"/tmp", true).unwrap().mode,
        S_IFDIR | 0o755
    );
    assert!(vfs.stat(&root, b"/dev/null", true).is_ok());
}
