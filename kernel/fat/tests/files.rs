//! Files and directories on a FAT volume through the VFS, as applications use them.

mod common;

use common::*;
use skiff_errno::Errno;
use skiff_fat::FatType;
use skiff_fs::{
    FileSystem, OpenFlags, SetAttr, TimeUpdate, Timespec, RENAME_EXCHANGE, RENAME_NOREPLACE,
    SEEK_END, SEEK_SET,
};

const RDWR: u32 = OpenFlags::O_RDWR;
const CREAT: u32 = OpenFlags::O_CREAT;

fn each_fat(test: impl Fn(Option<FatType>)) {
    for t in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
        test(Some(t));
    }
}

fn size_for(t: Option<FatType>) -> u64 {
    match t {
        Some(FatType::Fat32) => 40,
        Some(FatType::Fat16) => 16,
        _ => 4,
    }
}

#[test]
fn create_write_read_remount() {
    each_fat(|t| {
        let disk = disk(size_for(t), t);
        let env = Env::new(&disk);
        let data = pattern(100_000, 1);
        env.write_file("/mnt/hello.txt", b"hello, world\n");
        env.write_file("/mnt/big.bin", &data);
        assert_eq!(env.read_file("/mnt/hello.txt").unwrap(), b"hello, world\n");
        assert_eq!(env.read_file("/mnt/big.bin").unwrap(), data);
        assert_eq!(env.stat("/mnt/big.bin").unwrap().size, 100_000);
        env.unmount();
        // Operations after unmount fail.
        assert_eq!(env.read_file("/mnt/hello.txt"), Err(Errno::EIO));

        let env = Env::new(&disk);
        assert_eq!(env.read_file("/mnt/HELLO.TXT").unwrap(), b"hello, world\n");
        assert_eq!(env.read_file("/mnt/big.bin").unwrap(), data);
        assert_eq!(env.ls("/mnt"), ["big.bin", "hello.txt"]);
        // An independent reader (fatfs itself) agrees.
        env.unmount();
        assert_eq!(fatfs_read(disk.image(), "big.bin").unwrap(), data);
    });
}

#[test]
fn overwrite_append_and_offsets() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    let f = env.create("/mnt/f");
    assert_eq!(f.write(b"0123456789").unwrap(), 10);
    assert_eq!(f.pwrite(b"abc", 3).unwrap(), 3);
    let mut buf = [0u8; 20];
    assert_eq!(f.pread(&mut buf, 0).unwrap(), 10);
    assert_eq!(&buf[..10], b"012abc6789");
    // Append mode writes at the end whatever the offset.
    let a = env
        .open("/mnt/f", OpenFlags::O_WRONLY | OpenFlags::O_APPEND)
        .unwrap();
    a.seek(0, SEEK_SET).unwrap();
    a.write(b"XY").unwrap();
    assert_eq!(env.read_file("/mnt/f").unwrap(), b"012abc6789XY");
    // Writes crossing cluster boundaries, at odd offsets.
    let data = pattern(50_000, 7);
    f.pwrite(&data, 1234).unwrap();
    let got = env.read_file("/mnt/f").unwrap();
    assert_eq!(got.len(), 1234 + 50_000);
    assert_eq!(&got[1234..], &data[..]);
    assert_eq!(&got[..12], b"012abc6789XY");
    assert!(got[12..1234].iter().all(|&b| b == 0), "gap reads as zeros");
    assert_eq!(f.seek(0, SEEK_END).unwrap(), 51_234);
    // Reads past the end return nothing.
    assert_eq!(f.pread(&mut buf, 60_000).unwrap(), 0);
}

