//! What reaches the disk and when; full volumes; failing devices.

mod common;

use common::*;
use skiff_block::RamDisk;
use skiff_errno::Errno;
use skiff_fat::FatType;
use skiff_fs::{FileSystem, OpenFlags};
use std::sync::Arc;

#[test]
fn fsync_makes_data_and_entry_durable() {
    for t in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
        let size = if t == FatType::Fat32 { 40 } else { 8 };
        let disk = disk(size, Some(t));
        let env = Env::new(&disk);
        env.mkdir("/mnt/dir");
        let f = env.create("/mnt/dir/synced");
        let data = pattern(30_000, 9);
        f.write(&data).unwrap();
        f.sync(false).unwrap();
        // Written after the fsync: not durable yet.
        env.write_file("/mnt/unsynced", b"volatile");

        let crash = disk.flushed_image();
        assert!(
            image_dirty(crash.clone()),
            "{t:?}: a crashed volume is marked dirty"
        );
        let after_crash = Arc::new(RamDisk::from_image(crash));
        let env2 = Env::new(&after_crash);
        assert_eq!(env2.read_file("/mnt/dir/synced").unwrap(), data, "{t:?}");
        assert_eq!(env2.read_file("/mnt/unsynced"), Err(Errno::ENOENT), "{t:?}");
        // The volume was dirty when mounted: it stays dirty after a clean unmount, as
        // on Linux, so that fsck gets to look at it.
        env2.unmount();
        assert!(image_dirty(after_crash.image()));

        drop(f);
        env.unmount();
        let clean = disk.flushed_image();
        assert!(!image_dirty(clean.clone()), "{t:?}: clean after unmount");
        assert_eq!(fatfs_read(clean.clone(), "unsynced").unwrap(), b"volatile");
        let (ok, out) = fsck(&clean, &format!("fsync-{t:?}"));
        assert!(ok, "{t:?} fsck.fat:\n{out}");
    }
}

#[test]
fn syncfs_and_data_written_before_rename() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    env.write_file("/mnt/tmp", b"atomic replace");
    env.rename("/mnt/tmp", "/mnt/final", 0).unwrap();
    env.vol.sync().unwrap();
    let crash = Arc::new(RamDisk::from_image(disk.flushed_image()));
    let env2 = Env::new(&crash);
    assert_eq!(env2.read_file("/mnt/final").unwrap(), b"atomic replace");
    assert_eq!(env2.read_file("/mnt/tmp"), Err(Errno::ENOENT));
}

#[test]
fn crash_leftover_orphans_are_removed_at_mount() {
    let disk = disk(8, None);
    let env = Env::new(&disk);
    let free0 = env.vol.statfs().blocks_free;
    env.write_file("/mnt/doomed", &pattern(50_000, 1));
    let f = env.open("/mnt/doomed", OpenFlags::O_RDONLY).unwrap();
    env.unlink("/mnt/doomed").unwrap();
    env.vol.sync().unwrap();
    // Crash with the file still open: its data sits in the orphan directory.
    let crash = Arc::new(RamDisk::from_image(disk.flushed_image()));
    drop(f);
    let env2 = Env::new(&crash);
    assert!(env2.ls("/mnt").is_empty());
    assert_eq!(env2.vol.statfs().blocks_free, free0);
    env2.unmount();
    let (ok, out) = fsck_crashed(&crash.image(), "leftover");
    // The image was dirty (crashed); fsck -n still must find nothing to fix.
    assert!(ok, "fsck.fat:\n{out}");
}

#[test]
fn full_volume_gives_enospc_and_keeps_data() {
    for t in [FatType::Fat12, FatType::Fat32] {
        let size = if t == FatType::Fat32 { 34 } else { 2 };
        let disk = disk(size, Some(t));
        let env = Env::new(&disk);
        let free = env.vol.statfs().blocks_free;
        let cs = env.vol.cluster_size() as usize;
        let f = env.create("/mnt/fill");
        let chunk = pattern(7 * cs + 100, 2);
        let mut written = Vec::new();
        loop {
            match f.write(&chunk) {
                Ok(n) => {
                    written.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        // A short write at the end of the space, then ENOSPC.
                        assert_eq!(f.write(&chunk), Err(Errno::ENOSPC));
                        break;
                    }
                }
                Err(e) => {
                    assert_eq!(e, Errno::ENOSPC);
                    break;
                }
            }
        }
        assert_eq!(env.vol.statfs().blocks_free, 0, "{t:?}");
        assert_eq!(
            written.len(),
            free as usize * cs,
            "{t:?}: every cluster used"
        );
        assert_eq!(env.read_file("/mnt/fill").unwrap(), written, "{t:?}");
        // Growing by truncate is all or nothing.
        assert_eq!(f.truncate(written.len() as i64 + 1), Err(Errno::ENOSPC));
        assert_eq!(env.stat("/mnt/fill").unwrap().size, written.len() as u64);
        // Creating a subdirectory needs a cluster.
        assert_eq!(
            env.vfs.mkdir(&env.root(), b"/mnt/d", 0o755).err(),
            Some(Errno::ENOSPC)
        );
        drop(f);
        env.unmount();
        let env = Env::new(&disk);
        assert_eq!(env.read_file("/mnt/fill").unwrap(), written);
        // Unlinking works on a full volume (there is no room for the orphan
        // directory, so the entry goes at once and the inode keeps the chain).
        let f = env.open("/mnt/fill", OpenFlags::O_RDONLY).unwrap();
        env.unlink("/mnt/fill").unwrap();
        assert_eq!(read_all(&f).unwrap(), written, "{t:?}: still readable");
        drop(f);
        assert_eq!(env.vol.statfs().blocks_free, free, "{t:?}");
        env.unmount();
        let env = Env::new(&disk);
        assert_eq!(env.vol.statfs().blocks_free, free);
        env.unmount();
        let (ok, out) = fsck(&disk.image(), &format!("full-{t:?}"));
        assert!(ok, "{t:?} fsck.fat:\n{out}");
    }
}

