//! timerfd and signalfd semantics against a fake clock, fake scheduler timers and a
//! fake signal queue: counts, intervals, absolute times, clock changes, masks,
//! records and readiness.

use skiff_errno::Errno;
use skiff_fs::epoll::EPOLLIN;
use skiff_fs::signalfd::{self, SignalFd, SignalSource, SFD_NONBLOCK};
use skiff_fs::timerfd::{self, TimerFd, TimerHost, TimerSpec, TFD_NONBLOCK};
use skiff_fs::{OpenFile, OpenFlags};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// Clocks that move only when told, and scheduler timers that fire when the test
/// advances time past them.
struct FakeTimers {
    mono: AtomicU64,
    /// Wall clock minus monotonic clock.
    wall_offset: AtomicI64,
    next_id: AtomicU64,
    armed: Mutex<Vec<(u64, u64, u64)>>,
}

impl FakeTimers {
    fn new() -> Arc<FakeTimers> {
        Arc::new(FakeTimers {
            mono: AtomicU64::new(1000 * SEC),
            wall_offset: AtomicI64::new(1_700_000_000 * SEC as i64),
            next_id: AtomicU64::new(1),
            armed: Mutex::new(Vec::new()),
        })
    }

    /// Moves the clocks on by `ns`, firing each scheduler timer that comes due, in
    /// deadline order, as the interrupt would.
    fn advance(&self, ns: u64) {
        let target = self.mono.load(Ordering::SeqCst) + ns;
        loop {
            let due = {
                let mut armed = self.armed.lock().unwrap();
                armed.sort_by_key(|t| t.1);
                match armed.first() {
                    Some(&t) if t.1 <= target => Some(armed.remove(0)),
                    _ => None,
                }
            };
            let Some((_, deadline, cookie)) = due else {
                break;
            };
            self.mono.store(deadline, Ordering::SeqCst);
            timerfd::expire(cookie);
        }
        self.mono.store(target, Ordering::SeqCst);
    }

    /// Moves the clocks on by `ns` without firing anything: the timer interrupt is late
    /// (a busy host under emulation).
    fn advance_late(&self, ns: u64) {
        self.mono.fetch_add(ns, Ordering::SeqCst);
    }

    fn armed_count(&self) -> usize {
        self.armed.lock().unwrap().len()
    }

    /// Sets the wall clock by `delta` ns.
    fn jump_wall(&self, delta: i64) {
        self.wall_offset.fetch_add(delta, Ordering::SeqCst);
    }
}

impl TimerHost for FakeTimers {
    fn monotonic_ns(&self) -> u64 {
        self.mono.load(Ordering::SeqCst)
    }
    fn realtime_ns(&self) -> i64 {
        self.mono.load(Ordering::SeqCst) as i64 + self.wall_offset.load(Ordering::SeqCst)
    }
    fn arm(&self, deadline: u64, cookie: u64) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.armed.lock().unwrap().push((id, deadline, cookie));
        id
    }
    fn cancel(&self, id: u64) {
        self.armed.lock().unwrap().retain(|t| t.0 != id);
    }
}

fn timer(host: &Arc<FakeTimers>, clock: i32) -> Arc<OpenFile> {
    timerfd::timerfd_create(host.clone(), clock, TFD_NONBLOCK).unwrap()
}

fn tfd(f: &OpenFile) -> &TimerFd {
    f.device::<TimerFd>().unwrap()
}

fn spec(value: u64, interval: u64) -> TimerSpec {
    TimerSpec { interval, value }
}

fn ticks(f: &OpenFile) -> Result<u64, Errno> {
    let mut buf = [0u8; 8];
    f.read(&mut buf)?;
    Ok(u64::from_ne_bytes(buf))
}