#[test]
fn truncate_shrinks_and_extends_with_zeros() {
    each_fat(|t| {
        let disk = disk(size_for(t), t);
        let env = Env::new(&disk);
        let f = env.create("/mnt/t");
        f.write(&[0xaa; 10_000]).unwrap();
        f.truncate(100).unwrap();
        assert_eq!(env.stat("/mnt/t").unwrap().size, 100);
        // Growing shows zeros, not the old bytes.
        f.truncate(20_000).unwrap();
        let got = env.read_file("/mnt/t").unwrap();
        assert_eq!(got.len(), 20_000);
        assert!(got[..100].iter().all(|&b| b == 0xaa));
        assert!(got[100..].iter().all(|&b| b == 0));
        f.truncate(0).unwrap();
        assert_eq!(env.read_file("/mnt/t").unwrap(), b"");
        let st = env.stat("/mnt/t").unwrap();
        assert_eq!((st.size, st.blocks), (0, 0));
        // A write far past the end fills the gap with zeros.
        f.pwrite(b"end", 9000).unwrap();
        let got = env.read_file("/mnt/t").unwrap();
        assert_eq!(got.len(), 9003);
        assert!(got[..9000].iter().all(|&b| b == 0));
        env.unmount();
        let env = Env::new(&disk);
        assert_eq!(&env.read_file("/mnt/t").unwrap()[9000..], b"end");
    });
}

#[test]
fn free_space_is_returned() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    let before = env.vol.statfs();
    env.write_file("/mnt/a", &pattern(1_000_000, 3));
    let during = env.vol.statfs();
    let cs = env.vol.cluster_size() as u64;
    assert_eq!(
        before.blocks_free - during.blocks_free,
        1_000_000u64.div_ceil(cs)
    );
    env.unlink("/mnt/a").unwrap();
    // Only the (hidden) orphan directory still holds a cluster.
    assert_eq!(env.vol.statfs().blocks_free + 1, before.blocks_free);
    env.unmount();
    let env = Env::new(&disk);
    assert_eq!(env.vol.statfs().blocks_free, before.blocks_free);
}

#[test]
fn rename_files_and_directories() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    env.write_file("/mnt/a", b"A");
    env.write_file("/mnt/b", b"B");
    env.mkdir("/mnt/d1");
    env.mkdir("/mnt/d1/sub");
    env.write_file("/mnt/d1/sub/deep", b"deep");
    env.mkdir("/mnt/d2");

    // Over an existing file.
    let ino_a = env.stat("/mnt/a").unwrap().ino;
    env.rename("/mnt/a", "/mnt/b", 0).unwrap();
    assert_eq!(env.read_file("/mnt/b").unwrap(), b"A");
    assert_eq!(
        env.stat("/mnt/b").unwrap().ino,
        ino_a,
        "inode number survives rename"
    );
    assert_eq!(env.stat("/mnt/a"), Err(Errno::ENOENT));
    assert_eq!(
        env.rename("/mnt/b", "/mnt/d1", RENAME_NOREPLACE),
        Err(Errno::EEXIST)
    );
    assert_eq!(env.rename("/mnt/b", "/mnt/d1", 0), Err(Errno::EISDIR));
    assert_eq!(env.rename("/mnt/d1", "/mnt/b", 0), Err(Errno::ENOTDIR));

    // A directory into another directory, then check ".." and the contents.
    env.rename("/mnt/d1", "/mnt/d2/moved", 0).unwrap();
    assert_eq!(env.read_file("/mnt/d2/moved/sub/deep").unwrap(), b"deep");
    assert_eq!(
        env.stat("/mnt/d2/moved/sub/..").unwrap().ino,
        env.stat("/mnt/d2/moved").unwrap().ino
    );
    // Into itself: EINVAL. Over a non-empty directory: ENOTEMPTY.
    assert_eq!(
        env.rename("/mnt/d2", "/mnt/d2/moved/x", 0),
        Err(Errno::EINVAL)
    );
    env.mkdir("/mnt/d3");
    assert_eq!(env.rename("/mnt/d3", "/mnt/d2", 0), Err(Errno::ENOTEMPTY));
    // Over an empty directory.
    env.mkdir("/mnt/empty");
    env.rename("/mnt/d3", "/mnt/empty", 0).unwrap();
    assert_eq!(env.ls("/mnt"), ["b", "d2", "empty"]);

    // Case-only rename changes the spelling.
    env.write_file("/mnt/lower", b"x");
    env.rename("/mnt/lower", "/mnt/LOWER", 0).unwrap();
    assert!(env.ls("/mnt").contains(&"LOWER".to_string()));
    assert_eq!(env.read_file("/mnt/lower").unwrap(), b"x");

    // Exchange.
    env.write_file("/mnt/x", b"xx");
    env.rename("/mnt/x", "/mnt/d2", RENAME_EXCHANGE).unwrap();
    assert_eq!(env.read_file("/mnt/d2").unwrap(), b"xx");
    assert_eq!(env.read_file("/mnt/x/moved/sub/deep").unwrap(), b"deep");
    env.unmount();

    let env = Env::new(&disk);
    assert_eq!(env.read_file("/mnt/x/moved/sub/deep").unwrap(), b"deep");
    assert_eq!(env.read_file("/mnt/d2").unwrap(), b"xx");
    assert_eq!(env.ls("/mnt"), ["LOWER", "b", "d2", "empty", "x"]);
    env.unmount();
    let (ok, out) = fsck(&disk.image(), "rename");
    assert!(ok, "fsck.fat:\n{out}");
}

