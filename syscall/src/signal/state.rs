//! Pending signals and what a signal does by default.
//!
//! This module owns the bookkeeping between a signal being sent and being taken for
//! delivery: signal sets ([`SigSet`]), the pending queue of one thread or of the whole
//! process ([`PendingSignals`]), the order Linux delivers them in
//! ([`next_deliverable`]), and the default actions of signal(7) ([`default_action`]).
//! It does not decide dispositions or touch threads; the caller holds the locks and
//! applies the result.
//!
//! A [`PendingSignals`] never allocates after construction, because signals are posted
//! from interrupt context (timers, faults). Its capacity follows Linux's rules: a
//! standard signal (1..=31) is pending at most once, later copies being dropped; a
//! real-time signal (32..=64) queues one instance per send, FIFO, up to a fixed number
//! of instances shared by all real-time signals.

use super::frame::{SigInfo, SI_KERNEL, SI_USER};

/// A set of signals: bit `sig - 1` stands for signal `sig` (Linux's `sigset_t` on
/// x86_64, 64 signals).
pub type SigSet = u64;

/// Number of signals.
pub const NSIG: usize = 64;
/// First real-time signal (the kernel's; glibc reserves 32 and 33 for itself).
pub const SIGRTMIN: usize = 32;

pub const SIGHUP: usize = 1;
pub const SIGINT: usize = 2;
pub const SIGQUIT: usize = 3;
pub const SIGILL: usize = 4;
pub const SIGTRAP: usize = 5;
pub const SIGABRT: usize = 6;
pub const SIGBUS: usize = 7;
pub const SIGFPE: usize = 8;
pub const SIGKILL: usize = 9;
pub const SIGUSR1: usize = 10;
pub const SIGSEGV: usize = 11;
pub const SIGUSR2: usize = 12;
pub const SIGPIPE: usize = 13;
pub const SIGALRM: usize = 14;
pub const SIGTERM: usize = 15;
pub const SIGSTKFLT: usize = 16;
pub const SIGCHLD: usize = 17;
pub const SIGCONT: usize = 18;
pub const SIGSTOP: usize = 19;
pub const SIGTSTP: usize = 20;
pub const SIGTTIN: usize = 21;
pub const SIGTTOU: usize = 22;
pub const SIGURG: usize = 23;
pub const SIGXCPU: usize = 24;
pub const SIGXFSZ: usize = 25;
pub const SIGVTALRM: usize = 26;
pub const SIGPROF: usize = 27;
pub const SIGWINCH: usize = 28;
pub const SIGIO: usize = 29;
pub const SIGPWR: usize = 30;
pub const SIGSYS: usize = 31;

/// Whether `sig` names a signal (1..=64).
pub const fn is_valid(sig: usize) -> bool {
    sig >= 1 && sig <= NSIG
}

/// The set holding just `sig`; empty for a number that names no signal, so an invalid
/// number never matches anything.
pub const fn sig_bit(sig: usize) -> SigSet {
    if is_valid(sig) {
        1 << (sig - 1)
    } else {
        0
    }
}

/// Signals that can be neither blocked, caught nor ignored.
pub const UNBLOCKABLE: SigSet = sig_bit(SIGKILL) | sig_bit(SIGSTOP);

/// Signals an instruction can raise, which Linux delivers before others so the frame's
/// `rip` still points at the faulting instruction (`SYNCHRONOUS_MASK`, which includes
/// SIGSYS for seccomp).
pub const SYNCHRONOUS: SigSet = sig_bit(SIGSEGV)
    | sig_bit(SIGBUS)
    | sig_bit(SIGILL)
    | sig_bit(SIGTRAP)
    | sig_bit(SIGFPE)
    | sig_bit(SIGSYS);

/// Real-time signal instances one [`PendingSignals`] can hold, across all real-time
/// signals. Linux's limit is `RLIMIT_SIGPENDING` per user; a fixed array keeps posting
/// allocation-free.
pub const RT_QUEUE_LEN: usize = 32;