#[test]
fn creation_checks_clock_and_flags() {
    let host = FakeTimers::new();
    for clock in [0, 1, 7, 8, 9] {
        assert!(timerfd::timerfd_create(host.clone(), clock, 0).is_ok());
    }
    for clock in [2, 3, 4, 5, 6, 11, 99, -1] {
        assert_eq!(
            timerfd::timerfd_create(host.clone(), clock, 0).err(),
            Some(Errno::EINVAL),
            "clock {clock}"
        );
    }
    assert_eq!(
        timerfd::timerfd_create(host.clone(), 1, 4).err(),
        Some(Errno::EINVAL)
    );
    let t = timer(&host, 1);
    assert_eq!(t.status_flags(), OpenFlags::O_RDWR | OpenFlags::O_NONBLOCK);
    assert_eq!(t.stat().unwrap().mode, 0o600);
    assert_eq!(t.path(), b"anon_inode:[timerfd]".to_vec());
    assert_eq!(t.write(&[0; 8]), Err(Errno::EINVAL));
    assert_eq!(t.read(&mut [0; 7]), Err(Errno::EINVAL));
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
    assert_eq!(t.poll_mask(), 0);
    assert_eq!(tfd(&t).gettime(), spec(0, 0));
    assert_eq!(tfd(&t).settime(4, spec(1, 0)), Err(Errno::EINVAL));
}

#[test]
fn one_shot_expires_once_and_reads_reset_the_count() {
    let host = FakeTimers::new();
    let t = timer(&host, 1);
    assert_eq!(tfd(&t).settime(0, spec(50 * MS, 0)), Ok(spec(0, 0)));
    host.advance(20 * MS);
    assert_eq!(tfd(&t).gettime(), spec(30 * MS, 0));
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
    let g = t.generation();
    host.advance(30 * MS);
    assert_eq!(t.poll_mask(), EPOLLIN);
    assert!(t.generation().input > g.input);
    assert_eq!(tfd(&t).gettime(), spec(0, 0), "disarmed after firing");
    assert_eq!(ticks(&t), Ok(1));
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
    assert_eq!(t.poll_mask(), 0);
    host.advance(SEC);
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
}

#[test]
fn periodic_timers_count_missed_periods_without_interrupts() {
    let host = FakeTimers::new();
    let t = timer(&host, 1);
    tfd(&t).settime(0, spec(10 * MS, 10 * MS)).unwrap();
    host.advance(55 * MS);
    // One interrupt counted the first expiry; the rest are counted on reading.
    assert_eq!(host.armed_count(), 0, "stopped until someone looks");
    let left = tfd(&t).gettime();
    assert_eq!(left, spec(5 * MS, 10 * MS));
    assert_eq!(ticks(&t), Ok(5));
    // Now 80 ms in: the expiries at 60, 70 and 80 ms.
    host.advance(25 * MS);
    assert_eq!(ticks(&t), Ok(3));
    // A new setting forgets pending expirations and reports the old one.
    host.advance(25 * MS);
    let old = tfd(&t).settime(0, spec(5 * SEC, 0)).unwrap();
    assert_eq!(old.interval, 10 * MS);
    assert!(old.value <= 10 * MS);
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
}

/// The scheduler timer's interrupt has not run although its deadline passed: reading
/// the timer must not report a 0 remaining time for a running periodic timer, nor miss
/// the expiries (found by the guest differential test on a loaded machine).
#[test]
fn periodic_timers_with_a_late_interrupt_report_the_next_period() {
    let host = FakeTimers::new();
    let t = timer(&host, 1);
    tfd(&t).settime(0, spec(10 * MS, 10 * MS)).unwrap();
    host.advance_late(45 * MS);
    let left = tfd(&t).gettime();
    assert_eq!(left, spec(5 * MS, 10 * MS));
    assert_eq!(ticks(&t), Ok(4));
    // The late interrupt of the old setting changes nothing once it arrives.
    host.advance(MS);
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
    host.advance(4 * MS);
    assert_eq!(ticks(&t), Ok(1));
}

#[test]
fn zero_disarms_but_keeps_the_interval() {
    let host = FakeTimers::new();
    let t = timer(&host, 1);
    tfd(&t).settime(0, spec(SEC, 0)).unwrap();
    assert_eq!(tfd(&t).settime(0, spec(0, 5)), Ok(spec(SEC, 0)));
    assert_eq!(tfd(&t).gettime(), spec(0, 5));
    assert_eq!(host.armed_count(), 0);
    host.advance(2 * SEC);
    assert_eq!(ticks(&t), Err(Errno::EAGAIN));
}

