//! procfs: the parts of `/proc` programs read: `/proc/self` (a link to `/proc/<pid>`)
//! with `exe`, `cwd`, `fd/`, `cmdline`, `environ`, `maps`, `status`, `stat`, `comm`,
//! `mounts`; and `cpuinfo`, `meminfo`, `uptime`, `version`, `mounts`, `filesystems`,
//! `stat`, `sys/kernel/{ostype,osrelease,hostname,pid_max}`.
//!
//! Inodes are made on lookup from a small node enum. File content is generated when
//! the file is opened (a snapshot, like seq_file's first read) and files are read-only.
//! Descriptors and the working directory come from the process's [`FsContext`],
//! attached after creation; link targets are paths, re-resolved when followed.

use crate::env::{Clock, ProcessInfo, Timespec};
use crate::fdtable::FsContext;
use crate::inode::{DirEntry, FileSystem, Inode, NewNode, NewOwner, FIRST_COOKIE};
use crate::types::{
    FileType, SetAttr, Stat, StatFs, NAME_MAX, PROC_SUPER_MAGIC, ST_NODEV, ST_NOEXEC, ST_NOSUID,
    ST_RELATIME,
};
use crate::vfs::Vfs;
use alloc::format;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use skiff_errno::{Errno, KResult};
use spin::RwLock;

/// Kernel release procfs reports.
pub const OS_RELEASE: &str = "6.1.0-skiff";
/// Linux's default `pid_max` on 64-bit machines with many CPUs.
const PID_MAX: u32 = 4_194_304;
/// Linux's USER_HZ: clock ticks in /proc/stat and /proc/<pid>/stat.
const USER_HZ: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Root,
    Pid,
    Fd,
    Sys,
    SysKernel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    PidSelf,
    Exe,
    Cwd,
    Fd(i32),
    Mounts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gen {
    Cpuinfo,
    Meminfo,
    Uptime,
    Version,
    Filesystems,
    SysStat,
    Cmdline,
    Environ,
    Maps,
    Status,
    PidStat,
    PidMounts,
    Comm,
    Ostype,
    Osrelease,
    Hostname,
    PidMax,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Dir(Dir),
    Link(Link),
    File(Gen),
}

const ROOT_FILES: &[(&[u8], Node)] = &[
    (b"self", Node::Link(Link::PidSelf)),
    (b"cpuinfo", Node::File(Gen::Cpuinfo)),
    (b"meminfo", Node::File(Gen::Meminfo)),
    (b"uptime", Node::File(Gen::Uptime)),
    (b"version", Node::File(Gen::Version)),
    (b"mounts", Node::Link(Link::Mounts)),
    (b"filesystems", Node::File(Gen::Filesystems)),
    (b"stat", Node::File(Gen::SysStat)),
    (b"sys", Node::Dir(Dir::Sys)),
];

const PID_FILES: &[(&[u8], Node)] = &[
    (b"exe", Node::Link(Link::Exe)),
    (b"cwd", Node::Link(Link::Cwd)),
    (b"fd", Node::Dir(Dir::Fd)),
    (b"cmdline", Node::File(Gen::Cmdline)),
    (b"environ", Node::File(Gen::Environ)),
    (b"maps", Node::File(Gen::Maps)),
    (b"status", Node::File(Gen::Status)),
    (b"stat", Node::File(Gen::PidStat)),
    (b"mounts", Node::File(Gen::PidMounts)),
    (b"comm", Node::File(Gen::Comm)),
];

const SYS_FILES: &[(&[u8], Node)] = &[(b"kernel", Node::Dir(Dir::SysKernel))];

const KERNEL_FILES: &[(&[u8], Node)] = &[
    (b"ostype", Node::File(Gen::Ostype)),
    (b"osrelease", Node::File(Gen::Osrelease)),
    (b"hostname", Node::File(Gen::Hostname)),
    (b"pid_max", Node::File(Gen::PidMax)),
];

/// The procfs instance.
pub struct ProcFs {
    me: Weak<ProcFs>,
    vfs: Weak<Vfs>,
    clock: Arc<dyn Clock>,
    info: Arc<dyn ProcessInfo>,
    process: RwLock<Weak<FsContext>>,
    hostname: RwLock<Vec<u8>>,
}

