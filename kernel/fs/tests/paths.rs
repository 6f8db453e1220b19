mod common;
use common::*;
use skiff_errno::Errno;
use skiff_fs::*;

#[test]
fn absolute_relative_dot_and_dotdot() {
    let e = env();
    e.mkdir("/a").unwrap();
    e.mkdir("/a/b").unwrap();
    e.create("/a/b/f", b"x");
    let b = e.resolve("/a/b", true).unwrap();
    let f = e.vfs.resolve(&b, b"f", true).unwrap();
    assert_eq!(f.stat().unwrap().size, 1);
    let same = e.vfs.resolve(&b, b"./../b/./f", true).unwrap();
    assert!(same.same_as(&f));
    // ".." at the root stays at the root; absolute paths ignore the base.
    let root = e.resolve("/../../..", true).unwrap();
    assert!(root.same_as(&e.root()));
    assert!(e.vfs.resolve(&b, b"/a/b/f", true).unwrap().same_as(&f));
    assert!(e.resolve("//a///b//f", true).unwrap().same_as(&f));
}

#[test]
fn resolution_errors() {
    let e = env();
    e.create("/file", b"");
    assert_eq!(e.resolve("", true).err(), Some(Errno::ENOENT));
    assert_eq!(e.resolve("/missing/x", true).err(), Some(Errno::ENOENT));
    assert_eq!(e.resolve("/file/x", true).err(), Some(Errno::ENOTDIR));
    assert_eq!(e.resolve("/file/", true).err(), Some(Errno::ENOTDIR));
    assert_eq!(e.resolve("/file/.", true).err(), Some(Errno::ENOTDIR));
    let long = "n".repeat(256);
    assert_eq!(
        e.resolve(&format!("/{long}"), true).err(),
        Some(Errno::ENAMETOOLONG)
    );
    let ok_len = "n".repeat(255);
    assert_eq!(
        e.resolve(&format!("/{ok_len}"), true).err(),
        Some(Errno::ENOENT)
    );
    let huge = "a/".repeat(2048);
    assert_eq!(e.resolve(&huge, true).err(), Some(Errno::ENAMETOOLONG));
    e.mkdir("/d").unwrap();
    assert!(e.resolve("/d/", true).unwrap().is_dir());
}

#[test]
fn symlinks_relative_absolute_and_last_component() {
    let e = env();
    e.mkdir("/a").unwrap();
    e.mkdir("/a/sub").unwrap();
    e.create("/a/sub/target", b"hello");
    e.symlink("sub/target", "/a/rel").unwrap();
    e.symlink("/a/sub", "/abs").unwrap();
    assert_eq!(e.read_all("/a/rel").unwrap(), b"hello");
    assert_eq!(e.read_all("/abs/target").unwrap(), b"hello");
    let link = e.resolve("/a/rel", false).unwrap();
    assert_eq!(link.file_type(), FileType::Symlink);
    assert_eq!(e.vfs.readlink(&e.root(), b"/a/rel").unwrap(), b"sub/target");
    // A trailing slash follows a final symlink to a directory.
    assert!(e.resolve("/abs/", false).unwrap().is_dir());
    // Dangling symlinks.
    e.symlink("/nowhere", "/dangling").unwrap();
    assert_eq!(e.resolve("/dangling", true).err(), Some(Errno::ENOENT));
    assert!(e.resolve("/dangling", false).is_ok());
    // ".." after a symlink is taken from the link target's directory.
    e.symlink("/a/sub", "/a/sublink").unwrap();
    assert!(e
        .resolve("/a/sublink/..", true)
        .unwrap()
        .same_as(&e.resolve("/a", true).unwrap()));
}

#[test]
fn symlink_loops_and_limit() {
    let e = env();
    e.symlink("/loop2", "/loop1").unwrap();
    e.symlink("/loop1", "/loop2").unwrap();
    assert_eq!(e.resolve("/loop1", true).err(), Some(Errno::ELOOP));
    assert_eq!(e.resolve("/loop1/x", false).err(), Some(Errno::ELOOP));
    e.symlink("self", "/self").unwrap();
    assert_eq!(e.resolve("/self", true).err(), Some(Errno::ELOOP));
    // A chain of exactly 40 links resolves, 41 does not.
    e.create("/end", b"");
    let mut prev = "/end".to_string();
    for i in 0..41 {
        let name = format!("/chain{i}");
        e.symlink(&prev, &name).unwrap();
        prev = name;
    }
    assert!(e.resolve("/chain39", true).is_ok());
    assert_eq!(e.resolve("/chain40", true).err(), Some(Errno::ELOOP));
}