#[test]
fn absolute_times_in_the_past_expire_at_once() {
    let host = FakeTimers::new();
    let t = timer(&host, 1);
    tfd(&t)
        .settime(timerfd::TFD_TIMER_ABSTIME, spec(1, 5))
        .unwrap();
    assert_eq!(t.poll_mask(), EPOLLIN, "no interrupt needed");
    // Every 5 ns since monotonic time 1.
    assert_eq!(ticks(&t), Ok((1000 * SEC - 1) / 5 + 1));
    let m = timer(&host, 1);
    tfd(&m)
        .settime(timerfd::TFD_TIMER_ABSTIME, spec(1000 * SEC + 10 * MS, 0))
        .unwrap();
    host.advance(9 * MS);
    assert_eq!(ticks(&m), Err(Errno::EAGAIN));
    host.advance(MS);
    assert_eq!(ticks(&m), Ok(1));
}

#[test]
fn realtime_timers_follow_the_wall_clock_and_can_be_cancelled() {
    let host = FakeTimers::new();
    let dyn_host: Arc<dyn TimerHost> = host.clone();
    let wall_now = host.realtime_ns() as u64;
    let plain = timer(&host, timerfd::CLOCK_REALTIME);
    tfd(&plain)
        .settime(timerfd::TFD_TIMER_ABSTIME, spec(wall_now + 10 * SEC, 0))
        .unwrap();
    let cancelling = timer(&host, timerfd::CLOCK_REALTIME);
    tfd(&cancelling)
        .settime(
            timerfd::TFD_TIMER_ABSTIME | timerfd::TFD_TIMER_CANCEL_ON_SET,
            spec(wall_now + 100 * SEC, 0),
        )
        .unwrap();
    let monotonic = timer(&host, timerfd::CLOCK_MONOTONIC);
    tfd(&monotonic)
        .settime(timerfd::TFD_TIMER_CANCEL_ON_SET, spec(10 * SEC, 0))
        .unwrap();
    // The wall clock jumps 5 s ahead: the realtime timer is due 5 s earlier.
    host.jump_wall(5 * SEC as i64);
    assert!(timerfd::clock_was_set(&dyn_host));
    assert_eq!(tfd(&plain).gettime(), spec(5 * SEC, 0));
    assert_eq!(tfd(&monotonic).gettime(), spec(10 * SEC, 0));
    assert_eq!(cancelling.poll_mask(), EPOLLIN);
    assert_eq!(ticks(&cancelling), Err(Errno::ECANCELED));
    assert_eq!(ticks(&cancelling), Err(Errno::EAGAIN), "once");
    assert_eq!(ticks(&monotonic), Err(Errno::EAGAIN));
    host.advance(5 * SEC);
    assert_eq!(ticks(&plain), Ok(1));
    // A jump past the deadline fires it at once.
    let later = timer(&host, timerfd::CLOCK_REALTIME_ALARM);
    tfd(&later).settime(0, spec(60 * SEC, 0)).unwrap();
    host.jump_wall(120 * SEC as i64);
    timerfd::clock_was_set(&dyn_host);
    assert_eq!(ticks(&later), Ok(1));
}

#[test]
fn closing_a_timerfd_disarms_it() {
    let host = FakeTimers::new();
    let t = timer(&host, 1);
    tfd(&t).settime(0, spec(SEC, SEC)).unwrap();
    assert_eq!(host.armed_count(), 1);
    drop(t);
    assert_eq!(host.armed_count(), 0);
    host.advance(3 * SEC);
}

#[test]
fn itimerspec_decoding_rejects_bad_timespecs() {
    assert_eq!(
        TimerSpec::from_timespecs([1, 2, 3, 4]),
        Ok(spec(3 * SEC + 4, SEC + 2))
    );
    assert_eq!(
        TimerSpec::from_timespecs([0, 0, 0, 1_000_000_000]),
        Err(Errno::EINVAL)
    );
    assert_eq!(TimerSpec::from_timespecs([0, -1, 0, 0]), Err(Errno::EINVAL));
    assert_eq!(TimerSpec::from_timespecs([0, 0, -1, 0]), Err(Errno::EINVAL));
    assert_eq!(spec(3 * SEC + 4, SEC + 2).to_timespecs(), [1, 2, 3, 4]);
}