#[test]
fn unlink_while_open_keeps_data() {
    let disk = disk(8, Some(FatType::Fat16));
    let env = Env::new(&disk);
    let data = pattern(200_000, 5);
    env.write_file("/mnt/victim", &data);
    let free_before = env.vol.statfs().blocks_free;
    let f = env.open("/mnt/victim", RDWR).unwrap();
    env.unlink("/mnt/victim").unwrap();
    assert_eq!(env.stat("/mnt/victim"), Err(Errno::ENOENT));
    assert!(
        env.ls("/mnt").is_empty(),
        "orphans are invisible: {:?}",
        env.ls("/mnt")
    );
    assert_eq!(env.stat("/mnt/.skiff-orphans"), Err(Errno::ENOENT));
    assert_eq!(read_all(&f).unwrap(), data);
    assert_eq!(f.stat().unwrap().nlink, 0);
    // Still writable, and a new file of the same name is a different file.
    f.pwrite(b"more", 200_000).unwrap();
    env.write_file("/mnt/victim", b"new");
    assert_eq!(env.read_file("/mnt/victim").unwrap(), b"new");
    let mut tail = [0u8; 4];
    f.pread(&mut tail, 200_000).unwrap();
    assert_eq!(&tail, b"more");
    // Space comes back when the last reference goes.
    drop(f);
    env.unlink("/mnt/victim").unwrap();
    let cs = env.vol.cluster_size() as u64;
    // The victim's clusters are free again; the orphan directory holds one.
    assert_eq!(
        env.vol.statfs().blocks_free,
        free_before + 200_000u64.div_ceil(cs) - 1
    );
    env.unmount();
    let (ok, out) = fsck(&disk.image(), "orphan");
    assert!(ok, "fsck.fat:\n{out}");
}

#[test]
fn rename_over_open_file_keeps_its_data() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    env.write_file("/mnt/old", b"old content");
    env.write_file("/mnt/new", b"new content");
    let f = env.open("/mnt/old", OpenFlags::O_RDONLY).unwrap();
    env.rename("/mnt/new", "/mnt/old", 0).unwrap();
    assert_eq!(read_all(&f).unwrap(), b"old content");
    assert_eq!(env.read_file("/mnt/old").unwrap(), b"new content");
    drop(f);
    env.unmount();
}

#[test]
fn open_file_follows_its_entry_through_renames() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    env.mkdir("/mnt/a");
    let f = env.create("/mnt/a/file");
    f.write(b"12345").unwrap();
    env.rename("/mnt/a/file", "/mnt/renamed-with-a-long-name.dat", 0)
        .unwrap();
    env.write_file("/mnt/a/filler", b"reuses the old slot");
    f.write(b"6789").unwrap();
    f.truncate(7).unwrap();
    drop(f);
    assert_eq!(
        env.read_file("/mnt/renamed-with-a-long-name.dat").unwrap(),
        b"1234567"
    );
    assert_eq!(
        env.read_file("/mnt/a/filler").unwrap(),
        b"reuses the old slot"
    );
    env.unmount();
    let env = Env::new(&disk);
    assert_eq!(
        env.read_file("/mnt/renamed-with-a-long-name.dat").unwrap(),
        b"1234567"
    );
    assert_eq!(
        env.read_file("/mnt/a/filler").unwrap(),
        b"reuses the old slot"
    );
}

