//! Waiting for I/O readiness: one wait queue that every change of console, pipe or
//! descriptor state wakes, and the loop that blocking reads, writes and `poll` use.
//!
//! One queue for all files is coarse (every event wakes every I/O waiter, and each
//! re-checks its own condition; an `epoll_wait` rescans its interest list) but correct
//! and cheap at the scale of one program; per-object readiness queues replace it with
//! the networking work, when sockets bring many descriptors per waiter.

use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::time;
use skiff_errno::{Errno, KResult};
use skiff_sched::{WaitQueue, WakeReason};

static IO_EVENTS: WaitQueue = WaitQueue::new();
/// How many I/O events there have been, so a waiter can tell that one happened even
/// when the condition it checks was already true (see [`io_generation`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How long an I/O waiter sleeps before re-checking anyway. The serial receive
/// interrupt normally wakes it; the UART raises that interrupt only on a FIFO
/// transition, so this is the safety net against a lost edge.
const RECHECK_NS: u64 = 10_000_000;

/// Something a waiter may be waiting for changed (data arrived, a pipe end closed).
/// Safe in interrupt context.
pub fn io_event() {
    GENERATION.fetch_add(1, Ordering::Release);
    IO_EVENTS.wake_all();
}

/// The I/O event count: read it before trying an operation, and "an I/O event has
/// happened since" is `io_generation() != before`. For operations that wait on another
/// object than the one they report readiness for (a connect to a full AF_UNIX
/// backlog waits for the listener, not for its own socket).
pub fn io_generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Wait until `ready()` or the deadline (monotonic ns). `Ok(true)`: ready; `Ok(false)`:
/// the deadline passed; `Err(interrupted)` when a signal arrived first.
pub fn wait_io(
    deadline: Option<u64>,
    interrupted: Errno,
    mut ready: impl FnMut() -> bool,
) -> KResult<bool> {
    // Every check re-arms the serial receive interrupt first (its handler disarms it),
    // so each sleep after a wake-up can be ended by input again.
    let mut check = || {
        skiff_console::arm_input_interrupt();
        ready()
    };
    loop {
        let now = time::monotonic_ns();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(check());
        }
        let step = now.saturating_add(RECHECK_NS);
        let until = deadline.map_or(step, |d| d.min(step));
        match IO_EVENTS.wait_until(Some(until), true, &mut check) {
            Ok(()) => return Ok(true),
            Err(WakeReason::Interrupted) => return Err(interrupted),
            Err(_) => {}
        }
    }
}