// ---- signalfd ----

/// A thread's and a process's pending signals, each a FIFO per signal.
#[derive(Default)]
struct FakeSignals {
    thread: Mutex<Vec<[u8; 128]>>,
    process: Mutex<Vec<[u8; 128]>>,
}

fn info(signo: i32, code: i32, pid: i32) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&signo.to_ne_bytes());
    b[8..12].copy_from_slice(&code.to_ne_bytes());
    b[16..20].copy_from_slice(&pid.to_ne_bytes());
    b
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

impl FakeSignals {
    fn post(&self, to_thread: bool, signo: i32) {
        let queue = if to_thread {
            &self.thread
        } else {
            &self.process
        };
        queue.lock().unwrap().push(info(signo, 0, 1));
        signalfd::signal_posted();
    }
}

impl SignalSource for FakeSignals {
    fn pending(&self) -> u64 {
        let sigs = |q: &Mutex<Vec<[u8; 128]>>| {
            q.lock().unwrap().iter().fold(0, |m, i| {
                m | bit(i32::from_ne_bytes(i[0..4].try_into().unwrap()))
            })
        };
        sigs(&self.thread) | sigs(&self.process)
    }
    fn dequeue(&self, mask: u64) -> Option<[u8; 128]> {
        for q in [&self.thread, &self.process] {
            let mut q = q.lock().unwrap();
            let lowest = q
                .iter()
                .enumerate()
                .filter(|(_, i)| mask & bit(i32::from_ne_bytes(i[0..4].try_into().unwrap())) != 0)
                .min_by_key(|(_, i)| i32::from_ne_bytes(i[0..4].try_into().unwrap()))
                .map(|(n, _)| n);
            if let Some(n) = lowest {
                return Some(q.remove(n));
            }
        }
        None
    }
}

fn records(buf: &[u8]) -> Vec<(u32, i32)> {
    buf.chunks(128)
        .map(|r| {
            (
                u32::from_ne_bytes(r[0..4].try_into().unwrap()),
                i32::from_ne_bytes(r[12..16].try_into().unwrap()),
            )
        })
        .collect()
}

#[test]
fn signalfd_reads_pending_signals_in_dequeue_order() {
    let signals = Arc::new(FakeSignals::default());
    let f = signalfd::signalfd(signals.clone(), bit(10) | bit(12) | bit(9), SFD_NONBLOCK).unwrap();
    let sfd = f.device::<SignalFd>().unwrap();
    assert_eq!(sfd.mask(), bit(10) | bit(12), "SIGKILL cannot be read");
    assert_eq!(f.status_flags(), OpenFlags::O_RDWR | OpenFlags::O_NONBLOCK);
    assert_eq!(f.path(), b"anon_inode:[signalfd]".to_vec());
    let mut buf = [0u8; 512];
    assert_eq!(f.read(&mut buf), Err(Errno::EAGAIN));
    assert_eq!(f.read(&mut buf[..127]), Err(Errno::EINVAL));
    assert_eq!(f.write(&buf[..128]), Err(Errno::EINVAL));
    assert_eq!(f.poll_mask(), 0);
    let g = f.generation();
    signals.post(false, 10);
    signals.post(true, 12);
    signals.post(true, 14);
    assert!(f.generation().input > g.input);
    assert_eq!(f.poll_mask(), EPOLLIN);
    // The thread's own signal first, then the process's; SIGALRM stays pending.
    assert_eq!(f.read(&mut buf), Ok(256));
    assert_eq!(records(&buf[..256]), [(12, 1), (10, 1)]);
    assert_eq!(f.poll_mask(), 0);
    assert_eq!(signals.pending(), bit(14));
    // A new mask takes effect for the same descriptor.
    sfd.set_mask(bit(14) | bit(19));
    assert_eq!(sfd.mask(), bit(14));
    assert_eq!(f.poll_mask(), EPOLLIN);
    assert_eq!(f.read(&mut buf[..200]), Ok(128));
    assert_eq!(records(&buf[..128]), [(14, 1)]);
    assert_eq!(signalfd::signalfd(signals, 0, 4).err(), Some(Errno::EINVAL));
}
