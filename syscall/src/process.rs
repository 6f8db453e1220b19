//! Processes: each one's file-system context, address space, identity, resource
//! limits, signal dispositions, process-wide pending signals, timers and threads, and
//! the table of all of them (the zombies among them wait there for their parent).
//!
//! The program Skiff boots is PID 1, like init in a container: when it ends, the
//! machine powers off, whatever else runs. `fork` adds processes with their own copy
//! of the application half of the address space (see `fork.rs`).
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
use spin::Mutex;

/// The process ID of the program Skiff boots (init, in a container's terms).
pub const INIT_PID: u32 = 1;

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
    pub pid: u32,
    /// The parent's PID (0 for init); init adopts the children of a process that ends.
    parent: AtomicU32,
    /// Process group ID (`setpgid`), and session ID (`setsid`).
    pgid: AtomicU32,
    sid: AtomicU32,
    /// The page-table root of the process's application half.
    pub page_root: u64,
    pub fs: Arc<FsContext>,
    /// A sleeping lock: faults on file mappings read files, which may wait for a disk.
    pub aspace: SleepLock<AddressSpace>,
    /// The program it runs (`execve` replaces it).
    image: Mutex<Arc<ProgramImage>>,
    /// Set by `execve`: a `vfork` parent waits for this or the child's end.
    execed: core::sync::atomic::AtomicBool,
    /// While `execve` runs in a multi-threaded process: the thread that survives it
    /// (the others leave at their next return towards the application).
    exec_survivor: AtomicU32,
    pub rlimits: Mutex<[(u64, u64); RLIM_NLIMITS]>,
    pub sigactions: IrqMutex<[SigAction; 64]>,
    /// Signals sent to the process as a whole (any thread not blocking them takes them).
    pub shared_pending: IrqMutex<PendingSignals>,
    /// `shared_pending`'s set, readable without its lock.
    pub shared_pending_bits: AtomicU64,
    /// Hostname set by `sethostname` (`uname` reports it): one for all processes, as
    /// they share a UTS namespace.
    pub hostname: Arc<Mutex<Vec<u8>>>,
    /// Live threads by thread ID.
    pub threads: IrqMutex<BTreeMap<u32, Arc<Thread>>>,
    /// `alarm`, `setitimer` and POSIX timers (not inherited across `fork`).
    pub timers: IrqMutex<Vec<Option<crate::sys_timer::Timer>>>,
    /// Set when the process has ended: its wait status. Until its parent collects it,
    /// it stays in the process table (a zombie).
    exit_status: IrqMutex<Option<i32>>,
    /// `exit_status` is set (readable without its lock).
    ending: core::sync::atomic::AtomicBool,
    /// Set once the process has ended and freed what it held: `wait4` may report it.
    ended: core::sync::atomic::AtomicBool,
    /// The signal the parent gets when this process ends (`SIGCHLD` for `fork`).
    pub exit_signal: u8,
}

/// Every process, live or zombie, by PID. Interrupt-safe: timer expiry looks up the
/// process it signals.
static PROCESSES: IrqMutex<BTreeMap<u32, Arc<Process>>> = IrqMutex::new(BTreeMap::new());

/// The next thread ID. One sequence for all processes: a process's ID is its main
/// thread's ID, so thread and process IDs never collide.
static NEXT_TID: AtomicU32 = AtomicU32::new(INIT_PID);

/// Parents waiting in `wait4`/`waitid`: woken whenever a child ends.
pub static CHILD_EVENTS: skiff_sched::WaitQueue = skiff_sched::WaitQueue::new();

/// Add a process to the table (`exec::start` for init, `fork` for the rest).
pub fn install(p: Process) -> Arc<Process> {
    let p = Arc::new(p);
    PROCESSES.lock().insert(p.pid, p.clone());
    p
}

/// The process with this PID (zombies included).
pub fn by_pid(pid: u32) -> Option<Arc<Process>> {
    PROCESSES.lock().get(&pid).cloned()
}

/// Every process (zombies included), in PID order.
pub fn all() -> Vec<Arc<Process>> {
    PROCESSES.lock().values().cloned().collect()
}

/// Drop a process from the table (its parent collected it, or nobody will).
pub fn remove(pid: u32) {
    let gone = PROCESSES.lock().remove(&pid);
    drop(gone);
}

/// The process of the running thread. Only called in a system call or a fault of an
/// application thread, which always has one.
pub fn current() -> Arc<Process> {
    try_current().expect("a process request from a thread without a process")
}

/// The process of the running thread, if it is an application thread (not in boot code
/// or a kernel thread).
pub fn try_current() -> Option<Arc<Process>> {
    let thread = skiff_sched::current();
    thread.data::<Task>().map(|t| t.process.clone())
}