impl ProcFs {
    pub fn new(vfs: Weak<Vfs>, clock: Arc<dyn Clock>, info: Arc<dyn ProcessInfo>) -> Arc<ProcFs> {
        Arc::new_cyclic(|me| ProcFs {
            me: me.clone(),
            vfs,
            clock,
            info,
            process: RwLock::new(Weak::new()),
            hostname: RwLock::new(b"skiff".to_vec()),
        })
    }

    /// Source of `/proc/self/fd` and `/proc/self/cwd`.
    pub fn attach_process(&self, process: &Arc<FsContext>) {
        *self.process.write() = Arc::downgrade(process);
    }

    /// What `/proc/sys/kernel/hostname` shows (kept in step with `sethostname`).
    pub fn set_hostname(&self, name: &[u8]) {
        *self.hostname.write() = name.to_vec();
    }

    fn node(&self, node: Node) -> Arc<dyn Inode> {
        Arc::new(ProcInode {
            fs: self.me.upgrade().expect("procfs used after drop"),
            node,
        })
    }

    fn process(&self) -> Option<Arc<FsContext>> {
        self.info.files().or_else(|| self.process.read().upgrade())
    }

    fn pid_name(&self) -> Vec<u8> {
        format!("{}", self.info.pid()).into_bytes()
    }

    fn comm(&self) -> String {
        let exe = self.info.exe_path();
        let base = exe.rsplit(|&b| b == b'/').next().unwrap_or(&exe);
        // The kernel keeps 15 bytes of the name (TASK_COMM_LEN - 1).
        String::from_utf8_lossy(&base[..base.len().min(15)]).into_owned()
    }

    fn generate(&self, gen: Gen) -> Vec<u8> {
        let info = &self.info;
        match gen {
            Gen::Cpuinfo => info.cpuinfo().into_bytes(),
            Gen::Meminfo => info.meminfo().into_bytes(),
            Gen::Uptime => {
                let (up, idle) = info.uptime();
                format!(
                    "{}.{:02} {}.{:02}\n",
                    up.sec,
                    up.nsec / 10_000_000,
                    idle.sec,
                    idle.nsec / 10_000_000
                )
                .into_bytes()
            }
            Gen::Version => {
                format!("Linux version {OS_RELEASE} (skiff@skiff) (rustc) #1 SMP\n").into_bytes()
            }
            Gen::Filesystems => b"nodev\ttmpfs\nnodev\tproc\nnodev\tdevtmpfs\n".to_vec(),
            Gen::SysStat => {
                let (up, idle) = info.uptime();
                let ticks = |t: Timespec| t.sec * USER_HZ + t.nsec / (1_000_000_000 / USER_HZ);
                let busy = (ticks(up) - ticks(idle)).max(0);
                let idle = ticks(idle);
                let boot = self.clock.realtime().sec - up.sec;
                let cpu = format!("{busy} 0 0 {idle} 0 0 0 0 0 0");
                format!(
                    "cpu  {cpu}\ncpu0 {cpu}\nintr 0\nctxt 0\nbtime {boot}\nprocesses 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
                )
                .into_bytes()
            }
            Gen::Cmdline => info.cmdline(),
            Gen::Environ => info.environ(),
            Gen::Maps => info.maps().into_bytes(),
            Gen::Status => info.status().into_bytes(),
            Gen::PidStat => {
                let pid = info.pid();
                let (ppid, pgrp, session) = info.relations();
                let (up, idle) = info.uptime();
                let ticks = |t: Timespec| t.sec * USER_HZ + t.nsec / (1_000_000_000 / USER_HZ);
                let utime = (ticks(up) - ticks(idle)).max(0);
                // 52 fields: pid (comm) state ppid pgrp session tty_nr tpgid flags
                // minflt cminflt majflt cmajflt utime stime cutime cstime priority nice
                // num_threads itrealvalue starttime vsize rss rsslim, then 27 more.
                let mut s = format!(
                    "{pid} ({}) R {ppid} {pgrp} {session} 0 -1 4194560 0 0 0 0 {utime} 0 0 0 20 0 1 0 0 0 0 18446744073709551615",
                    self.comm()
                );
                for _ in 0..27 {
                    s.push_str(" 0");
                }
                s.push('\n');
                s.into_bytes()
            }
            Gen::PidMounts => self
                .vfs
                .upgrade()
                .map(|v| v.mounts_text())
                .unwrap_or_default()
                .into_bytes(),
            Gen::Comm => format!("{}\n", self.comm()).into_bytes(),
            Gen::Ostype => b"Linux\n".to_vec(),
            Gen::Osrelease => format!("{OS_RELEASE}\n").into_bytes(),
            Gen::Hostname => {
                let mut h = self.hostname.read().clone();
                h.push(b'\n');
                h
            }
            Gen::PidMax => format!("{PID_MAX}\n").into_bytes(),
        }
    }

