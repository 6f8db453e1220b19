//! The one process Skiff runs: its file-system context, address space, identity,
//! resource limits, signal dispositions, process-wide pending signals and its threads.
//!
//! Shared by all threads: every field sits behind a lock or is atomic. Lock order:
//! `aspace` may be taken while holding nothing else that a page fault could need; never
//! touch application memory while holding `aspace` (a fault would need it again).
//! `sigactions`, `shared_pending` and `threads` are interrupt-safe locks, because timer
//! expiry posts signals from interrupt context.

use crate::signal::state::PendingSignals;
use crate::thread::Task;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use skiff_block::lock::SleepLock;
use skiff_fs::FsContext;
use skiff_sched::irq::IrqMutex;
use skiff_sched::Thread;
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
    /// A sleeping lock: faults on file mappings read files, which may wait for a disk.
    pub aspace: SleepLock<AddressSpace>,
    /// Guest path of the executable, for `/proc/self/exe`.
    pub exe_path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    pub rlimits: Mutex<[(u64, u64); RLIM_NLIMITS]>,
    pub sigactions: IrqMutex<[SigAction; 64]>,
    /// Signals sent to the process as a whole (any thread not blocking them takes them).
    pub shared_pending: IrqMutex<PendingSignals>,
    /// `shared_pending`'s set, readable without its lock.
    pub shared_pending_bits: AtomicU64,
    /// Hostname set by `sethostname` (`uname` reports it).
    pub hostname: Mutex<Vec<u8>>,
    /// Live threads by thread ID.
    pub threads: IrqMutex<BTreeMap<u32, Arc<Thread>>>,
    next_tid: AtomicU32,
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
    /// A process with no threads yet (`exec` adds the main thread).
    pub fn new(
        fs: Arc<FsContext>,
        aspace: AddressSpace,
        exe_path: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
    ) -> Process {
        Process {
            fs,
            aspace: SleepLock::new(aspace),
            exe_path,
            argv,
            envp,
            rlimits: Mutex::new(default_rlimits()),
            sigactions: IrqMutex::new([SigAction::default(); 64]),
            shared_pending: IrqMutex::new(PendingSignals::new()),
            shared_pending_bits: AtomicU64::new(0),
            hostname: Mutex::new(b"skiff".to_vec()),
            threads: IrqMutex::new(BTreeMap::new()),
            next_tid: AtomicU32::new(PID),
        }
    }

    /// A fresh thread ID (the first is the PID: the main thread's ID equals it).
    pub fn allocate_tid(&self) -> u32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// The live thread with this ID.
    pub fn thread(&self, tid: u32) -> Option<Arc<Thread>> {
        self.threads.lock().get(&tid).cloned()
    }

    pub fn thread_count(&self) -> usize {
        self.threads.lock().len()
    }

    /// The disposition of `sig` (1..=64).
    pub fn sigaction(&self, sig: usize) -> SigAction {
        self.sigactions.lock()[sig - 1]
    }
}

/// The running thread.
pub fn current_thread() -> Arc<Thread> {
    skiff_sched::current()
}

/// The syscall-layer state of `thread` (every application thread has one).
pub fn task_of(thread: &Thread) -> &Task {
    thread
        .data::<Task>()
        .expect("an application thread without its task state")
}