/// The live thread with this ID, in whichever process.
pub fn thread_anywhere(tid: u32) -> Option<Arc<Thread>> {
    PROCESSES
        .lock()
        .values()
        .find_map(|p| p.threads.lock().get(&tid).cloned())
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

/// A fresh thread ID (also the PID of a process whose main thread gets it).
pub fn allocate_tid() -> u32 {
    NEXT_TID.fetch_add(1, Ordering::Relaxed)
}

/// The program a process runs: what `/proc/self/exe`, `cmdline` and `environ` show.
#[derive(Debug, Clone, Default)]
pub struct ProgramImage {
    /// Guest path of the executable.
    pub exe_path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
}

impl ProgramImage {
    /// The executable's file name (its path's last component).
    pub fn file_name(&self) -> &[u8] {
        self.exe_path
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or(&self.exe_path)
    }
}

/// What a new process starts with besides its address space and files.
pub struct Identity {
    pub pid: u32,
    pub parent: u32,
    pub pgid: u32,
    pub sid: u32,
    pub image: Arc<ProgramImage>,
    pub hostname: Arc<Mutex<Vec<u8>>>,
    pub exit_signal: u8,
}

impl Identity {
    /// Init's identity: PID 1, leader of its own group and session.
    pub fn init(exe_path: Vec<u8>, argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>) -> Identity {
        Identity {
            pid: INIT_PID,
            parent: 0,
            pgid: INIT_PID,
            sid: INIT_PID,
            image: Arc::new(ProgramImage {
                exe_path,
                argv,
                envp,
            }),
            hostname: Arc::new(Mutex::new(b"skiff".to_vec())),
            exit_signal: 0,
        }
    }
}

impl Process {
    /// A process with no threads yet (`exec` or `fork` adds the first).
    pub fn new(id: Identity, page_root: u64, fs: Arc<FsContext>, aspace: AddressSpace) -> Process {
        Process {
            pid: id.pid,
            parent: AtomicU32::new(id.parent),
            pgid: AtomicU32::new(id.pgid),
            sid: AtomicU32::new(id.sid),
            page_root,
            fs,
            aspace: SleepLock::new(aspace),
            image: Mutex::new(id.image),
            execed: core::sync::atomic::AtomicBool::new(false),
            exec_survivor: AtomicU32::new(0),
            rlimits: Mutex::new(default_rlimits()),
            sigactions: IrqMutex::new([SigAction::default(); 64]),
            shared_pending: IrqMutex::new(PendingSignals::new()),
            shared_pending_bits: AtomicU64::new(0),
            hostname: id.hostname,
            threads: IrqMutex::new(BTreeMap::new()),
            timers: IrqMutex::new(Vec::new()),
            exit_status: IrqMutex::new(None),
            ending: core::sync::atomic::AtomicBool::new(false),
            ended: core::sync::atomic::AtomicBool::new(false),
            exit_signal: id.exit_signal,
        }
    }

    /// The program the process runs.
    pub fn image(&self) -> Arc<ProgramImage> {
        self.image.lock().clone()
    }

    /// `execve` replaced the program.
    pub fn set_image(&self, image: ProgramImage) {
        *self.image.lock() = Arc::new(image);
        self.execed.store(true, Ordering::Release);
    }

    /// Whether the process has called `execve` successfully (a `vfork` parent resumes).
    pub fn has_execed(&self) -> bool {
        self.execed.load(Ordering::Acquire)
    }

    /// The thread `execve` keeps, while one runs in this process (0: none).
    pub fn exec_survivor(&self) -> u32 {
        self.exec_survivor.load(Ordering::Acquire)
    }

    pub fn set_exec_survivor(&self, tid: u32) {
        self.exec_survivor.store(tid, Ordering::Release)
    }

    pub fn is_init(&self) -> bool {
        self.pid == INIT_PID
    }

    pub fn parent(&self) -> u32 {
        self.parent.load(Ordering::Relaxed)
    }

    pub fn set_parent(&self, pid: u32) {
        self.parent.store(pid, Ordering::Relaxed)
    }

    pub fn pgid(&self) -> u32 {
        self.pgid.load(Ordering::Relaxed)
    }

    pub fn set_pgid(&self, pgid: u32) {
        self.pgid.store(pgid, Ordering::Relaxed)
    }

    pub fn sid(&self) -> u32 {
        self.sid.load(Ordering::Relaxed)
    }

    pub fn set_sid(&self, sid: u32) {
        self.sid.store(sid, Ordering::Relaxed)
    }

    /// The wait status, once the process has ended.
    pub fn exit_status(&self) -> Option<i32> {
        *self.exit_status.lock()
    }

    /// Whether the process has ended and released what it held (a zombie, if still in
    /// the table).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub fn mark_ended(&self) {
        self.ended.store(true, Ordering::Release)
    }

    /// Record how the process ended (the first report wins).
    pub fn set_exit_status(&self, status: i32) -> bool {
        let mut s = self.exit_status.lock();
        if s.is_some() {
            return false;
        }
        *s = Some(status);
        self.ending.store(true, Ordering::Release);
        true
    }

    /// Whether the thread `tid` must leave: its process (not init) is ending, or
    /// another thread runs `execve`. Lock-free, for the scheduler's signal check, so
    /// that blocked threads are woken to leave.
    pub fn must_leave(&self, tid: u32) -> bool {
        let survivor = self.exec_survivor();
        (self.ending.load(Ordering::Acquire) && !self.is_init())
            || (survivor != 0 && survivor != tid)
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