#[test]
fn same_file_same_inode() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    let a = env.create("/mnt/Shared.Txt");
    let b = env.open("/mnt/shared.txt", RDWR).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        a.inode().unwrap(),
        b.inode().unwrap()
    ));
    a.write(b"from a").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.pread(&mut buf, 0).unwrap(), 6);
    assert_eq!(&buf[..6], b"from a");
    let ino = env.stat("/mnt/SHARED.TXT").unwrap().ino;
    drop((a, b));
    // Inode numbers are stable for the mount, also after the inode was dropped.
    assert_eq!(env.stat("/mnt/shared.txt").unwrap().ino, ino);
    assert_eq!(
        env.open("/mnt/SHARED.txt", CREAT | OpenFlags::O_EXCL | RDWR)
            .err(),
        Some(Errno::EEXIST)
    );
}

#[test]
fn long_names_and_name_rules() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    let long = "a".repeat(200) + ".with a very long extension indeed";
    let names = [
        "short",
        "MixedCase.Txt",
        "spaces in name",
        "unicodé-ñame",
        "été.txt",
        "ünïcödé first",
        "emoji 😀 name",
        "many.dots.in.name",
        ".hidden",
        &long,
    ];
    for n in names {
        env.write_file(&format!("/mnt/{n}"), n.as_bytes());
    }
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(env.ls("/mnt"), want);
    for n in names {
        assert_eq!(env.read_file(&format!("/mnt/{n}")).unwrap(), n.as_bytes());
    }
    for bad in [
        "a:b",
        "q?",
        "x*y",
        "<",
        "p|q",
        "c\\d",
        "tab\tname",
        "quote\"",
    ] {
        assert_eq!(
            env.open(&format!("/mnt/{bad}"), CREAT | RDWR).err(),
            Some(Errno::EINVAL),
            "{bad}"
        );
    }
    let too_long = "b".repeat(256);
    assert_eq!(
        env.open(&format!("/mnt/{too_long}"), CREAT | RDWR).err(),
        Some(Errno::ENAMETOOLONG)
    );
    // Trailing dots are ignored, as on Linux.
    assert_eq!(env.read_file("/mnt/short...").unwrap(), b"short");
    env.unmount();
    let env = Env::new(&disk);
    assert_eq!(env.ls("/mnt"), want);
    env.unmount();
    let (ok, out) = fsck(&disk.image(), "names");
    assert!(ok, "fsck.fat:\n{out}");
}

#[test]
fn deep_trees() {
    let disk = disk(16, Some(FatType::Fat16));
    let env = Env::new(&disk);
    let mut path = String::from("/mnt");
    for i in 0..30 {
        path.push_str(&format!("/level-{i}"));
        env.mkdir(&path);
        env.write_file(&format!("{path}/file"), format!("depth {i}").as_bytes());
    }
    assert_eq!(env.read_file(&format!("{path}/file")).unwrap(), b"depth 29");
    // getcwd-style name lookup works from the bottom.
    let loc = env.vfs.resolve(&env.root(), path.as_bytes(), true).unwrap();
    assert_eq!(env.vfs.path_of(&loc).unwrap(), path.as_bytes());
    // Remove bottom up.
    for i in (0..30).rev() {
        assert_eq!(env.rmdir(&path), Err(Errno::ENOTEMPTY));
        env.unlink(&format!("{path}/file")).unwrap();
        env.rmdir(&path).unwrap();
        path.truncate(path.rfind('/').unwrap());
        let _ = i;
    }
    assert!(env.ls("/mnt").is_empty());
    env.unmount();
    let (ok, out) = fsck(&disk.image(), "deep");
    assert!(ok, "fsck.fat:\n{out}");
}