/// Number of standard (non-real-time) signals.
const STANDARD: usize = SIGRTMIN - 1;

/// The lowest signal in a non-empty set.
fn lowest(set: SigSet) -> usize {
    set.trailing_zeros() as usize + 1
}

/// Signals sent to one thread, or to the process as a whole, and not yet delivered.
#[derive(Clone, Debug)]
pub struct PendingSignals {
    /// Which signals are pending. A real-time signal can be pending with no queued
    /// instance: it was sent while the queue was full by a sender allowed to lose its
    /// siginfo (see `post`).
    set: SigSet,
    /// The siginfo of each pending standard signal (index `sig - 1`), valid while its
    /// bit is set.
    standard: [SigInfo; STANDARD],
    /// Queued real-time instances, oldest first; the first `rt_len` are live.
    rt: [SigInfo; RT_QUEUE_LEN],
    rt_len: usize,
}

impl Default for PendingSignals {
    fn default() -> Self {
        Self::new()
    }
}

impl PendingSignals {
    pub const fn new() -> Self {
        PendingSignals {
            set: 0,
            standard: [SigInfo::EMPTY; STANDARD],
            rt: [SigInfo::EMPTY; RT_QUEUE_LEN],
            rt_len: 0,
        }
    }

    /// Make `info.signo` pending with `info`, as Linux's `__send_signal_locked`:
    /// - a standard signal already pending is not queued again (the first siginfo
    ///   stays), and that still counts as sent;
    /// - a real-time signal queues an instance; when the queue is full, a `kill` or a
    ///   kernel-internal send still makes the signal pending, without its siginfo
    ///   (delivered as `SI_USER` from pid 0), while anything else (`sigqueue`, timers)
    ///   fails: `false`, which `rt_sigqueueinfo` reports as `EAGAIN`.
    ///
    /// An invalid signal number is refused (`false`).
    pub fn post(&mut self, info: SigInfo) -> bool {
        let sig = info.sig();
        let bit = sig_bit(sig);
        if bit == 0 {
            return false;
        }
        if sig < SIGRTMIN {
            if self.set & bit == 0 {
                self.standard[sig - 1] = info;
                self.set |= bit;
            }
            return true;
        }
        if self.rt_len < RT_QUEUE_LEN {
            self.rt[self.rt_len] = info;
            self.rt_len += 1;
        } else if info.code != SI_USER && info.code != SI_KERNEL {
            return false;
        }
        self.set |= bit;
        true
    }

    /// The pending signals.
    pub fn set(&self) -> SigSet {
        self.set
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.set == 0
    }

    /// Whether `sig` is pending.
    pub fn contains(&self, sig: usize) -> bool {
        self.set & sig_bit(sig) != 0
    }

    /// Whether a signal outside `blocked` is pending (so the thread must be woken or
    /// interrupted).
    pub fn has_deliverable(&self, blocked: SigSet) -> bool {
        self.set & !blocked != 0
    }

    /// Take one instance of `sig` (Linux's `collect_signal`). A real-time signal stays
    /// pending while more instances are queued; one pending without a queued instance
    /// comes out as `SI_USER` from pid 0, as on Linux.
    pub fn take(&mut self, sig: usize) -> Option<SigInfo> {
        let bit = sig_bit(sig);
        if self.set & bit == 0 {
            return None;
        }
        if sig < SIGRTMIN {
            self.set &= !bit;
            return Some(self.standard[sig - 1]);
        }
        let queued = &self.rt[..self.rt_len];
        let Some(pos) = queued.iter().position(|i| i.sig() == sig) else {
            self.set &= !bit;
            return Some(SigInfo::user(sig as i32, SI_USER, 0, 0));
        };
        let info = queued[pos];
        let more = queued[pos + 1..].iter().any(|i| i.sig() == sig);
        self.rt.copy_within(pos + 1..self.rt_len, pos);
        self.rt_len -= 1;
        if !more {
            self.set &= !bit;
        }
        Some(info)
    }

