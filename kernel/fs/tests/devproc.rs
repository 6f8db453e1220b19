mod common;
use common::*;
use skiff_errno::Errno;
use skiff_fs::device::*;
use skiff_fs::*;

const RW: u32 = OpenFlags::O_RDWR;

#[test]
fn memory_devices() {
    let e = env();
    let null = e.open("/dev/null", RW).unwrap();
    assert_eq!(null.read(&mut [1u8; 8]).unwrap(), 0);
    assert_eq!(null.write(b"abc").unwrap(), 3);
    assert_eq!(null.seek(100, SEEK_SET).unwrap(), 0);
    let zero = e.open("/dev/zero", RW).unwrap();
    let mut buf = [9u8; 16];
    assert_eq!(zero.read(&mut buf).unwrap(), 16);
    assert_eq!(buf, [0u8; 16]);
    assert_eq!(zero.pread(&mut buf, 5).unwrap(), 16);
    let full = e.open("/dev/full", RW).unwrap();
    assert_eq!(full.write(b"x").err(), Some(Errno::ENOSPC));
    assert_eq!(full.read(&mut buf).unwrap(), 16);
    for dev in ["/dev/random", "/dev/urandom"] {
        let r = e.open(dev, OpenFlags::O_RDONLY).unwrap();
        let mut buf = [0u8; 8];
        r.read(&mut buf).unwrap();
        assert_eq!(buf, [1, 8, 15, 22, 29, 36, 43, 50]);
    }
    let numbers = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
        ("/dev/console", 5, 1),
    ];
    for (path, major, minor) in numbers {
        let st = e.stat(path).unwrap();
        assert_eq!(st.mode & S_IFMT, S_IFCHR, "{path}");
        assert_eq!(
            (dev_major(st.rdev), dev_minor(st.rdev)),
            (major, minor),
            "{path}"
        );
    }
    assert_eq!(null.ioctl(TCGETS, &[]).err(), Some(Errno::ENOTTY));
    for (link, target) in [
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/fd", "/proc/self/fd"),
    ] {
        assert_eq!(
            e.vfs.readlink(&e.root(), link.as_bytes()).unwrap(),
            target.as_bytes()
        );
    }
}

#[test]
fn console_descriptors_and_tty_ioctls() {
    let e = env_with_tty(true);
    let term = e.vfs.terminal().unwrap();
    let stdin = OpenFile::console(&term, StdStream::Stdin);
    let stdout = OpenFile::console(&term, StdStream::Stdout);
    let stderr = OpenFile::console(&term, StdStream::Stderr);
    stdout.write(b"out").unwrap();
    stderr.write(b"err").unwrap();
    assert_eq!(&*e.console.stdout.lock().unwrap(), b"out");
    assert_eq!(&*e.console.stderr.lock().unwrap(), b"err");
    e.console.input.lock().unwrap().extend_from_slice(b"typed");
    let mut buf = [0u8; 16];
    assert_eq!(stdin.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"typed");
    stdin.set_status_flags(OpenFlags::O_NONBLOCK).unwrap();
    assert_eq!(stdin.read(&mut buf).err(), Some(Errno::EAGAIN));
    assert!(stdout.is_tty());
    assert_eq!(stdout.seek(0, SEEK_CUR).err(), Some(Errno::ESPIPE));
    assert_eq!(stdout.pwrite(b"x", 0).err(), Some(Errno::ESPIPE));
    assert_eq!(stdout.stat().unwrap().mode & S_IFMT, S_IFCHR);
    // TCGETS gives Linux's default termios; TCSETS is stored and shared.
    let IoctlOut::CopyOut(t) = stdout.ioctl(TCGETS, &[]).unwrap() else {
        panic!()
    };
    assert_eq!(t.len(), KERNEL_TERMIOS_SIZE);
    let termios = Termios::from_bytes(&t).unwrap();
    assert_eq!(termios, Termios::linux_default());
    assert_eq!(termios.lflag & 0o2, 0o2, "ICANON");
    let mut raw = termios;
    raw.lflag &= !0o12; // ~(ICANON|ECHO)
    assert_eq!(
        stdin.ioctl(TCSETS, &raw.to_bytes()).unwrap(),
        IoctlOut::Return(0)
    );
    let IoctlOut::CopyOut(t) = stderr.ioctl(TCGETS, &[]).unwrap() else {
        panic!()
    };
    assert_eq!(Termios::from_bytes(&t).unwrap(), raw);
    assert_eq!(stdin.ioctl(TCSETSW, &[0u8; 3]).err(), Some(Errno::EFAULT));
    let IoctlOut::CopyOut(ws) = stdout.ioctl(TIOCGWINSZ, &[]).unwrap() else {
        panic!()
    };
    assert_eq!(ws, [24, 0, 80, 0, 0, 0, 0, 0]);
    let IoctlOut::CopyOut(pgrp) = stdout.ioctl(TIOCGPGRP, &[]).unwrap() else {
        panic!()
    };
    assert_eq!(pgrp.len(), 4);
    assert_eq!(stdout.ioctl(0x1234, &[]).err(), Some(Errno::ENOTTY));
    assert_eq!(ioctl_input_len(TCSETS), KERNEL_TERMIOS_SIZE);
    // /dev/tty writes to stdout.
    let tty = e.open("/dev/tty", RW).unwrap();
    tty.write(b"!").unwrap();
    assert_eq!(&*e.console.stdout.lock().unwrap(), b"out!");
    assert!(tty.is_tty());
}