#[test]
fn readdir_is_stable_during_inserts_and_removes() {
    each_fat(|t| {
        let disk = disk(size_for(t), t);
        let env = Env::new(&disk);
        env.mkdir("/mnt/d");
        for i in 0..150 {
            env.write_file(&format!("/mnt/d/file-{i:03}"), b"");
        }
        let d = env
            .open("/mnt/d", OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
            .unwrap();
        let mut seen = Vec::new();
        let mut round = 0;
        loop {
            let mut buf = vec![0u8; 300];
            let n = d.getdents64(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            seen.extend(
                parse_dirents(&buf[..n])
                    .into_iter()
                    .map(|(name, _, _)| name),
            );
            // Meanwhile: remove some files not yet seen and some already seen, and
            // add new ones.
            for k in 0..3 {
                let victim = format!("/mnt/d/file-{:03}", (round * 7 + k * 50) % 150);
                let _ = env.unlink(&victim);
                env.write_file(&format!("/mnt/d/new-{round}-{k}"), b"");
            }
            round += 1;
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no entry twice");
        // Every original file that was never removed is seen.
        let now = env.ls("/mnt/d");
        for name in now.iter().filter(|n| n.starts_with("file-")) {
            assert!(seen.contains(name), "{name} missing");
        }
        env.unmount();
    });
}

#[test]
fn specials_and_links_are_refused() {
    let disk = disk(4, None);
    let env = Env::new(&disk);
    let root = env.root();
    assert_eq!(
        env.vfs.symlink(b"target", &root, b"/mnt/link"),
        Err(Errno::EPERM)
    );
    assert_eq!(
        env.vfs
            .mknod(&root, b"/mnt/dev", skiff_fs::S_IFCHR | 0o644, 0x0101)
            .err(),
        Some(Errno::EPERM)
    );
    env.write_file("/mnt/f", b"x");
    assert_eq!(
        env.vfs.link(&root, b"/mnt/f", &root, b"/mnt/g", false),
        Err(Errno::EPERM)
    );
    assert_eq!(
        env.open("/mnt/.skiff-orphans", CREAT | RDWR).err(),
        Some(Errno::EPERM)
    );
}

#[test]
fn modes_times_and_statfs() {
    let disk = disk(8, Some(FatType::Fat16));
    let env = Env::new(&disk);
    env.write_file("/mnt/f", b"data");
    env.mkdir("/mnt/d");
    let st = env.stat("/mnt/f").unwrap();
    assert_eq!(st.mode, skiff_fs::S_IFREG | 0o755);
    assert_eq!(env.stat("/mnt/d").unwrap().mode, skiff_fs::S_IFDIR | 0o755);
    assert_eq!(env.stat("/mnt/d").unwrap().nlink, 2);
    assert_eq!(env.stat("/mnt").unwrap().nlink, 3);
    assert_eq!(st.mtime, Timespec::new(T0, 0));
    assert_eq!(st.blksize, env.vol.cluster_size());
    // chmod/chown are kept in memory.
    env.vfs.chmod(&env.root(), b"/mnt/f", 0o600, true).unwrap();
    env.vfs
        .chown(&env.root(), b"/mnt/f", Some(1000), Some(100), true)
        .unwrap();
    let st = env.stat("/mnt/f").unwrap();
    assert_eq!(
        (st.mode, st.uid, st.gid),
        (skiff_fs::S_IFREG | 0o600, 1000, 100)
    );
    // utimensat: mtime to 2 s, atime to the day, stored on disk.
    let t = Timespec::new(1_600_000_001, 500);
    let f = env.open("/mnt/f", RDWR).unwrap();
    f.set_attr(&SetAttr {
        atime: Some(TimeUpdate::Set(t)),
        mtime: Some(TimeUpdate::Set(t)),
        ..SetAttr::default()
    })
    .unwrap();
    drop(f);
    env.clock.set(T0 + 3601);
    env.write_file("/mnt/g", b"later");
    let dir_mtime = env.stat("/mnt").unwrap().mtime;
    assert_eq!(dir_mtime, Timespec::new(T0 + 3600, 0));
    env.unmount();
    let env = Env::new(&disk);
    let st = env.stat("/mnt/f").unwrap();
    assert_eq!(st.mtime, Timespec::new(1_600_000_000, 0));
    assert_eq!(st.atime, Timespec::new(1_599_955_200, 0));
    assert_eq!(
        st.mode,
        skiff_fs::S_IFREG | 0o755,
        "chmod is not persistent"
    );
    assert_eq!(
        env.stat("/mnt/g").unwrap().btime,
        Some(Timespec::new(T0 + 3601, 0))
    );
    let sf = env.vol.statfs();
    assert_eq!(sf.fs_type, 0x4d44);
    assert_eq!(sf.block_size, env.vol.cluster_size() as u64);
    assert_eq!(sf.name_len, 255);
    assert!(sf.blocks_free > 0 && sf.blocks_free < sf.blocks);
    assert_eq!(env.vol.type_name(), "vfat");
}

#[test]
fn file_size_limit() {
    let disk = disk(4, None);
    let env = Env::new(&disk);
    let f = env.create("/mnt/f");
    assert_eq!(f.truncate(1 << 32), Err(Errno::EFBIG));
    assert_eq!(f.pwrite(b"x", (1 << 32) - 1).err(), Some(Errno::EFBIG));
    assert_eq!(f.pwrite(b"x", 1 << 40).err(), Some(Errno::EFBIG));
}

#[test]
fn not_a_fat_volume() {
    let d = std::sync::Arc::new(skiff_block::RamDisk::new(2048));
    let dev: std::sync::Arc<dyn skiff_block::BlockDevice> = d;
    assert_eq!(
        skiff_fat::mount(dev, TestClock::new(T0), 8).err(),
        Some(Errno::EINVAL)
    );
    let tiny = std::sync::Arc::new(skiff_block::RamDisk::new(0));
    let dev: std::sync::Arc<dyn skiff_block::BlockDevice> = tiny;
    assert_eq!(
        skiff_fat::mount(dev, TestClock::new(T0), 8).err(),
        Some(Errno::EINVAL)
    );
}

#[test]
fn read_only_device() {
    let disk = disk(4, None);
    {
        let env = Env::new(&disk);
        env.write_file("/mnt/f", b"keep");
        env.unmount();
    }
    disk.set_read_only(true);
    let env = Env::new(&disk);
    assert!(env.vol.read_only());
    assert_eq!(env.read_file("/mnt/f").unwrap(), b"keep");
    assert_eq!(env.open("/mnt/g", CREAT | RDWR).err(), Some(Errno::EROFS));
    let f = env.open("/mnt/f", RDWR).unwrap();
    assert_eq!(f.write(b"x"), Err(Errno::EROFS));
    assert_eq!(env.unlink("/mnt/f"), Err(Errno::EROFS));
    assert_eq!(env.vol.statfs().flags & 1, 1);
    env.vol.unmount().unwrap();
}

#[test]
fn many_threads() {
    let disk = disk(16, Some(FatType::Fat16));
    let env = std::sync::Arc::new(Env::new(&disk));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let env = env.clone();
            std::thread::spawn(move || {
                env.mkdir(&format!("/mnt/t{t}"));
                for i in 0..20 {
                    let p = format!("/mnt/t{t}/f{i}");
                    let data = pattern(3000 + i * 100, (t * 100 + i) as u32);
                    env.write_file(&p, &data);
                    assert_eq!(env.read_file(&p).unwrap(), data);
                    if i % 3 == 0 {
                        env.unlink(&p).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for t in 0..4 {
        assert_eq!(env.ls(&format!("/mnt/t{t}")).len(), 13);
    }
    env.unmount();
    let (ok, out) = fsck(&disk.image(), "threads");
    assert!(ok, "fsck.fat:\n{out}");
}

#[test]
fn space_past_the_end_cannot_be_reserved_without_growing_the_file() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    let f = env.create("/mnt/f");
    assert_eq!(f.write(b"0123456789").unwrap(), 10);
    let inode = f.inode().unwrap().clone();
    // Inside the file the space exists already; past its end FAT has nowhere to keep
    // clusters, so fallocate(KEEP_SIZE) must not claim success.
    assert_eq!(inode.reserve(10), Ok(()));
    assert_eq!(inode.reserve(4096), Err(Errno::EOPNOTSUPP));
    assert_eq!(env.stat("/mnt/f").unwrap().size, 10);
}
