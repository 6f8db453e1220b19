mod common;
use common::*;
use skiff_errno::Errno;
use skiff_fs::*;

const RW: u32 = OpenFlags::O_RDWR;
const CREAT: u32 = OpenFlags::O_CREAT;

#[test]
fn read_write_seek_pread_pwrite() {
    let e = env();
    let f = e.open("/tmp/f", CREAT | RW).unwrap();
    assert_eq!(f.write(b"hello world").unwrap(), 11);
    assert_eq!(f.seek(0, SEEK_SET).unwrap(), 0);
    let mut buf = [0u8; 5];
    assert_eq!(f.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(f.seek(1, SEEK_CUR).unwrap(), 6);
    assert_eq!(f.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"world");
    assert_eq!(f.read(&mut buf).unwrap(), 0);
    assert_eq!(f.seek(-5, SEEK_END).unwrap(), 6);
    assert_eq!(f.seek(-100, SEEK_CUR).err(), Some(Errno::EINVAL));
    assert_eq!(f.seek(0, 5).err(), Some(Errno::EINVAL));
    assert_eq!(f.seek(i64::MAX, SEEK_CUR).err(), Some(Errno::EINVAL));
    // pread/pwrite leave the offset alone.
    assert_eq!(f.pwrite(b"W", 6).unwrap(), 1);
    assert_eq!(f.pread(&mut buf, 6).unwrap(), 5);
    assert_eq!(&buf, b"World");
    assert_eq!(f.seek(0, SEEK_CUR).unwrap(), 6);
    assert_eq!(f.pread(&mut buf, -1).err(), Some(Errno::EINVAL));
    assert_eq!(f.pread(&mut buf, 100).unwrap(), 0);
    // Seeking past the end and writing leaves a hole of zeros.
    f.seek(20, SEEK_SET).unwrap();
    f.write(b"!").unwrap();
    assert_eq!(e.stat("/tmp/f").unwrap().size, 21);
    let all = e.read_all("/tmp/f").unwrap();
    assert_eq!(&all[11..20], &[0u8; 9]);
    // Directories.
    let d = e.open("/tmp", OpenFlags::O_RDONLY).unwrap();
    assert_eq!(d.read(&mut buf).err(), Some(Errno::EISDIR));
    assert_eq!(d.seek(0, SEEK_END).err(), Some(Errno::EINVAL));
    let wo = e.open("/tmp/f", OpenFlags::O_WRONLY).unwrap();
    assert_eq!(wo.read(&mut buf).err(), Some(Errno::EBADF));
    let ro = e.open("/tmp/f", OpenFlags::O_RDONLY).unwrap();
    assert_eq!(ro.write(b"x").err(), Some(Errno::EBADF));
}

#[test]
fn append_is_at_the_end_even_for_pwrite() {
    let e = env();
    e.create("/tmp/log", b"ab");
    let a = e
        .open("/tmp/log", OpenFlags::O_WRONLY | OpenFlags::O_APPEND)
        .unwrap();
    let b = e.open("/tmp/log", OpenFlags::O_WRONLY).unwrap();
    b.write(b"XY").unwrap(); // overwrites "ab" at offset 0
    a.write(b"cd").unwrap();
    assert_eq!(a.seek(0, SEEK_CUR).unwrap(), 4);
    a.pwrite(b"ef", 0).unwrap();
    assert_eq!(e.read_all("/tmp/log").unwrap(), b"XYcdef");
    // F_SETFL can turn O_APPEND off.
    a.set_status_flags(0).unwrap();
    a.seek(0, SEEK_SET).unwrap();
    a.write(b"Z").unwrap();
    assert_eq!(e.read_all("/tmp/log").unwrap(), b"ZYcdef");
}

#[test]
fn sparse_truncate_of_a_gibibyte_is_cheap() {
    let e = env();
    let f = e.open("/tmp/sparse", CREAT | RW).unwrap();
    f.truncate(1 << 30).unwrap();
    let st = f.stat().unwrap();
    assert_eq!(st.size, 1 << 30);
    assert_eq!(st.blocks, 0);
    let mut buf = [1u8; 64];
    assert_eq!(f.pread(&mut buf, 512 << 20).unwrap(), 64);
    assert_eq!(buf, [0u8; 64]);
    f.pwrite(b"data", 100 << 20).unwrap();
    assert_eq!(f.stat().unwrap().blocks, 8);
    // SEEK_DATA / SEEK_HOLE find the one page of data.
    assert_eq!(f.seek(0, SEEK_DATA).unwrap(), 100 << 20);
    assert_eq!(f.seek(100 << 20, SEEK_HOLE).unwrap(), (100 << 20) + 4096);
    assert_eq!(f.seek(5, SEEK_HOLE).unwrap(), 5);
    assert_eq!(
        f.seek((100 << 20) + 4096, SEEK_DATA).err(),
        Some(Errno::ENXIO)
    );
    assert_eq!(f.seek(1 << 30, SEEK_DATA).err(), Some(Errno::ENXIO));
    assert_eq!(f.seek(-1, SEEK_HOLE).err(), Some(Errno::ENXIO));
    // Shrinking drops pages and zeroes the tail of the last partial page.
    f.pwrite(&[7u8; 100], 0).unwrap();
    f.truncate(50).unwrap();
    f.truncate(100).unwrap();
    let mut back = [9u8; 100];
    f.pread(&mut back, 0).unwrap();
    assert_eq!(&back[..50], &[7u8; 50]);
    assert_eq!(&back[50..], &[0u8; 50]);
    assert_eq!(f.stat().unwrap().blocks, 8);
    assert_eq!(f.truncate(-1).err(), Some(Errno::EINVAL));
    assert_eq!(f.pwrite(b"x", i64::MAX).err(), Some(Errno::EFBIG));
}

#[test]
fn unlinked_open_files_live_on() {
    let e = env();
    let f = e.create("/tmp/gone", b"still here");
    e.unlink("/tmp/gone").unwrap();
    assert_eq!(e.stat("/tmp/gone").err(), Some(Errno::ENOENT));
    f.seek(0, SEEK_SET).unwrap();
    assert_eq!(read_to_end(&f).unwrap(), b"still here");
    f.write(b"!").unwrap();
    assert_eq!(f.stat().unwrap().size, 11);
    assert_eq!(f.stat().unwrap().nlink, 0);
    assert_eq!(f.path(), b"/tmp/gone (deleted)");
    // A removed directory stays usable as a handle but lists nothing.
    e.mkdir("/tmp/dd").unwrap();
    let d = e.open("/tmp/dd", OpenFlags::O_RDONLY).unwrap();
    e.rmdir("/tmp/dd").unwrap();
    assert_eq!(d.getdents64(&mut [0u8; 256]).err(), Some(Errno::ENOENT));
    let base = d.location().unwrap().clone();
    assert_eq!(
        e.vfs
            .open(&base, b"new", OpenFlags(CREAT | RW), 0o644)
            .err(),
        Some(Errno::ENOENT)
    );
}

#[test]
fn getdents64_records_and_small_buffers() {
    let e = env();
    e.mkdir("/g").unwrap();
    e.create("/g/file", b"");
    e.mkdir("/g/sub").unwrap();
    e.symlink("file", "/g/link").unwrap();
    let d = e
        .open("/g", OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = d.getdents64(&mut buf).unwrap();
    let ents = parse_dirents(&buf[..n]);
    let names: Vec<_> = ents.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(names, [".", "..", "file", "sub", "link"]);
    let g = e.stat("/g").unwrap();
    let root = e.stat("/").unwrap();
    assert_eq!(ents[0].0, g.ino);
    assert_eq!(ents[1].0, root.ino);
    assert_eq!(ents[2].2, 8);
    assert_eq!(ents[3].2, 4);
    assert_eq!(ents[4].2, 10);
    assert_eq!(ents[3].0, e.stat("/g/sub").unwrap().ino);
    // Record for "file": 19 + 4 + 1 = 24 bytes.
    assert_eq!(u16::from_le_bytes([buf[48 + 16], buf[48 + 17]]), 24);
    assert_eq!(d.getdents64(&mut buf).unwrap(), 0);
    // Seeking back to a d_off resumes right after that entry.
    d.seek(ents[2].1, SEEK_SET).unwrap();
    let n = d.getdents64(&mut buf).unwrap();
    let names: Vec<_> = parse_dirents(&buf[..n]).into_iter().map(|e| e.3).collect();
    assert_eq!(names, ["sub", "link"]);
    // A buffer too small for one record is EINVAL; one record fits exactly.
    d.seek(0, SEEK_SET).unwrap();
    assert_eq!(d.getdents64(&mut [0u8; 23]).err(), Some(Errno::EINVAL));
    assert_eq!(d.getdents64(&mut buf[..24]).unwrap(), 24);
    assert_eq!(parse_dirents(&buf[..24])[0].3, ".");
    let f = e.open("/g/file", OpenFlags::O_RDONLY).unwrap();
    assert_eq!(f.getdents64(&mut buf).err(), Some(Errno::ENOTDIR));
}

#[test]
fn getdents64_positions_survive_changes() {
    let e = env();
    e.mkdir("/s").unwrap();
    for i in 0..10 {
        e.create(&format!("/s/f{i}"), b"");
    }
    let d = e.open("/s", OpenFlags::O_RDONLY).unwrap();
    // Read ".", "..", f0..f3 (6 records of 24 bytes).
    let mut buf = vec![0u8; 6 * 24];
    let n = d.getdents64(&mut buf).unwrap();
    let first: Vec<_> = parse_dirents(&buf[..n]).into_iter().map(|e| e.3).collect();
    assert_eq!(first, [".", "..", "f0", "f1", "f2", "f3"]);
    // Remove some already-read and some not-yet-read entries, add new ones.
    e.unlink("/s/f1").unwrap();
    e.unlink("/s/f3").unwrap();
    e.unlink("/s/f5").unwrap();
    e.create("/s/new1", b"");
    e.rename("/s/f0", "/s/renamed0", 0).unwrap();
    let rest = list_dir(&d);
    assert_eq!(rest, ["f4", "f6", "f7", "f8", "f9", "new1", "renamed0"]);
    // No entry is reported twice and none that existed throughout is skipped.
    let mut all = first.clone();
    all.extend(rest);
    for kept in ["f2", "f4", "f6", "f7", "f8", "f9"] {
        assert_eq!(all.iter().filter(|n| *n == kept).count(), 1, "{kept}");
    }
}

#[test]
fn dup_shares_offset_and_flags() {
    let e = env();
    e.create("/tmp/f", b"abcdef");
    let mut fds = FdTable::new();
    let file = e.open("/tmp/f", RW).unwrap();
    let a = fds.insert(file, false).unwrap();
    let b = fds.dup(a).unwrap();
    assert_eq!((a, b), (0, 1));
    let mut buf = [0u8; 2];
    fds.get(a).unwrap().read(&mut buf).unwrap();
    fds.get(b).unwrap().read(&mut buf).unwrap();
    assert_eq!(&buf, b"cd");
    fds.fcntl(a, F_SETFL, OpenFlags::O_APPEND as u64).unwrap();
    assert_eq!(
        fds.fcntl(b, F_GETFL, 0).unwrap() as u32 & OpenFlags::O_APPEND,
        OpenFlags::O_APPEND
    );
    assert_eq!(
        fds.fcntl(b, F_GETFL, 0).unwrap() as u32 & OpenFlags::O_ACCMODE,
        OpenFlags::O_RDWR
    );
}

#[test]
fn fd_table_rules() {
    let e = env();
    let mut fds = FdTable::new();
    let f = e.open("/dev/null", RW).unwrap();
    for expect in 0..4 {
        assert_eq!(fds.insert(f.clone(), false).unwrap(), expect);
    }
    fds.close(1).unwrap();
    assert_eq!(fds.close(1).err(), Some(Errno::EBADF));
    assert_eq!(fds.get(1).err(), Some(Errno::EBADF));
    assert_eq!(fds.get(-1).err(), Some(Errno::EBADF));
    assert_eq!(fds.insert(f.clone(), true).unwrap(), 1, "lowest free");
    assert_eq!(fds.fcntl(1, F_GETFD, 0).unwrap(), FD_CLOEXEC as i64);
    assert_eq!(fds.dup(1).unwrap(), 4);
    assert_eq!(
        fds.fcntl(4, F_GETFD, 0).unwrap(),
        0,
        "dup clears close-on-exec"
    );
    assert_eq!(fds.dup2(0, 0).unwrap().0, 0);
    assert_eq!(fds.dup2(9, 9).err(), Some(Errno::EBADF));
    let (fd, replaced) = fds.dup2(0, 3).unwrap();
    assert_eq!(fd, 3);
    assert!(replaced.is_some());
    assert_eq!(fds.dup2(0, 100).unwrap().0, 100);
    assert_eq!(fds.dup2(0, 5000).err(), Some(Errno::EBADF));
    assert_eq!(fds.dup3(0, 0, 0).err(), Some(Errno::EINVAL));
    assert_eq!(fds.dup3(0, 7, 1).err(), Some(Errno::EINVAL));
    fds.dup3(0, 7, OpenFlags::O_CLOEXEC).unwrap();
    assert!(fds.cloexec(7).unwrap());
    assert_eq!(fds.fcntl(0, F_DUPFD, 50).unwrap(), 50);
    assert_eq!(fds.fcntl(0, F_DUPFD_CLOEXEC, 50).unwrap(), 51);
    assert!(fds.cloexec(51).unwrap());
    assert_eq!(fds.fcntl(0, F_DUPFD, 1024).err(), Some(Errno::EINVAL));
    fds.fcntl(51, F_SETFD, 0).unwrap();
    assert!(!fds.cloexec(51).unwrap());
    assert_eq!(fds.fcntl(0, 9999, 0).err(), Some(Errno::EINVAL));
    assert_eq!(fds.fcntl(77, F_GETFD, 0).err(), Some(Errno::EBADF));
    let closed = fds.close_on_exec();
    assert_eq!(closed.len(), 2); // 1 and 7
    assert_eq!(fds.get(7).err(), Some(Errno::EBADF));
    // The limit gives EMFILE.
    let mut small = FdTable::new();
    small.set_limit(3);
    for _ in 0..3 {
        small.insert(f.clone(), false).unwrap();
    }
    assert_eq!(small.insert(f.clone(), false).err(), Some(Errno::EMFILE));
    assert_eq!(small.dup(0).err(), Some(Errno::EMFILE));
}

#[test]
fn fs_context_open_installs_descriptors() {
    let e = env();
    let fd = e
        .ctx
        .open(
            AT_FDCWD,
            b"/tmp/x",
            OpenFlags(CREAT | RW | OpenFlags::O_CLOEXEC),
            0o666,
        )
        .unwrap();
    assert!(e.ctx.fds.lock().cloexec(fd).unwrap());
    assert_eq!(e.stat("/tmp/x").unwrap().mode, S_IFREG | 0o644);
    e.ctx.chdir(b"/tmp").unwrap();
    let fd2 = e.ctx.open(AT_FDCWD, b"x", OpenFlags(RW), 0).unwrap();
    assert_eq!(fd2, fd + 1);
    assert_eq!(e.ctx.fd_path(fd2).unwrap(), b"/tmp/x");
}