#[test]
fn device_errors_are_eio() {
    let disk = disk(8, None);
    let env = Env::with_cache(&disk, 4);
    env.write_file("/mnt/a", &pattern(100_000, 4));
    env.vol.sync().unwrap();
    // Reads fail: uncached data is EIO, nothing panics.
    disk.fail_reads(true);
    assert_eq!(env.read_file("/mnt/a").err(), Some(Errno::EIO));
    disk.fail_reads(false);
    assert_eq!(env.read_file("/mnt/a").unwrap(), pattern(100_000, 4));

    // Writes fail: the write-back fails, sync reports it, and the data stays cached.
    let f = env.create("/mnt/b");
    env.vol.sync().unwrap();
    disk.fail_writes_after(Some(0));
    let r = f.write(&pattern(60_000, 6));
    assert!(matches!(r, Ok(_) | Err(Errno::EIO)), "{r:?}");
    assert_eq!(f.sync(false), Err(Errno::EIO));
    assert_eq!(env.vol.sync(), Err(Errno::EIO));
    drop(f);
    assert_eq!(env.vol.unmount(), Err(Errno::EIO));
    // After a failed unmount the volume is gone too.
    assert_eq!(env.read_file("/mnt/a").err(), Some(Errno::EIO));
    disk.fail_writes_after(None);
}

#[test]
fn flush_failure_is_reported() {
    let disk = disk(4, None);
    let env = Env::new(&disk);
    let f = env.create("/mnt/f");
    f.write(b"data").unwrap();
    disk.fail_flush(true);
    assert_eq!(f.sync(false), Err(Errno::EIO));
    disk.fail_flush(false);
    f.sync(false).unwrap();
    assert_eq!(
        fatfs_read(disk.flushed_image(), "f").unwrap(),
        b"data".to_vec()
    );
}

#[test]
fn large_sequential_io_is_batched() {
    let disk = disk(64, Some(FatType::Fat32));
    let env = Env::with_cache(&disk, 256);
    let data = pattern(8 << 20, 11);
    let f = env.create("/mnt/big");
    for chunk in data.chunks(1 << 16) {
        f.write(chunk).unwrap();
    }
    f.sync(false).unwrap();
    drop(f);
    env.unmount();
    let env = Env::with_cache(&disk, 256);
    disk.reset_stats();
    let got = env.read_file("/mnt/big").unwrap();
    assert_eq!(got, data);
    let st = disk.stats();
    let pages = (8u64 << 20) / 4096;
    assert!(
        st.reads < pages / 8,
        "reading 8 MiB took {} device requests",
        st.reads
    );
    let cs = env.vol.cache_stats();
    println!("8 MiB read: {} device reads, cache {:?}", st.reads, cs);
}

#[test]
fn full_root_directory() {
    let disk = disk(8, Some(FatType::Fat16));
    let env = Env::new(&disk);
    env.mkdir("/mnt/sub");
    env.write_file("/mnt/sub/precious", b"keep me");
    let mut n = 0;
    loop {
        match env.open(
            &format!("/mnt/f{n}"),
            OpenFlags::O_CREAT | OpenFlags::O_RDWR,
        ) {
            Ok(_) => n += 1,
            Err(e) => {
                assert_eq!(e, Errno::ENOSPC);
                break;
            }
        }
    }
    assert!(n > 200, "{n} files fit");
    // Moving a file into the full root fails cleanly: the file stays where it was.
    assert_eq!(
        env.rename("/mnt/sub/precious", "/mnt/a much longer name", 0),
        Err(Errno::ENOSPC)
    );
    assert_eq!(env.read_file("/mnt/sub/precious").unwrap(), b"keep me");
    // Also over an existing file: the target survives a rename that does not fit.
    env.write_file("/mnt/f1", b"target");
    assert_eq!(
        env.rename("/mnt/sub/precious", "/mnt/f1", 0),
        Err(Errno::ENOSPC)
    );
    assert_eq!(env.read_file("/mnt/f1").unwrap(), b"target");
    assert_eq!(env.read_file("/mnt/sub/precious").unwrap(), b"keep me");
    // Unlinking an open file still works (no room for the orphan directory).
    let f = env.open("/mnt/f0", OpenFlags::O_RDWR).unwrap();
    f.write(b"still here").unwrap();
    env.unlink("/mnt/f0").unwrap();
    assert_eq!(f.pread(&mut [0u8; 4], 0).unwrap(), 4);
    drop(f);
    // And the slots freed make room again.
    env.rename("/mnt/sub/precious", "/mnt/f0", 0).unwrap();
    assert_eq!(env.read_file("/mnt/f0").unwrap(), b"keep me");
    env.unmount();
    let (ok, out) = fsck(&disk.image(), "fullroot");
    assert!(ok, "fsck.fat:\n{out}");
}