#[test]
fn console_that_is_a_pipe_is_not_a_tty() {
    let e = env_with_tty(false);
    let term = e.vfs.terminal().unwrap();
    let stdin = OpenFile::console(&term, StdStream::Stdin);
    let stdout = OpenFile::console(&term, StdStream::Stdout);
    assert!(!stdout.is_tty());
    assert_eq!(stdout.ioctl(TCGETS, &[]).err(), Some(Errno::ENOTTY));
    assert_eq!(stdout.stat().unwrap().mode & S_IFMT, S_IFIFO);
    assert_eq!(stdout.read(&mut [0u8; 1]).err(), Some(Errno::EBADF));
    assert_eq!(stdin.write(b"x").err(), Some(Errno::EBADF));
    *e.console.eof.lock().unwrap() = true;
    assert_eq!(stdin.read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(e.open("/dev/tty", RW).err(), Some(Errno::ENXIO));
    assert!(e.open("/dev/console", RW).unwrap().is_tty());
}

#[test]
fn console_input_readiness_follows_buffered_input_and_eof() {
    let e = env_with_tty(false);
    let term = e.vfs.terminal().unwrap();
    let stdin = OpenFile::console(&term, StdStream::Stdin);
    let stdout = OpenFile::console(&term, StdStream::Stdout);
    assert_eq!(stdin.poll_ready(), (false, true));
    e.console.input.lock().unwrap().extend_from_slice(b"x");
    assert!(stdin.poll_ready().0);
    stdin.read(&mut [0u8; 1]).unwrap();
    assert!(!stdin.poll_ready().0);
    *e.console.eof.lock().unwrap() = true;
    assert!(stdin.poll_ready().0);
    assert!(stdout.poll_ready().1);
    let f = e.create("/tmp/ready", b"data");
    assert_eq!(f.poll_ready(), (true, true));
}

#[test]
fn fionbio_and_fionread() {
    let e = env();
    let f = e.create("/tmp/f", b"0123456789");
    f.seek(4, SEEK_SET).unwrap();
    assert_eq!(
        f.ioctl(FIONREAD, &[]).unwrap(),
        IoctlOut::CopyOut(6i32.to_le_bytes().to_vec())
    );
    f.ioctl(FIONBIO, &1i32.to_le_bytes()).unwrap();
    assert_ne!(f.status_flags() & OpenFlags::O_NONBLOCK, 0);
    f.ioctl(FIONBIO, &0i32.to_le_bytes()).unwrap();
    assert_eq!(f.status_flags() & OpenFlags::O_NONBLOCK, 0);
    assert_eq!(f.ioctl(TCGETS, &[]).err(), Some(Errno::ENOTTY));
}

#[test]
fn proc_self_and_exe() {
    let e = env();
    assert_eq!(e.vfs.readlink(&e.root(), b"/proc/self").unwrap(), b"7");
    assert_eq!(
        e.vfs.readlink(&e.root(), b"/proc/self/exe").unwrap(),
        b"/bin/app"
    );
    assert_eq!(e.lstat("/proc/self/exe").unwrap().mode & S_IFMT, S_IFLNK);
    assert!(e.resolve("/proc/7/maps", true).is_ok());
    assert_eq!(e.read_all("/proc/self/cmdline").unwrap(), b"app\0--flag\0");
    assert_eq!(e.read_all("/proc/self/environ").unwrap(), b"HOME=/\0");
    assert!(e
        .read_all("/proc/self/maps")
        .unwrap()
        .starts_with(b"00400000-"));
    assert_eq!(e.read_all("/proc/self/comm").unwrap(), b"app\n");
    assert_eq!(
        e.read_all("/proc/self/status").unwrap(),
        b"Name:\tapp\nPid:\t7\n"
    );
    let stat = String::from_utf8(e.read_all("/proc/self/stat").unwrap()).unwrap();
    assert!(stat.starts_with("7 (app) R "), "{stat}");
    assert_eq!(stat.split_whitespace().count(), 52);
    assert_eq!(e.read_all("/proc/uptime").unwrap(), b"12.34 10.00\n");
    assert_eq!(e.read_all("/proc/sys/kernel/ostype").unwrap(), b"Linux\n");
    assert_eq!(
        e.read_all("/proc/sys/kernel/pid_max").unwrap(),
        b"4194304\n"
    );
    assert_eq!(e.read_all("/proc/sys/kernel/hostname").unwrap(), b"skiff\n");
    e.vfs.procfs().unwrap().set_hostname(b"box");
    assert_eq!(e.read_all("/proc/sys/kernel/hostname").unwrap(), b"box\n");
    assert!(e
        .read_all("/proc/version")
        .unwrap()
        .starts_with(b"Linux version "));
    assert!(e
        .read_all("/proc/filesystems")
        .unwrap()
        .windows(5)
        .any(|w| w == b"tmpfs"));
    assert!(e
        .read_all("/proc/cpuinfo")
        .unwrap()
        .starts_with(b"processor"));
    assert!(e
        .read_all("/proc/meminfo")
        .unwrap()
        .starts_with(b"MemTotal"));
    let sys_stat = String::from_utf8(e.read_all("/proc/stat").unwrap()).unwrap();
    assert!(sys_stat.starts_with("cpu  234 0 0 1000 "), "{sys_stat}");
    assert!(sys_stat.contains(&format!("btime {}\n", e.clock.now() - 12)));
}

#[test]
fn proc_is_read_only_and_listable() {
    let e = env();
    assert_eq!(
        e.open("/proc/cpuinfo", OpenFlags::O_WRONLY).err(),
        Some(Errno::EACCES)
    );
    assert_eq!(e.open("/proc/self/maps", RW).err(), Some(Errno::EACCES));
    assert_eq!(
        e.open("/proc/new", OpenFlags::O_CREAT | RW).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(e.mkdir("/proc/new").err(), Some(Errno::ENOENT));
    assert_eq!(e.unlink("/proc/cpuinfo").err(), Some(Errno::EPERM));
    assert_eq!(
        e.rename("/proc/cpuinfo", "/proc/x", 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(e.stat("/proc/cpuinfo").unwrap().mode, S_IFREG | 0o444);
    let d = e.open("/proc", OpenFlags::O_RDONLY).unwrap();
    let names = list_dir(&d);
    for n in [
        "7",
        "self",
        "cpuinfo",
        "meminfo",
        "uptime",
        "version",
        "mounts",
        "filesystems",
        "stat",
        "sys",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    let d = e.open("/proc/self", OpenFlags::O_RDONLY).unwrap();
    let names = list_dir(&d);
    for n in [
        "exe", "cwd", "fd", "cmdline", "environ", "maps", "status", "stat",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    // Content is a snapshot taken at open.
    let h = e
        .open("/proc/sys/kernel/hostname", OpenFlags::O_RDONLY)
        .unwrap();
    e.vfs.procfs().unwrap().set_hostname(b"later");
    assert_eq!(read_to_end(&h).unwrap(), b"skiff\n");
    h.seek(1, SEEK_SET).unwrap();
    assert_eq!(read_to_end(&h).unwrap(), b"kiff\n");
    assert_eq!(h.seek(0, SEEK_END).err(), Some(Errno::EINVAL));
}

#[test]
fn proc_self_fd_and_cwd() {
    let e = env();
    let term = e.vfs.terminal().unwrap();
    for s in [StdStream::Stdin, StdStream::Stdout, StdStream::Stderr] {
        e.ctx
            .fds
            .lock()
            .insert(OpenFile::console(&term, s), false)
            .unwrap();
    }
    e.create("/tmp/data", b"payload");
    let fd = e
        .ctx
        .open(AT_FDCWD, b"/tmp/data", OpenFlags(OpenFlags::O_RDONLY), 0)
        .unwrap();
    assert_eq!(fd, 3);
    let link = format!("/proc/self/fd/{fd}");
    assert_eq!(
        e.vfs.readlink(&e.root(), link.as_bytes()).unwrap(),
        b"/tmp/data"
    );
    assert_eq!(
        e.vfs.readlink(&e.root(), b"/proc/self/fd/1").unwrap(),
        b"/dev/console"
    );
    // Opening the magic link opens the same file.
    assert_eq!(e.read_all(&link).unwrap(), b"payload");
    assert_eq!(e.read_all("/dev/fd/3").unwrap(), b"payload");
    // /dev/stdout reaches the console.
    e.open("/dev/stdout", OpenFlags::O_WRONLY)
        .unwrap()
        .write(b"via dev")
        .unwrap();
    assert_eq!(&*e.console.stdout.lock().unwrap(), b"via dev");
    let d = e.open("/proc/self/fd", OpenFlags::O_RDONLY).unwrap();
    let names = list_dir(&d);
    assert_eq!(&names[..2], [".", ".."]);
    assert!(
        ["0", "1", "2", "3"]
            .iter()
            .all(|n| names.iter().any(|x| x == n)),
        "{names:?}"
    );
    assert_eq!(e.stat("/proc/self/fd/99").err(), Some(Errno::ENOENT));
    assert_eq!(e.stat("/proc/self/fd/03").err(), Some(Errno::ENOENT));
    e.mkdir("/work").unwrap();
    e.ctx.chdir(b"/work").unwrap();
    assert_eq!(
        e.vfs.readlink(&e.root(), b"/proc/self/cwd").unwrap(),
        b"/work"
    );
    assert!(e
        .resolve("/proc/self/cwd", true)
        .unwrap()
        .same_as(&e.resolve("/work", true).unwrap()));
    assert_eq!(String::from_utf8(e.ctx.getcwd().unwrap()).unwrap(), "/work");
    // A directory descriptor shows its path.
    let dfd = e
        .ctx
        .open(AT_FDCWD, b".", OpenFlags(OpenFlags::O_RDONLY), 0)
        .unwrap();
    assert_eq!(e.ctx.fd_path(dfd).unwrap(), b"/work");
}

/// A device that is only there to stand behind a socket's open file.
struct Inert;
impl CharDevice for Inert {
    fn read(&self, _buf: &mut [u8], _nonblock: bool) -> skiff_errno::KResult<usize> {
        Ok(0)
    }
    fn write(&self, buf: &[u8]) -> skiff_errno::KResult<usize> {
        Ok(buf.len())
    }
}

#[test]
fn files_outside_the_tree_report_linuxs_pseudo_filesystems() {
    let (r, w) = pipe(0);
    for end in [&r, &w] {
        let st = end.detached_statfs().unwrap();
        assert_eq!(st.fs_type, PIPEFS_MAGIC);
        assert_eq!((st.block_size, st.blocks, st.name_len), (4096, 0, 255));
        assert_eq!(st.fsid, [12, 0], "pipefs's device number");
    }
    let socket = OpenFile::detached_device(
        std::sync::Arc::new(Inert),
        OpenFlags(OpenFlags::O_RDWR),
        skiff_fs::socket::socket_stat(7),
    );
    assert_eq!(socket.detached_statfs().unwrap().fs_type, SOCKFS_MAGIC);
    let event = eventfd(0, 0).unwrap();
    assert_eq!(
        event.detached_statfs().unwrap().fs_type,
        ANON_INODE_FS_MAGIC
    );
    // The console: a terminal lives on devpts, a pipe on pipefs.
    for (tty, magic) in [(true, DEVPTS_SUPER_MAGIC), (false, PIPEFS_MAGIC)] {
        let e = env_with_tty(tty);
        let out = OpenFile::console(&e.vfs.terminal().unwrap(), StdStream::Stdout);
        assert_eq!(out.detached_statfs().unwrap().fs_type, magic, "tty {tty}");
    }
    // Files in the tree are their mount's business.
    let e = env();
    let f = e.create("/tmp/f", b"");
    assert_eq!(f.detached_statfs(), None);
}
