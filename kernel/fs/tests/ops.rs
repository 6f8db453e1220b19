mod common;
use common::*;
use skiff_errno::Errno;
use skiff_fs::*;

const RW: u32 = OpenFlags::O_RDWR;
const CREAT: u32 = OpenFlags::O_CREAT;

#[test]
fn open_create_excl_trunc_and_errors() {
    let e = env();
    let f = e.open("/tmp/new", CREAT | RW).unwrap();
    f.write(b"hello").unwrap();
    assert_eq!(
        e.open("/tmp/new", CREAT | OpenFlags::O_EXCL | RW).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(e.open("/tmp/missing", RW).err(), Some(Errno::ENOENT));
    assert_eq!(
        e.open("/tmp/nodir/x", CREAT | RW).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(e.open("/tmp/new/x", CREAT | RW).err(), Some(Errno::ENOTDIR));
    assert_eq!(
        e.open("/tmp/new", RW | OpenFlags::O_DIRECTORY).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        e.open("/tmp", OpenFlags::O_WRONLY).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(e.open("/tmp", RW).err(), Some(Errno::EISDIR));
    assert_eq!(e.open("/tmp", CREAT | RW).err(), Some(Errno::EISDIR));
    assert_eq!(e.open("/tmp/", CREAT | RW).err(), Some(Errno::EISDIR));
    assert_eq!(e.open("/tmp/x/", CREAT | RW).err(), Some(Errno::EISDIR));
    assert_eq!(e.open(".", CREAT).err(), Some(Errno::EISDIR));
    assert_eq!(
        e.open("/tmp/y", CREAT | OpenFlags::O_DIRECTORY).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e.open("/tmp/t", OpenFlags::O_TMPFILE | RW).err(),
        Some(Errno::EOPNOTSUPP)
    );
    assert!(e
        .open("/tmp", OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
        .is_ok());
    // Accepted-and-ignored flags.
    let quiet = OpenFlags::O_NOCTTY
        | OpenFlags::O_LARGEFILE
        | OpenFlags::O_SYNC
        | OpenFlags::O_DSYNC
        | OpenFlags::O_NOATIME;
    assert!(e.open("/tmp/new", RW | quiet).is_ok());
    // O_TRUNC empties the file, even when opened read-only (as Linux).
    assert_eq!(e.stat("/tmp/new").unwrap().size, 5);
    e.open("/tmp/new", OpenFlags::O_RDONLY | OpenFlags::O_TRUNC)
        .unwrap();
    assert_eq!(e.stat("/tmp/new").unwrap().size, 0);
    // Created with mode & 07777 (umask applied by FsContext).
    e.ctx
        .open(AT_FDCWD, b"/tmp/masked", OpenFlags(CREAT | RW), 0o777)
        .unwrap();
    assert_eq!(e.stat("/tmp/masked").unwrap().mode, S_IFREG | 0o755);
    assert_eq!(e.ctx.set_umask(0o077), 0o022);
    e.ctx.mkdir(AT_FDCWD, b"/tmp/privdir", 0o777).unwrap();
    assert_eq!(e.stat("/tmp/privdir").unwrap().mode, S_IFDIR | 0o700);
}

#[test]
fn open_symlink_rules() {
    let e = env();
    e.create("/tmp/real", b"data");
    e.symlink("real", "/tmp/link").unwrap();
    e.symlink("created-through-link", "/tmp/dangling").unwrap();
    assert_eq!(
        e.open("/tmp/link", OpenFlags::O_RDONLY | OpenFlags::O_NOFOLLOW)
            .err(),
        Some(Errno::ELOOP)
    );
    assert_eq!(
        e.open("/tmp/link", CREAT | OpenFlags::O_EXCL | RW).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        e.open("/tmp/link", CREAT | OpenFlags::O_NOFOLLOW | RW)
            .err(),
        Some(Errno::ELOOP)
    );
    assert_eq!(
        read_to_end(&e.open("/tmp/link", OpenFlags::O_RDONLY).unwrap()).unwrap(),
        b"data"
    );
    // O_CREAT through a dangling symlink creates the target.
    let f = e.open("/tmp/dangling", CREAT | RW).unwrap();
    f.write(b"z").unwrap();
    assert_eq!(e.read_all("/tmp/created-through-link").unwrap(), b"z");
    // O_PATH|O_NOFOLLOW opens the link itself.
    let p = e
        .open("/tmp/link", OpenFlags::O_PATH | OpenFlags::O_NOFOLLOW)
        .unwrap();
    assert_eq!(p.stat().unwrap().mode & S_IFMT, S_IFLNK);
    assert_eq!(p.read(&mut [0u8; 4]).err(), Some(Errno::EBADF));
    assert_eq!(p.status_flags(), OpenFlags::O_PATH | OpenFlags::O_NOFOLLOW);
}

#[test]
fn status_flags_like_linux() {
    let e = env();
    let f = e
        .open(
            "/tmp/f",
            CREAT
                | OpenFlags::O_WRONLY
                | OpenFlags::O_APPEND
                | OpenFlags::O_CLOEXEC
                | OpenFlags::O_EXCL,
        )
        .unwrap();
    assert_eq!(
        f.status_flags(),
        OpenFlags::O_LARGEFILE | OpenFlags::O_APPEND | OpenFlags::O_WRONLY
    );
    f.set_status_flags(OpenFlags::O_NONBLOCK | OpenFlags::O_RDWR)
        .unwrap();
    assert_eq!(
        f.status_flags(),
        OpenFlags::O_LARGEFILE | OpenFlags::O_NONBLOCK | OpenFlags::O_WRONLY
    );
    assert_eq!(f.read(&mut [0u8; 1]).err(), Some(Errno::EBADF));
    let d = e
        .open("/tmp", OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC)
        .unwrap();
    assert_eq!(d.status_flags(), OpenFlags::O_LARGEFILE);
}

#[test]
fn mkdir_rmdir_unlink_errors_and_nlink() {
    let e = env();
    e.mkdir("/p").unwrap();
    assert_eq!(e.stat("/p").unwrap().nlink, 2);
    e.mkdir("/p/c1").unwrap();
    e.mkdir("/p/c2/").unwrap();
    assert_eq!(e.stat("/p").unwrap().nlink, 4);
    assert_eq!(e.mkdir("/p/c1").err(), Some(Errno::EEXIST));
    assert_eq!(e.mkdir("/").err(), Some(Errno::EEXIST));
    assert_eq!(e.mkdir("/p/.").err(), Some(Errno::EEXIST));
    assert_eq!(e.mkdir("/p/x/y").err(), Some(Errno::ENOENT));
    e.create("/p/file", b"");
    assert_eq!(e.mkdir("/p/file/sub").err(), Some(Errno::ENOTDIR));
    assert_eq!(e.rmdir("/p").err(), Some(Errno::ENOTEMPTY));
    assert_eq!(e.rmdir("/p/file").err(), Some(Errno::ENOTDIR));
    assert_eq!(e.unlink("/p/c1").err(), Some(Errno::EISDIR));
    assert_eq!(e.unlink("/p/file/").err(), Some(Errno::ENOTDIR));
    assert_eq!(e.unlink("/p/c1/").err(), Some(Errno::EISDIR));
    assert_eq!(e.rmdir("/p/.").err(), Some(Errno::EINVAL));
    assert_eq!(e.rmdir("/p/..").err(), Some(Errno::ENOTEMPTY));
    assert_eq!(e.rmdir("/").err(), Some(Errno::EBUSY));
    assert_eq!(e.unlink("/p/missing").err(), Some(Errno::ENOENT));
    e.rmdir("/p/c1").unwrap();
    e.rmdir("/p/c2/").unwrap();
    assert_eq!(e.stat("/p").unwrap().nlink, 2);
    e.unlink("/p/file").unwrap();
    e.rmdir("/p").unwrap();
    assert_eq!(e.stat("/p").err(), Some(Errno::ENOENT));
}

#[test]
fn mknod_types() {
    let e = env();
    let root = e.root();
    e.vfs.mknod(&root, b"/tmp/reg", 0o644, 0).unwrap();
    assert_eq!(e.stat("/tmp/reg").unwrap().mode, S_IFREG | 0o644);
    e.vfs
        .mknod(&root, b"/tmp/mynull", S_IFCHR | 0o666, makedev(1, 3))
        .unwrap();
    let st = e.stat("/tmp/mynull").unwrap();
    assert_eq!((dev_major(st.rdev), dev_minor(st.rdev)), (1, 3));
    let f = e.open("/tmp/mynull", RW).unwrap();
    assert_eq!(f.write(b"gone").unwrap(), 4);
    e.vfs
        .mknod(&root, b"/tmp/nodrv", S_IFCHR | 0o666, makedev(200, 1))
        .unwrap();
    assert_eq!(e.open("/tmp/nodrv", RW).err(), Some(Errno::ENXIO));
    assert_eq!(
        e.vfs.mknod(&root, b"/tmp/fifo", S_IFIFO | 0o644, 0).err(),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        e.vfs.mknod(&root, b"/tmp/d", S_IFDIR | 0o755, 0).err(),
        Some(Errno::EPERM)
    );
    assert_eq!(
        e.vfs.mknod(&root, b"/tmp/bad", 0o170000, 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e.vfs.mknod(&root, b"/tmp/reg", 0o644, 0).err(),
        Some(Errno::EEXIST)
    );
    e.vfs
        .mknod(&root, b"/tmp/sock", S_IFSOCK | 0o755, 0)
        .unwrap();
    assert_eq!(e.open("/tmp/sock", RW).err(), Some(Errno::ENXIO));
}

#[test]
fn rename_rules() {
    let e = env();
    e.mkdir("/r").unwrap();
    e.create("/r/a", b"A");
    e.create("/r/b", b"B");
    e.mkdir("/r/d1").unwrap();
    e.mkdir("/r/d2").unwrap();
    e.mkdir("/r/full").unwrap();
    e.create("/r/full/x", b"");
    // Plain rename over a file replaces it.
    e.rename("/r/a", "/r/b", 0).unwrap();
    assert_eq!(e.read_all("/r/b").unwrap(), b"A");
    assert_eq!(e.stat("/r/a").err(), Some(Errno::ENOENT));
    e.create("/r/a", b"A2");
    assert_eq!(
        e.rename("/r/a", "/r/b", RENAME_NOREPLACE).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(e.rename("/r/a", "/r/d1", 0).err(), Some(Errno::EISDIR));
    assert_eq!(e.rename("/r/d1", "/r/a", 0).err(), Some(Errno::ENOTDIR));
    assert_eq!(
        e.rename("/r/d1", "/r/full", 0).err(),
        Some(Errno::ENOTEMPTY)
    );
    assert_eq!(e.rename("/r/d1", "/r/d1/sub", 0).err(), Some(Errno::EINVAL));
    assert_eq!(
        e.rename("/r", "/r/full/deeper", 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(e.rename("/r/missing", "/r/z", 0).err(), Some(Errno::ENOENT));
    assert_eq!(e.rename("/r/a", "/dev/a", 0).err(), Some(Errno::EXDEV));
    assert_eq!(e.rename("/r/a", "/r/.", 0).err(), Some(Errno::EBUSY));
    assert_eq!(e.rename("/r/.", "/r/q", 0).err(), Some(Errno::EBUSY));
    assert_eq!(e.rename("/r/a/", "/r/q", 0).err(), Some(Errno::ENOTDIR));
    assert_eq!(
        e.rename("/r/a", "/r/q", RENAME_NOREPLACE | RENAME_EXCHANGE)
            .err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(e.rename("/r/a", "/r/q", 0x80).err(), Some(Errno::EINVAL));
    assert_eq!(
        e.rename("/r/a", "/r/q", RENAME_EXCHANGE).err(),
        Some(Errno::ENOENT)
    );
    // Directory over an empty directory; nlink follows.
    assert_eq!(e.stat("/r").unwrap().nlink, 5);
    e.rename("/r/d1", "/r/d2", 0).unwrap();
    assert_eq!(e.stat("/r").unwrap().nlink, 4);
    // Moving a directory to another parent moves a link count.
    e.rename("/r/d2", "/r/full/moved", 0).unwrap();
    assert_eq!(e.stat("/r").unwrap().nlink, 3);
    assert_eq!(e.stat("/r/full").unwrap().nlink, 3);
    assert!(e
        .resolve("/r/full/moved/..", true)
        .unwrap()
        .same_as(&e.resolve("/r/full", true).unwrap()));
    // Exchange swaps, even a file with a directory.
    e.rename("/r/a", "/r/full", RENAME_EXCHANGE).unwrap();
    assert_eq!(e.read_all("/r/full").unwrap(), b"A2");
    assert!(e.stat("/r/a/x").is_ok());
    // Renaming one hard link onto another is a no-op.
    e.vfs
        .link(&e.root(), b"/r/b", &e.root(), b"/r/b2", false)
        .unwrap();
    e.rename("/r/b", "/r/b2", 0).unwrap();
    assert!(e.stat("/r/b").is_ok() && e.stat("/r/b2").is_ok());
    // Rename over a file keeps the old file readable through an open descriptor.
    let open = e.open("/r/b", OpenFlags::O_RDONLY).unwrap();
    e.create("/r/c", b"C");
    e.rename("/r/c", "/r/b", 0).unwrap();
    assert_eq!(read_to_end(&open).unwrap(), b"A");
    assert_eq!(e.read_all("/r/b").unwrap(), b"C");
}

#[test]
fn links_symlinks_readlink() {
    let e = env();
    e.create("/tmp/f", b"x");
    e.vfs
        .link(&e.root(), b"/tmp/f", &e.root(), b"/tmp/g", true)
        .unwrap();
    assert_eq!(e.stat("/tmp/f").unwrap().nlink, 2);
    assert_eq!(e.stat("/tmp/f").unwrap().ino, e.stat("/tmp/g").unwrap().ino);
    assert_eq!(
        e.vfs
            .link(&e.root(), b"/tmp", &e.root(), b"/tmp/dirlink", true)
            .err(),
        Some(Errno::EPERM)
    );
    assert_eq!(
        e.vfs
            .link(&e.root(), b"/tmp/f", &e.root(), b"/tmp/g", true)
            .err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        e.vfs
            .link(&e.root(), b"/tmp/f", &e.root(), b"/dev/f", true)
            .err(),
        Some(Errno::EXDEV)
    );
    assert_eq!(
        e.vfs
            .link(&e.root(), b"/tmp/f", &e.root(), b"/tmp/h/", true)
            .err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        e.vfs
            .link(&e.root(), b"/tmp/nope", &e.root(), b"/tmp/h", true)
            .err(),
        Some(Errno::ENOENT)
    );
    e.unlink("/tmp/f").unwrap();
    assert_eq!(e.stat("/tmp/g").unwrap().nlink, 1);
    assert_eq!(e.read_all("/tmp/g").unwrap(), b"x");
    // Symlinks.
    assert_eq!(e.symlink("", "/tmp/empty").err(), Some(Errno::ENOENT));
    e.symlink("g", "/tmp/s").unwrap();
    assert_eq!(e.symlink("g", "/tmp/s").err(), Some(Errno::EEXIST));
    let st = e.lstat("/tmp/s").unwrap();
    assert_eq!(st.mode, S_IFLNK | 0o777);
    assert_eq!(st.size, 1);
    assert_eq!(
        e.vfs.readlink(&e.root(), b"/tmp/g").err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e.vfs.readlink(&e.root(), b"/tmp/none").err(),
        Some(Errno::ENOENT)
    );
    // link without follow links the symlink itself.
    e.vfs
        .link(&e.root(), b"/tmp/s", &e.root(), b"/tmp/s2", false)
        .unwrap();
    assert_eq!(e.lstat("/tmp/s2").unwrap().mode & S_IFMT, S_IFLNK);
}

#[test]
fn access_chmod_chown_utimens() {
    let e = env();
    e.create("/tmp/f", b"");
    let root = e.root();
    assert!(e.vfs.access(&root, b"/tmp/f", R_OK | W_OK, 0).is_ok());
    assert_eq!(
        e.vfs.access(&root, b"/tmp/f", X_OK, 0).err(),
        Some(Errno::EACCES)
    );
    assert!(e.vfs.access(&root, b"/tmp", X_OK, 0).is_ok());
    assert_eq!(
        e.vfs.access(&root, b"/tmp/f", 8, 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e.vfs.access(&root, b"/tmp/f", 0, 0x1).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e.vfs.access(&root, b"/tmp/none", F_OK, 0).err(),
        Some(Errno::ENOENT)
    );
    e.clock.advance(5);
    e.vfs.chmod(&root, b"/tmp/f", 0o4711, true).unwrap();
    let st = e.stat("/tmp/f").unwrap();
    assert_eq!(st.mode, S_IFREG | 0o4711);
    assert_eq!(st.ctime.sec, e.clock.now());
    assert!(st.mtime.sec < e.clock.now());
    assert!(e.vfs.access(&root, b"/tmp/f", X_OK, 0).is_ok());
    // chown drops set-user-ID.
    e.vfs.chown(&root, b"/tmp/f", Some(5), None, true).unwrap();
    let st = e.stat("/tmp/f").unwrap();
    assert_eq!((st.uid, st.gid, st.mode), (5, 0, S_IFREG | 0o711));
    e.symlink("f", "/tmp/l").unwrap();
    assert_eq!(
        e.vfs.chmod(&root, b"/tmp/l", 0o600, false).err(),
        Some(Errno::EOPNOTSUPP)
    );
    e.vfs
        .chown(&root, b"/tmp/l", Some(9), Some(9), false)
        .unwrap();
    assert_eq!(e.lstat("/tmp/l").unwrap().uid, 9);
    assert_eq!(e.stat("/tmp/l").unwrap().uid, 5);
    // utimens with explicit times, UTIME_OMIT and UTIME_NOW.
    let t = |sec, nsec| Timespec::new(sec, nsec);
    e.vfs
        .utimens(&root, b"/tmp/f", Some([t(100, 5), t(200, 6)]), true)
        .unwrap();
    let st = e.stat("/tmp/f").unwrap();
    assert_eq!((st.atime, st.mtime), (t(100, 5), t(200, 6)));
    e.vfs
        .utimens(
            &root,
            b"/tmp/f",
            Some([t(0, UTIME_OMIT), t(0, UTIME_NOW)]),
            true,
        )
        .unwrap();
    let st = e.stat("/tmp/f").unwrap();
    assert_eq!(st.atime, t(100, 5));
    assert_eq!(st.mtime.sec, e.clock.now());
    assert_eq!(
        e.vfs
            .utimens(&root, b"/tmp/f", Some([t(0, 1_000_000_000), t(0, 0)]), true)
            .err(),
        Some(Errno::EINVAL)
    );
    e.vfs.utimens(&root, b"/tmp/f", None, true).unwrap();
    assert_eq!(e.stat("/tmp/f").unwrap().atime.sec, e.clock.now());
}

#[test]
fn timestamps_follow_linux() {
    let e = env();
    e.mkdir("/ts").unwrap();
    let t0 = e.clock.now();
    e.clock.advance(10);
    let f = e.create("/ts/f", b"abc");
    let dir = e.stat("/ts").unwrap();
    assert_eq!(
        (dir.mtime.sec, dir.ctime.sec),
        (t0 + 10, t0 + 10),
        "create touches the parent"
    );
    e.clock.advance(10);
    f.write(b"more").unwrap();
    let st = e.stat("/ts/f").unwrap();
    assert_eq!((st.mtime.sec, st.ctime.sec), (t0 + 20, t0 + 20));
    assert_eq!(st.atime.sec, t0 + 10);
    // A read after a modification updates atime (relatime).
    e.clock.advance(10);
    f.pread(&mut [0u8; 2], 0).unwrap();
    assert_eq!(e.stat("/ts/f").unwrap().atime.sec, t0 + 30);
    // ...but not again right away.
    e.clock.advance(10);
    f.pread(&mut [0u8; 2], 0).unwrap();
    assert_eq!(e.stat("/ts/f").unwrap().atime.sec, t0 + 30);
    e.clock.advance(10);
    e.unlink("/ts/f").unwrap();
    assert_eq!(e.stat("/ts").unwrap().mtime.sec, t0 + 50);
    assert_eq!(f.stat().unwrap().ctime.sec, t0 + 50);
    assert_eq!(f.stat().unwrap().nlink, 0);
}

#[test]
fn truncate_and_statfs() {
    let e = env();
    e.create("/tmp/f", b"0123456789");
    let root = e.root();
    e.vfs.truncate(&root, b"/tmp/f", 4).unwrap();
    assert_eq!(e.read_all("/tmp/f").unwrap(), b"0123");
    e.vfs.truncate(&root, b"/tmp/f", 8).unwrap();
    assert_eq!(e.read_all("/tmp/f").unwrap(), b"0123\0\0\0\0");
    assert_eq!(
        e.vfs.truncate(&root, b"/tmp/f", -1).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(e.vfs.truncate(&root, b"/tmp", 0).err(), Some(Errno::EISDIR));
    assert_eq!(
        e.vfs.truncate(&root, b"/dev/null", 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        e.vfs.truncate(&root, b"/proc/cpuinfo", 0).err(),
        Some(Errno::EACCES)
    );
    let ro = e.open("/tmp/f", OpenFlags::O_RDONLY).unwrap();
    assert_eq!(ro.truncate(0).err(), Some(Errno::EINVAL));
    let sfs = e.vfs.statfs(&root, b"/tmp").unwrap();
    assert_eq!(sfs.fs_type, TMPFS_MAGIC);
    assert_eq!(
        e.vfs.statfs(&root, b"/proc").unwrap().fs_type,
        PROC_SUPER_MAGIC
    );
    assert_eq!(e.vfs.statfs(&root, b"/dev").unwrap().fs_type, TMPFS_MAGIC);
}