    fn children(&self, dir: Dir) -> Vec<(u64, Vec<u8>, Node)> {
        let fixed = |list: &[(&[u8], Node)], first: u64| -> Vec<(u64, Vec<u8>, Node)> {
            list.iter()
                .enumerate()
                .map(|(i, (name, node))| (first + i as u64, name.to_vec(), *node))
                .collect()
        };
        match dir {
            Dir::Root => {
                let mut v = alloc::vec![(FIRST_COOKIE, self.pid_name(), Node::Dir(Dir::Pid))];
                v.extend(fixed(ROOT_FILES, FIRST_COOKIE + 1));
                v
            }
            Dir::Pid => fixed(PID_FILES, FIRST_COOKIE),
            Dir::Sys => fixed(SYS_FILES, FIRST_COOKIE),
            Dir::SysKernel => fixed(KERNEL_FILES, FIRST_COOKIE),
            Dir::Fd => self
                .process()
                .map(|p| p.open_fds())
                .unwrap_or_default()
                .into_iter()
                .map(|fd| {
                    (
                        FIRST_COOKIE + fd as u64,
                        format!("{fd}").into_bytes(),
                        Node::Link(Link::Fd(fd)),
                    )
                })
                .collect(),
        }
    }
}

impl FileSystem for ProcFs {
    fn root(&self) -> Arc<dyn Inode> {
        self.node(Node::Dir(Dir::Root))
    }
    fn type_name(&self) -> &'static str {
        "proc"
    }
    fn mount_options(&self) -> &'static str {
        "rw,nosuid,nodev,noexec,relatime"
    }
    fn statfs(&self) -> StatFs {
        StatFs {
            fs_type: PROC_SUPER_MAGIC,
            block_size: 4096,
            name_len: NAME_MAX as u64,
            fragment_size: 4096,
            flags: ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_RELATIME,
            ..StatFs::default()
        }
    }
    fn rename(
        &self,
        _: &Arc<dyn Inode>,
        _: &[u8],
        _: &Arc<dyn Inode>,
        _: &[u8],
        _: u32,
    ) -> KResult<()> {
        // procfs has no rename; Linux reports the missing target name.
        Err(Errno::ENOENT)
    }
}

struct ProcInode {
    fs: Arc<ProcFs>,
    node: Node,
}

