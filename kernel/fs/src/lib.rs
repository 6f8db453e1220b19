//! Skiff's file system layer: the VFS (path resolution, inodes, open files), the
//! in-memory root filesystem (tmpfs), device files (devtmpfs on `/dev`), procfs,
//! cpio `newc` unpacking of the initrd, the per-process descriptor table, and the files
//! that have no name in the tree: pipes, eventfds, epoll instances, timerfds,
//! signalfds and AF_UNIX sockets.
//!
//! The syscall layer calls in with kernel buffers it has already copied from or will
//! copy to user memory; nothing here touches user pointers. Errors are Linux errnos.
//! Every shared structure sits behind `spin` locks and `Arc`s so threads can share it.
//!
//! # Public API at a glance
//!
//! * Setup: [`Vfs::new`]`(clock) -> Arc<Vfs>` (empty tmpfs root);
//!   [`unpack_cpio`]`(&vfs, archive) -> KResult<UnpackStats>`;
//!   [`Vfs::mount_standard`]`(console, console_is_tty, entropy, procinfo)` makes `/dev`,
//!   `/proc`, `/tmp`; [`FsContext::new`]`(&vfs)` makes a process's state (descriptors,
//!   cwd, umask 022) and attaches it to procfs; [`OpenFile::console`] builds the three
//!   initial descriptors from [`Vfs::terminal`].
//! * Paths: [`Vfs::root`], [`Vfs::resolve`]`(base, path, follow_last) -> Location`,
//!   [`FsContext::base_for`]`(dirfd, path)` for `*at` calls.
//! * Operations ([`Vfs`]): `open`, `mkdir`, `mknod`, `unlink`, `rename`, `symlink`,
//!   `link`, `readlink`, `access`, `stat`, `chmod`, `chown`, `utimens`, `truncate`,
//!   `statfs`, `mount`. [`FsContext`] has `open`/`mkdir`/`mknod` that apply the umask.
//! * Open files ([`OpenFile`]): `read`, `write`, `pread`, `pwrite`, `seek`,
//!   `getdents64`, `stat`, `truncate`, `set_attr`, `status_flags`,
//!   `set_status_flags`, `ioctl`, `path`.
//! * Readiness: [`OpenFile::poll_mask`] (Linux `EPOLL*` bits),
//!   [`OpenFile::generation`] (event counts for edge triggering); epoll instances
//!   ([`Epoll::new_file`], [`Epoll::ctl`], [`Epoll::collect`]) and eventfds
//!   ([`eventfd()`]) are files like pipes ([`pipe()`]).
//! * Descriptors ([`FdTable`]): `insert`, `get`, `close`, `dup`, `dup2`, `dup3`,
//!   `dup_from`, `fcntl`, `close_on_exec`, `set_limit`.
//! * ABI encodings: [`Stat::to_linux_stat`] (144 bytes), [`Stat::to_statx`] (256),
//!   [`StatFs::to_linux_statfs`] (120), `linux_dirent64` records from `getdents64`,
//!   kernel `struct termios` (36 bytes) from `TCGETS`.
//! * Locks ([`lock`]): `flock`, OFD and POSIX record locks with Linux's conflict rules
//!   (`lock::flock`, `lock::set_record_lock`, `lock::get_record_lock`, and the
//!   `*_free` checks the syscall layer waits on).
//! * Sockets: the [`Socket`] contract every family implements, [`SockAddr`] in
//!   Linux's layouts, and [`socket::socket_file`] to put one in the descriptor table.
//!   AF_UNIX sockets: [`unix::socket`]`(fs, type, protocol, flags)` and
//!   [`unix::socketpair`]`(type, protocol, flags)`.
//! * Timers and signals as files: [`timerfd::timerfd_create`] (the kernel supplies a
//!   [`timerfd::TimerHost`] and calls [`timerfd::expire`] from its timer callback) and
//!   [`signalfd::signalfd`] (over the syscall layer's [`signalfd::SignalSource`]).
//! * Extending: implement [`FileSystem`] and [`Inode`] (a FAT volume later) and
//!   [`Vfs::mount`] it; register character drivers with [`Vfs::register_device`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod coherence;
pub mod cpio;
pub mod device;
pub mod env;
pub mod epoll;
pub mod eventfd;
pub mod fdtable;
pub mod file;
pub mod inode;
pub mod lock;
pub mod pipe;
pub mod procfs;
pub mod signalfd;
pub mod socket;
pub mod timerfd;
pub mod tmpfs;
pub mod types;
pub mod unix;
pub mod vfs;

pub use cpio::{unpack_cpio, UnpackStats};
pub use device::{CharDevice, Generation, IoctlOut, Terminal, Termios};
pub use env::{Clock, Console, ConsoleStream, Entropy, ProcessInfo, Timespec};
pub use epoll::{Epoll, EpollEvent};
pub use eventfd::{eventfd, EventFd};
pub use fdtable::{
    FdTable, FsContext, AT_FDCWD, DEFAULT_FD_LIMIT, FD_CLOEXEC, F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD,
    F_GETFL, F_SETFD, F_SETFL,
};
pub use file::{OpenFile, StdStream};
pub use inode::{DirEntry, FileSystem, Inode, NewNode, NewOwner};
pub use pipe::pipe;
pub use procfs::ProcFs;
pub use socket::{SockAddr, Socket, UnixAddr};
pub use tmpfs::TmpFs;
pub use types::*;
pub use vfs::{Location, Mount, Vfs};
