//! The periodic memory report (`skiff.memreport=SECS`, the CLI's `--mem-report`): a
//! kernel thread that sends the guest's memory use to the host every SECS seconds, so
//! a long-running service can be watched for leaks from outside.

use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::layout::PAGE_SIZE;
use skiff_arch::time;
use skiff_bootproto::{cmdline, GuestTag, MemoryReport};
use skiff_console as console;
use skiff_mm::frames;

/// The longest interval the option takes: an hour.
const MAX_INTERVAL_S: u64 = 3600;

static INTERVAL_NS: AtomicU64 = AtomicU64::new(0);
/// Nothing wakes it: the thread only sleeps until its next deadline.
static NEVER: skiff_sched::WaitQueue = skiff_sched::WaitQueue::new();

/// Start the reporter if the command line asks for one.
pub fn start(cmd: &str) {
    let Some(value) = cmdline::get(cmd, cmdline::MEMORY_REPORT) else {
        return;
    };
    let secs = match value.parse::<u64>() {
        Ok(s) if (1..=MAX_INTERVAL_S).contains(&s) => s,
        _ => {
            console::warn!(
                "{}={value}: not a number of seconds from 1 to {MAX_INTERVAL_S}; no memory reports",
                cmdline::MEMORY_REPORT
            );
            return;
        }
    };
    INTERVAL_NS.store(secs * 1_000_000_000, Ordering::Relaxed);
    if skiff_sched::spawn_kernel(reporter_thread, 0).is_err() {
        console::warn!("no memory for the memory reporter thread; no memory reports");
    }
}

fn reporter_thread(_: u64) -> ! {
    let interval = INTERVAL_NS.load(Ordering::Relaxed);
    let mut next = time::monotonic_ns() + interval;
    loop {
        // Only the deadline ends this wait.
        let _ = NEVER.wait_until(Some(next), false, || time::monotonic_ns() >= next);
        console::send(GuestTag::Memory, &measure().encode());
        next += interval;
    }
}

fn measure() -> MemoryReport {
    let frames = frames::stats();
    let (heap_size, heap_allocated) = crate::heap_usage();
    MemoryReport {
        total: frames.total_frames * PAGE_SIZE,
        in_use: (frames.total_frames - frames.free_frames) * PAGE_SIZE,
        heap_size,
        heap_allocated,
    }
}