#[test]
fn mounts_are_crossed_both_ways() {
    let e = env();
    let dev = e.resolve("/dev", true).unwrap();
    let root_st = e.stat("/").unwrap();
    let dev_st = dev.stat().unwrap();
    assert_ne!(root_st.dev, dev_st.dev, "each mount has its own st_dev");
    assert_ne!(e.stat("/proc").unwrap().dev, dev_st.dev);
    assert!(e.resolve("/dev/..", true).unwrap().same_as(&e.root()));
    assert!(e.resolve("/dev/../dev/null", true).is_ok());
    assert!(e
        .resolve("/proc/self/..", true)
        .unwrap()
        .same_as(&e.resolve("/proc", true).unwrap()));
    let from_dev = e.vfs.resolve(&dev, b"../tmp", true).unwrap();
    assert!(from_dev.same_as(&e.resolve("/tmp", true).unwrap()));
    assert_eq!(e.stat("/tmp").unwrap().mode, S_IFDIR | 0o1777);
    // A mounted-on directory cannot be removed or renamed.
    assert_eq!(e.rmdir("/dev").err(), Some(Errno::EBUSY));
    assert_eq!(e.rename("/proc", "/proc2", 0).err(), Some(Errno::EBUSY));
    let tmpfs = TmpFs::new(e.vfs.clock().clone(), 0o755);
    e.mkdir("/mnt").unwrap();
    let mnt = e.resolve("/mnt", true).unwrap();
    e.vfs.mount(&mnt, tmpfs).unwrap();
    e.create("/mnt/inside", b"1");
    assert_eq!(
        e.stat("/mnt/inside").unwrap().dev,
        e.stat("/mnt").unwrap().dev
    );
    assert_ne!(e.stat("/mnt").unwrap().dev, root_st.dev);
    // A second mount on the same directory stacks on top (as Linux); ".." from its
    // root still leads to the parent of the mount point.
    let mnt_before = e.resolve("/mnt", true).unwrap();
    let second = TmpFs::new(e.vfs.clock().clone(), 0o700);
    e.vfs.mount(&mnt_before, second).unwrap();
    assert_eq!(e.stat("/mnt").unwrap().mode, S_IFDIR | 0o700);
    assert_eq!(e.stat("/mnt/inside").err(), Some(Errno::ENOENT));
    assert!(e.resolve("/mnt/..", true).unwrap().same_as(&e.root()));
    // The exact same mount point Location cannot take a second mount.
    let second_again = TmpFs::new(e.vfs.clock().clone(), 0o700);
    assert_eq!(
        e.vfs.mount(&mnt_before, second_again).err(),
        Some(Errno::EBUSY)
    );
    let mounts = String::from_utf8(e.read_all("/proc/mounts").unwrap()).unwrap();
    assert!(mounts.contains(" /dev devtmpfs "), "{mounts}");
    assert!(mounts.contains(" /proc proc "), "{mounts}");
    assert!(mounts.contains(" /mnt tmpfs "), "{mounts}");
}

#[test]
fn cwd_and_getcwd() {
    let e = env();
    e.mkdir("/w").unwrap();
    e.mkdir("/w/x").unwrap();
    e.ctx.chdir(b"/w/x").unwrap();
    assert_eq!(e.ctx.getcwd().unwrap(), b"/w/x");
    e.ctx.chdir(b"..").unwrap();
    assert_eq!(e.ctx.getcwd().unwrap(), b"/w");
    e.ctx.chdir(b"/dev").unwrap();
    assert_eq!(e.ctx.getcwd().unwrap(), b"/dev");
    e.ctx.chdir(b"/").unwrap();
    assert_eq!(e.ctx.getcwd().unwrap(), b"/");
    e.create("/w/file", b"");
    assert_eq!(e.ctx.chdir(b"/w/file").err(), Some(Errno::ENOTDIR));
    // Rename of an ancestor is followed; removal gives ENOENT.
    e.ctx.chdir(b"/w/x").unwrap();
    e.rename("/w", "/renamed", 0).unwrap();
    assert_eq!(e.ctx.getcwd().unwrap(), b"/renamed/x");
    e.rmdir("/renamed/x").unwrap();
    assert_eq!(e.ctx.getcwd().err(), Some(Errno::ENOENT));
}

#[test]
fn base_for_dirfd() {
    let e = env();
    e.mkdir("/d").unwrap();
    e.create("/d/f", b"abc");
    let fd = e
        .ctx
        .open(
            AT_FDCWD,
            b"/d",
            OpenFlags(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY),
            0,
        )
        .unwrap();
    let base = e.ctx.base_for(fd, b"f").unwrap();
    assert_eq!(e.vfs.stat(&base, b"f", true).unwrap().size, 3);
    let ffd = e
        .ctx
        .open(AT_FDCWD, b"/d/f", OpenFlags(OpenFlags::O_RDONLY), 0)
        .unwrap();
    assert_eq!(e.ctx.base_for(ffd, b"x").err(), Some(Errno::ENOTDIR));
    assert_eq!(e.ctx.base_for(99, b"x").err(), Some(Errno::EBADF));
    // Absolute paths ignore a bad dirfd.
    assert!(e.ctx.base_for(99, b"/d").is_ok());
}