    /// Take the next signal outside `blocked` in Linux's order (`next_signal`):
    /// synchronous signals first, then the lowest number. Also what
    /// `rt_sigtimedwait` uses, with `blocked` = the complement of the awaited set.
    pub fn take_next(&mut self, blocked: SigSet) -> Option<SigInfo> {
        let ready = self.set & !blocked;
        if ready == 0 {
            return None;
        }
        let pick = match ready & SYNCHRONOUS {
            0 => ready,
            sync => sync,
        };
        self.take(lowest(pick))
    }

    /// Take the lowest pending synchronous signal outside `blocked` that the kernel
    /// raised (a fault, not a `kill` of SIGSEGV), like Linux's
    /// `dequeue_synchronous_signal`.
    fn take_fault(&mut self, blocked: SigSet) -> Option<SigInfo> {
        let mut sync = self.set & !blocked & SYNCHRONOUS;
        while sync != 0 {
            let sig = lowest(sync);
            // Synchronous signals are all standard, so their siginfo is in `standard`.
            if self.standard[sig - 1].is_from_kernel() {
                return self.take(sig);
            }
            sync &= !sig_bit(sig);
        }
        None
    }

    /// Drop every pending instance of `sig` (its disposition became SIG_IGN, or
    /// SIGCONT cancelled a stop).
    pub fn discard(&mut self, sig: usize) {
        self.discard_set(sig_bit(sig));
    }

    /// Drop every pending instance of the signals in `set`.
    pub fn discard_set(&mut self, set: SigSet) {
        if self.set & set == 0 {
            return;
        }
        self.set &= !set;
        let mut kept = 0;
        for i in 0..self.rt_len {
            if sig_bit(self.rt[i].sig()) & set == 0 {
                self.rt[kept] = self.rt[i];
                kept += 1;
            }
        }
        self.rt_len = kept;
    }
}

/// The next signal to deliver to a thread whose mask is `blocked`, taken from its own
/// queue or the process's, in Linux's order (`get_signal`): a fault the kernel raised
/// in this thread first, then the thread's signals, then the process's, each in
/// [`PendingSignals::take_next`] order. SIGKILL and SIGSTOP are never blocked, whatever
/// `blocked` says.
pub fn next_deliverable(
    thread: &mut PendingSignals,
    process: &mut PendingSignals,
    blocked: SigSet,
) -> Option<SigInfo> {
    let blocked = blocked & !UNBLOCKABLE;
    thread
        .take_fault(blocked)
        .or_else(|| thread.take_next(blocked))
        .or_else(|| process.take_next(blocked))
}

/// What a signal does when its disposition is SIG_DFL (signal(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process.
    Terminate,
    /// End the process and dump core (reported differently; Skiff writes no core).
    CoreDump,
    /// Nothing happens.
    Ignore,
    /// Stop the process until SIGCONT.
    Stop,
    /// Resume a stopped process (otherwise nothing happens).
    Continue,
}