impl ProcInode {
    fn dir(&self) -> KResult<Dir> {
        match self.node {
            Node::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }
}

fn node_ino(node: Node) -> u64 {
    match node {
        Node::Dir(Dir::Root) => 1,
        Node::Dir(Dir::Pid) => 2,
        Node::Dir(Dir::Fd) => 3,
        Node::Dir(Dir::Sys) => 4,
        Node::Dir(Dir::SysKernel) => 5,
        Node::Link(Link::PidSelf) => 10,
        Node::Link(Link::Exe) => 11,
        Node::Link(Link::Cwd) => 12,
        Node::Link(Link::Mounts) => 13,
        Node::File(gen) => 100 + gen as u64,
        Node::Link(Link::Fd(fd)) => 0x1_0000 + fd as u64,
    }
}

impl Inode for ProcInode {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn ino(&self) -> u64 {
        node_ino(self.node)
    }
    fn file_type(&self) -> FileType {
        match self.node {
            Node::Dir(_) => FileType::Directory,
            Node::Link(_) => FileType::Symlink,
            Node::File(_) => FileType::Regular,
        }
    }
    fn stat(&self) -> KResult<Stat> {
        let now = self.fs.clock.realtime();
        let (mode, nlink) = match self.node {
            Node::Dir(Dir::Root) => (0o040555, 4),
            Node::Dir(Dir::Pid) | Node::Dir(Dir::Sys) => (0o040555, 3),
            Node::Dir(_) => (0o040555, 2),
            Node::Link(_) => (0o120777, 1),
            Node::File(_) => (0o100444, 1),
        };
        Ok(Stat {
            ino: self.ino(),
            nlink,
            mode,
            blksize: 1024,
            atime: now,
            mtime: now,
            ctime: now,
            ..Stat::default()
        })
    }
    fn set_attr(&self, _attr: &SetAttr) -> KResult<()> {
        Err(Errno::EPERM)
    }
    fn snapshot(&self) -> Option<KResult<Vec<u8>>> {
        match self.node {
            Node::File(gen) => Some(Ok(self.fs.generate(gen))),
            _ => None,
        }
    }
    fn writable(&self) -> bool {
        false
    }
    fn readlink(&self) -> KResult<Vec<u8>> {
        let Node::Link(link) = self.node else {
            return Err(Errno::EINVAL);
        };
        match link {
            Link::PidSelf => Ok(self.fs.pid_name()),
            Link::Exe => Ok(self.fs.info.exe_path()),
            Link::Mounts => Ok(b"self/mounts".to_vec()),
            Link::Cwd => {
                let process = self.fs.process().ok_or(Errno::ENOENT)?;
                match process.getcwd() {
                    Ok(path) => Ok(path),
                    Err(_) => Ok(b"/ (deleted)".to_vec()),
                }
            }
            Link::Fd(fd) => self
                .fs
                .process()
                .ok_or(Errno::ENOENT)?
                .fd_path(fd)
                .map_err(|_| Errno::ENOENT),
        }
    }
    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        let dir = self.dir()?;
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if dir == Dir::Fd {
            let fd: i32 = core::str::from_utf8(name)
                .ok()
                // Only canonical decimal names: "03" and "+3" are not entries.
                .filter(|s| !(s.starts_with('+') || (s.len() > 1 && s.starts_with('0'))))
                .and_then(|s| s.parse().ok())
                .ok_or(Errno::ENOENT)?;
            let process = self.fs.process().ok_or(Errno::ENOENT)?;
            process.fds.lock().get(fd).map_err(|_| Errno::ENOENT)?;
            return Ok(self.fs.node(Node::Link(Link::Fd(fd))));
        }
        self.fs
            .children(dir)
            .into_iter()
            .find(|(_, n, _)| n == name)
            .map(|(_, _, node)| self.fs.node(node))
            .ok_or(Errno::ENOENT)
    }
    fn parent(&self) -> KResult<Arc<dyn Inode>> {
        let parent = match self.dir()? {
            Dir::Root | Dir::Pid | Dir::Sys => Dir::Root,
            Dir::Fd => Dir::Pid,
            Dir::SysKernel => Dir::Sys,
        };
        Ok(self.fs.node(Node::Dir(parent)))
    }
    fn create(&self, _name: &[u8], _node: NewNode, _owner: NewOwner) -> KResult<Arc<dyn Inode>> {
        self.dir()?;
        Err(Errno::ENOENT)
    }
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        self.dir()?;
        Err(Errno::ENOENT)
    }
    fn unlink(&self, name: &[u8], _remove_dir: bool) -> KResult<()> {
        self.lookup(name)?;
        Err(Errno::EPERM)
    }
    fn read_dir(&self, cookie: u64) -> KResult<Option<DirEntry>> {
        let dir = self.dir()?;
        Ok(self
            .fs
            .children(dir)
            .into_iter()
            .find(|(c, _, _)| *c >= cookie)
            .map(|(cookie, name, node)| DirEntry {
                cookie,
                name,
                ino: node_ino(node),
                file_type: match node {
                    Node::Dir(_) => FileType::Directory,
                    Node::Link(_) => FileType::Symlink,
                    Node::File(_) => FileType::Regular,
                },
            }))
    }
}
