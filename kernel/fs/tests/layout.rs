use skiff_fs::*;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn sample() -> Stat {
    Stat {
        dev: makedev(8, 1),
        ino: 0x1122334455,
        nlink: 3,
        mode: S_IFREG | 0o644,
        uid: 1000,
        gid: 1001,
        rdev: makedev(1, 3),
        size: 123456,
        blksize: 4096,
        blocks: 248,
        atime: Timespec::new(111, 1),
        mtime: Timespec::new(222, 2),
        ctime: Timespec::new(333, 3),
        btime: Some(Timespec::new(44, 4)),
        mount_id: 9,
    }
}

#[test]
fn linux_stat_layout() {
    let b = sample().to_linux_stat();
    assert_eq!(b.len(), 144);
    assert_eq!(u64_at(&b, 0), makedev(8, 1));
    assert_eq!(u64_at(&b, 8), 0x1122334455);
    assert_eq!(u64_at(&b, 16), 3);
    assert_eq!(u32_at(&b, 24), S_IFREG | 0o644);
    assert_eq!(u32_at(&b, 28), 1000);
    assert_eq!(u32_at(&b, 32), 1001);
    assert_eq!(u32_at(&b, 36), 0);
    assert_eq!(u64_at(&b, 40), makedev(1, 3));
    assert_eq!(u64_at(&b, 48), 123456);
    assert_eq!(u64_at(&b, 56), 4096);
    assert_eq!(u64_at(&b, 64), 248);
    assert_eq!((u64_at(&b, 72), u64_at(&b, 80)), (111, 1));
    assert_eq!((u64_at(&b, 88), u64_at(&b, 96)), (222, 2));
    assert_eq!((u64_at(&b, 104), u64_at(&b, 112)), (333, 3));
    assert!(b[120..].iter().all(|&x| x == 0));
}

#[test]
fn statx_layout() {
    let b = sample().to_statx(STATX_BASIC_STATS);
    assert_eq!(b.len(), 256);
    assert_eq!(
        u32_at(&b, 0),
        STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID
    );
    assert_eq!(u32_at(&b, 4), 4096);
    assert_eq!(u32_at(&b, 16), 3);
    assert_eq!(u32_at(&b, 20), 1000);
    assert_eq!(u32_at(&b, 24), 1001);
    assert_eq!(u16::from_le_bytes([b[28], b[29]]), (S_IFREG | 0o644) as u16);
    assert_eq!(u64_at(&b, 32), 0x1122334455);
    assert_eq!(u64_at(&b, 40), 123456);
    assert_eq!(u64_at(&b, 48), 248);
    assert_eq!((u64_at(&b, 64), u32_at(&b, 72)), (111, 1));
    assert_eq!((u64_at(&b, 80), u32_at(&b, 88)), (44, 4));
    assert_eq!((u64_at(&b, 96), u32_at(&b, 104)), (333, 3));
    assert_eq!((u64_at(&b, 112), u32_at(&b, 120)), (222, 2));
    assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1, 3));
    assert_eq!((u32_at(&b, 136), u32_at(&b, 140)), (8, 1));
    assert_eq!(u64_at(&b, 144), 9);
    let unique = sample().to_statx(STATX_MNT_ID_UNIQUE);
    assert_eq!(
        u32_at(&unique, 0) & (STATX_MNT_ID | STATX_MNT_ID_UNIQUE),
        STATX_MNT_ID_UNIQUE
    );
    assert_eq!(
        Stat::check_statx_mask(STATX_RESERVED).err(),
        Some(skiff_errno::Errno::EINVAL)
    );
    let no_btime = Stat {
        btime: None,
        ..sample()
    }
    .to_statx(0);
    assert_eq!(u32_at(&no_btime, 0) & STATX_BTIME, 0);
}

#[test]
fn statfs_layout() {
    let s = StatFs {
        fs_type: TMPFS_MAGIC,
        block_size: 4096,
        blocks: 10,
        blocks_free: 9,
        blocks_avail: 8,
        files: 7,
        files_free: 6,
        fsid: [5, 4],
        name_len: 255,
        fragment_size: 4096,
        flags: ST_NOSUID,
    };
    let b = s.to_linux_statfs();
    assert_eq!(b.len(), 120);
    assert_eq!(u64_at(&b, 0), 0x01021994);
    assert_eq!(u64_at(&b, 8), 4096);
    assert_eq!(u64_at(&b, 16), 10);
    assert_eq!(u64_at(&b, 24), 9);
    assert_eq!(u64_at(&b, 32), 8);
    assert_eq!(u64_at(&b, 40), 7);
    assert_eq!(u64_at(&b, 48), 6);
    assert_eq!((u32_at(&b, 56), u32_at(&b, 60)), (5, 4));
    assert_eq!(u64_at(&b, 64), 255);
    assert_eq!(u64_at(&b, 72), 4096);
    assert_eq!(u64_at(&b, 80), ST_NOSUID | ST_VALID);
    assert!(b[88..].iter().all(|&x| x == 0));
}

#[test]
fn device_numbers_round_trip() {
    for (major, minor) in [
        (0, 0),
        (1, 3),
        (5, 1),
        (259, 65537),
        (4095, 255),
        (0xfffff, 0xfffff),
    ] {
        let dev = makedev(major, minor);
        assert_eq!((dev_major(dev), dev_minor(dev)), (major, minor));
    }
    assert_eq!(makedev(1, 3), 0x103);
    assert_eq!(makedev(8, 17), 0x811);
}

#[test]
fn termios_and_dirent_types() {
    let t = Termios::linux_default();
    let b = t.to_bytes();
    assert_eq!(b.len(), 36);
    assert_eq!(u32_at(&b, 0), 0o2400);
    assert_eq!(u32_at(&b, 8), 0o2277);
    assert_eq!(b[17], 3, "VINTR is ^C");
    assert_eq!(Termios::from_bytes(&b).unwrap(), t);
    assert_eq!(FileType::Regular.dirent_type(), 8);
    assert_eq!(FileType::Directory.dirent_type(), 4);
    assert_eq!(FileType::Symlink.dirent_type(), 10);
    assert_eq!(
        FileType::from_mode(S_IFSOCK | 0o777),
        Some(FileType::Socket)
    );
    assert_eq!(FileType::from_mode(0), None);
}
