//! The environment the file system layer needs from the kernel: time, randomness, the
//! application's console and facts about the running program. The kernel passes real
//! implementations; host tests pass fakes.

use alloc::string::String;
use alloc::vec::Vec;
use skiff_errno::KResult;

/// A point in time or a duration, as Linux `struct timespec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

impl Timespec {
    pub const fn new(sec: i64, nsec: i64) -> Timespec {
        Timespec { sec, nsec }
    }
}

/// Wall-clock time source for timestamps.
pub trait Clock: Send + Sync {
    fn realtime(&self) -> Timespec;
}

/// Random bytes for `/dev/random` and `/dev/urandom`.
pub trait Entropy: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

/// Which host stream console output goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleStream {
    Stdout,
    Stderr,
}

/// The app's console. Reads block until data or EOF (returns Ok(0) at EOF).
pub trait Console: Send + Sync {
    fn write(&self, stream: ConsoleStream, data: &[u8]) -> KResult<usize>;
    /// `EAGAIN` when `nonblock` and no input is buffered.
    fn read(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize>;
    /// Terminal size as (rows, cols).
    fn window_size(&self) -> (u16, u16);
    /// Whether a read would return at once (input buffered, or end of file).
    fn read_ready(&self) -> bool;
}

/// What procfs needs to know about the running program.
pub trait ProcessInfo: Send + Sync {
    fn pid(&self) -> u32;
    fn exe_path(&self) -> Vec<u8>;
    /// NUL-separated, as /proc/self/cmdline.
    fn cmdline(&self) -> Vec<u8>;
    fn environ(&self) -> Vec<u8>;
    /// /proc/self/maps text.
    fn maps(&self) -> String;
    /// /proc/meminfo text.
    fn meminfo(&self) -> String;
    /// /proc/cpuinfo text.
    fn cpuinfo(&self) -> String;
    /// (time since boot, idle time since boot).
    fn uptime(&self) -> (Timespec, Timespec);
    /// /proc/self/status text.
    fn status(&self) -> String;
    /// The calling process's parent, process group and session.
    fn relations(&self) -> (u32, u32, u32) {
        (0, self.pid(), self.pid())
    }
    /// The calling process's descriptors and working directory (`/proc/self/fd`,
    /// `/proc/self/cwd`); `None` falls back to the context given to
    /// [`crate::procfs::ProcFs::attach_process`].
    fn files(&self) -> Option<alloc::sync::Arc<crate::FsContext>> {
        None
    }
}