/// The default action of `sig` per signal(7). Real-time signals, and numbers that name
/// no signal, terminate.
pub fn default_action(sig: usize) -> DefaultAction {
    use DefaultAction::*;
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => Ignore,
        SIGCONT => Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => CoreDump,
        _ => Terminate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::frame::{SEGV_MAPERR, SI_QUEUE, SI_TIMER, SI_TKILL};

    fn kill(sig: usize) -> SigInfo {
        SigInfo::user(sig as i32, SI_USER, 100, 0)
    }

    fn queued(sig: usize, value: u64) -> SigInfo {
        SigInfo::queue(sig as i32, 100, 0, value)
    }

    #[test]
    fn sig_bits() {
        assert_eq!(sig_bit(1), 1);
        assert_eq!(sig_bit(64), 1 << 63);
        assert_eq!(sig_bit(0), 0);
        assert_eq!(sig_bit(65), 0);
        assert_eq!(sig_bit(usize::MAX), 0);
        assert_eq!(UNBLOCKABLE, (1 << 8) | (1 << 18));
        assert_eq!(SYNCHRONOUS.count_ones(), 6);
        assert_ne!(SYNCHRONOUS & sig_bit(SIGSYS), 0);
        assert!(is_valid(64) && !is_valid(0) && !is_valid(65));
    }

    #[test]
    fn new_is_empty() {
        let p = PendingSignals::new();
        assert!(p.is_empty());
        assert_eq!(p.set(), 0);
        assert!(!p.has_deliverable(0));
        assert!(!PendingSignals::default().contains(SIGINT));
    }

    #[test]
    fn standard_signals_coalesce_keeping_the_first_siginfo() {
        let mut p = PendingSignals::new();
        assert!(p.post(SigInfo::user(SIGUSR1 as i32, SI_USER, 1, 0)));
        assert!(p.post(SigInfo::user(SIGUSR1 as i32, SI_TKILL, 2, 0)));
        assert_eq!(p.set(), sig_bit(SIGUSR1));
        let got = p.take(SIGUSR1).unwrap();
        assert_eq!((got.pid(), got.code), (1, SI_USER));
        assert_eq!(p.take(SIGUSR1), None);
        assert!(p.is_empty());
        // Once taken, the next send is a new instance with its own siginfo.
        assert!(p.post(SigInfo::user(SIGUSR1 as i32, SI_TKILL, 3, 0)));
        assert_eq!(p.take(SIGUSR1).unwrap().pid(), 3);
    }

    #[test]
    fn realtime_signals_queue_fifo_and_stay_pending_until_drained() {
        let mut p = PendingSignals::new();
        for v in 0..3 {
            assert!(p.post(queued(40, v)));
        }
        assert!(p.post(queued(35, 9)));
        assert_eq!(p.set(), sig_bit(40) | sig_bit(35));
        assert_eq!(p.take(40).unwrap().value(), 0);
        assert!(p.contains(40));
        assert_eq!(p.take(40).unwrap().value(), 1);
        assert_eq!(p.take(40).unwrap().value(), 2);
        assert!(!p.contains(40));
        assert_eq!(p.take(40), None);
        assert_eq!(p.take(35).unwrap().value(), 9);
        assert!(p.is_empty());
    }

    #[test]
    fn realtime_queue_is_shared_and_bounded() {
        let mut p = PendingSignals::new();
        for i in 0..RT_QUEUE_LEN {
            assert!(p.post(queued(32 + i % 9, i as u64)));
        }
        // Full: sigqueue and timers fail (EAGAIN for the caller)...
        assert!(!p.post(queued(50, 0)));
        assert!(!p.post(SigInfo::timer(50, 1, 0, 0)));
        assert!(!p.contains(50));
        // ...but kill() and the kernel still get the signal through, info lost.
        assert!(p.post(kill(50)));
        assert!(p.post(SigInfo::kernel(51)));
        assert!(p.contains(50) && p.contains(51));
        let lost = p.take(50).unwrap();
        assert_eq!(
            (lost.signo, lost.code, lost.pid(), lost.uid()),
            (50, SI_USER, 0, 0)
        );
        assert!(!p.contains(50));
        // Standard signals never need the queue.
        assert!(p.post(kill(SIGTERM)));
        // Taking one frees a slot.
        assert!(p.take(32).is_some());
        assert!(p.post(queued(50, 7)));
        assert_eq!(p.take(50).unwrap().value(), 7);
    }

    #[test]
    fn realtime_pending_without_info_clears_with_its_last_instance() {
        // Linux has one bit per signal: once the queued instances are gone, so is the
        // info-less one that was folded into the bit.
        let mut p = PendingSignals::new();
        for _ in 0..RT_QUEUE_LEN {
            assert!(p.post(queued(33, 1)));
        }
        assert!(p.post(kill(33)));
        for _ in 0..RT_QUEUE_LEN {
            assert_eq!(p.take(33).unwrap().code, SI_QUEUE);
        }
        assert_eq!(p.take(33), None);
    }

    #[test]
    fn invalid_signals_are_refused() {
        let mut p = PendingSignals::new();
        assert!(!p.post(kill(0)));
        assert!(!p.post(kill(65)));
        assert!(!p.post(SigInfo::EMPTY));
        assert!(p.is_empty());
        assert_eq!(p.take(0), None);
        assert_eq!(p.take(99), None);
        p.discard(0);
        assert!(p.is_empty());
    }

    #[test]
    fn take_next_prefers_synchronous_then_lowest() {
        let mut p = PendingSignals::new();
        for sig in [SIGTERM, SIGINT, 40, SIGSEGV, SIGBUS] {
            assert!(p.post(kill(sig)));
        }
        let order: Vec<usize> = core::iter::from_fn(|| p.take_next(0).map(|i| i.sig())).collect();
        assert_eq!(order, [SIGBUS, SIGSEGV, SIGINT, SIGTERM, 40]);
    }

    #[test]
    fn take_next_skips_blocked() {
        let mut p = PendingSignals::new();
        assert!(p.post(kill(SIGSEGV)));
        assert!(p.post(kill(SIGUSR2)));
        assert!(p.post(queued(33, 0)));
        let blocked = sig_bit(SIGSEGV) | sig_bit(SIGUSR2);
        assert!(p.has_deliverable(blocked));
        assert_eq!(p.take_next(blocked).unwrap().signo, 33);
        assert_eq!(p.take_next(blocked), None);
        assert!(!p.has_deliverable(blocked));
        assert_eq!(p.set(), blocked);
        // rt_sigtimedwait style: wait for just SIGUSR2.
        assert_eq!(p.take_next(!sig_bit(SIGUSR2)).unwrap().sig(), SIGUSR2);
    }

    #[test]
    fn discard_drops_every_instance_and_keeps_the_others_in_order() {
        let mut p = PendingSignals::new();
        for (sig, v) in [(40, 1), (41, 2), (40, 3), (41, 4), (42, 5)] {
            assert!(p.post(queued(sig, v)));
        }
        assert!(p.post(kill(SIGHUP)));
        p.discard(40);
        p.discard(SIGHUP);
        assert_eq!(p.set(), sig_bit(41) | sig_bit(42));
        assert_eq!(p.take(41).unwrap().value(), 2);
        assert_eq!(p.take(41).unwrap().value(), 4);
        assert_eq!(p.take(42).unwrap().value(), 5);
        assert!(p.is_empty());
        // Discarded slots are free again.
        for _ in 0..RT_QUEUE_LEN {
            assert!(p.post(queued(50, 0)));
        }
        p.discard_set(sig_bit(50) | sig_bit(SIGTSTP));
        assert!(p.is_empty());
        assert!(p.post(queued(51, 0)));
    }

    #[test]
    fn thread_signals_come_before_process_signals() {
        let mut t = PendingSignals::new();
        let mut p = PendingSignals::new();
        assert!(p.post(kill(SIGSEGV)));
        assert!(p.post(kill(SIGHUP)));
        assert!(t.post(kill(SIGUSR1)));
        let mut order = Vec::new();
        while let Some(i) = next_deliverable(&mut t, &mut p, 0) {
            order.push(i.sig());
        }
        assert_eq!(order, [SIGUSR1, SIGSEGV, SIGHUP]);
    }

    #[test]
    fn a_fault_comes_before_everything() {
        let mut t = PendingSignals::new();
        let mut p = PendingSignals::new();
        // SIGILL sent by kill is synchronous and lower, but the fault goes first.
        assert!(t.post(kill(SIGILL)));
        assert!(t.post(kill(SIGHUP)));
        assert!(t.post(SigInfo::fault(SIGSEGV as i32, SEGV_MAPERR, 0x10)));
        assert!(p.post(kill(SIGBUS)));
        let first = next_deliverable(&mut t, &mut p, 0).unwrap();
        assert_eq!((first.sig(), first.addr()), (SIGSEGV, 0x10));
        let rest: Vec<usize> =
            core::iter::from_fn(|| next_deliverable(&mut t, &mut p, 0).map(|i| i.sig())).collect();
        assert_eq!(rest, [SIGILL, SIGHUP, SIGBUS]);
    }

    #[test]
    fn blocked_faults_wait_and_kill_cannot_be_blocked() {
        let mut t = PendingSignals::new();
        let mut p = PendingSignals::new();
        assert!(t.post(SigInfo::fault(SIGFPE as i32, 1, 0)));
        assert!(p.post(SigInfo::kernel(SIGKILL as i32)));
        assert!(p.post(kill(SIGSTOP)));
        let all = !0;
        assert_eq!(
            next_deliverable(&mut t, &mut p, all).unwrap().sig(),
            SIGKILL
        );
        assert_eq!(
            next_deliverable(&mut t, &mut p, all).unwrap().sig(),
            SIGSTOP
        );
        assert_eq!(next_deliverable(&mut t, &mut p, all), None);
        assert!(t.contains(SIGFPE));
        assert_eq!(next_deliverable(&mut t, &mut p, 0).unwrap().sig(), SIGFPE);
    }

    #[test]
    fn timer_and_process_queues_are_independent() {
        let mut t = PendingSignals::new();
        let mut p = PendingSignals::new();
        for _ in 0..RT_QUEUE_LEN {
            assert!(p.post(SigInfo::timer(SIGRTMIN as i32, 1, 0, 0)));
        }
        assert!(!p.post(SigInfo::timer(SIGRTMIN as i32, 1, 0, 0)));
        assert!(t.post(SigInfo::timer(SIGRTMIN as i32, 2, 0, 0)));
        let first = next_deliverable(&mut t, &mut p, 0).unwrap();
        assert_eq!((first.code, first.timer_id()), (SI_TIMER, 2));
    }

    #[test]
    fn default_actions_follow_signal_7() {
        use DefaultAction::*;
        let table = [
            (SIGHUP, Terminate),
            (SIGINT, Terminate),
            (SIGQUIT, CoreDump),
            (SIGILL, CoreDump),
            (SIGTRAP, CoreDump),
            (SIGABRT, CoreDump),
            (SIGBUS, CoreDump),
            (SIGFPE, CoreDump),
            (SIGKILL, Terminate),
            (SIGUSR1, Terminate),
            (SIGSEGV, CoreDump),
            (SIGUSR2, Terminate),
            (SIGPIPE, Terminate),
            (SIGALRM, Terminate),
            (SIGTERM, Terminate),
            (SIGSTKFLT, Terminate),
            (SIGCHLD, Ignore),
            (SIGCONT, Continue),
            (SIGSTOP, Stop),
            (SIGTSTP, Stop),
            (SIGTTIN, Stop),
            (SIGTTOU, Stop),
            (SIGURG, Ignore),
            (SIGXCPU, CoreDump),
            (SIGXFSZ, CoreDump),
            (SIGVTALRM, Terminate),
            (SIGPROF, Terminate),
            (SIGWINCH, Ignore),
            (SIGIO, Terminate),
            (SIGPWR, Terminate),
            (SIGSYS, CoreDump),
        ];
        for (i, (sig, action)) in table.into_iter().enumerate() {
            assert_eq!(sig, i + 1);
            assert_eq!(default_action(sig), action, "signal {sig}");
        }
        for sig in SIGRTMIN..=NSIG {
            assert_eq!(default_action(sig), Terminate);
        }
    }
}
