//! The one process Skiff runs: its file-system context, address space, identity,
//! resource limits, and recorded signal dispositions.
//!
//! Designed to be shared by threads (the next issue): every field sits behind a lock or
//! is atomic. Lock order: `aspace` may be taken while holding nothing else that a page
//! fault could need; never touch application memory while holding `aspace` (a fault
//! would need it again).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_fs::FsContext;
use skiff_vm::AddressSpace;
use spin::{Mutex, Once};

/// The process ID the application sees (it is the only process, like init in a
/// container).
pub const PID: u32 = 1;

/// Number of resource limits (`RLIM_NLIMITS`).
pub const RLIM_NLIMITS: usize = 16;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// A recorded `struct sigaction` (kernel layout: handler, flags, restorer, mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

pub struct Process {
    pub fs: Arc<FsContext>,
    pub aspace: Mutex<AddressSpace>,
    /// Guest path of the executable, for `/proc/self/exe`.
    pub exe_path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// `set_tid_address` pointer of the main thread.
    pub clear_child_tid: AtomicU64,
    /// `set_robust_list` head of the main thread.
    pub robust_list: AtomicU64,
    pub rlimits: Mutex<[(u64, u64); RLIM_NLIMITS]>,
    pub sigactions: Mutex<[SigAction; 64]>,
    /// Signal mask of the main thread.
    pub sigmask: AtomicU64,
    /// Hostname set by `sethostname` (`uname` reports it).
    pub hostname: Mutex<Vec<u8>>,
}

static PROCESS: Once<Process> = Once::new();

/// Install the process (once, by `exec::start`).
pub fn install(p: Process) -> &'static Process {
    PROCESS.call_once(|| p)
}

/// The running process. Only valid after `exec::start` installed it; a syscall cannot
/// arrive earlier, since no application code runs before.
pub fn current() -> &'static Process {
    PROCESS
        .get()
        .expect("a syscall arrived before the process existed")
}

/// The running process, if any (for fault handling, which can happen at boot).
pub fn try_current() -> Option<&'static Process> {
    PROCESS.get()
}

/// Linux's default limits for a process started by init.
pub fn default_rlimits() -> [(u64, u64); RLIM_NLIMITS] {
    let mut l = [(RLIM_INFINITY, RLIM_INFINITY); RLIM_NLIMITS];
    l[3] = (8 << 20, RLIM_INFINITY); // RLIMIT_STACK
    l[4] = (0, RLIM_INFINITY); // RLIMIT_CORE
    l[6] = (4096, 4096); // RLIMIT_NPROC
    l[7] = (1024, 4096); // RLIMIT_NOFILE
    l[8] = (8 << 20, 8 << 20); // RLIMIT_MEMLOCK
    l[11] = (4096, 4096); // RLIMIT_SIGPENDING
    l[12] = (819200, 819200); // RLIMIT_MSGQUEUE
    l[13] = (0, 0); // RLIMIT_NICE
    l[14] = (0, 0); // RLIMIT_RTPRIO
    l
}

impl Process {
    pub fn sigmask(&self) -> u64 {
        self.sigmask.load(Ordering::Relaxed)
    }
}
