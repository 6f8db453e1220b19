//! Futexes: the one blocking primitive libc's and Go's threads are built on.
//!
//! Waiters queue per process and address: each process has its own application half,
//! so an address means nothing outside it. Private and shared futexes are the same key;
//! a futex in memory shared across `fork` (`MAP_SHARED`) is therefore not shared
//! between the two processes' waiters. A waiter is an [`skiff_sched::Waiter`]: whoever removes it from its queue
//! wakes it, so a wake that races with a timeout or a signal is never lost or counted
//! twice — as on Linux, a waiter that was both woken and interrupted reports the wake.
//!
//! The compare-and-block of `FUTEX_WAIT` and the read-modify-write of `FUTEX_WAKE_OP`
//! happen under the table lock. With one CPU that makes them atomic with respect to
//! other threads (the kernel is not preempted while it holds a lock); a second CPU will
//! need the fault-safe atomic user access to do `WAKE_OP` with `lock` instructions.

use crate::args::{Args, UserPtr};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::time;
use skiff_errno::{Errno, KResult};
use skiff_sched::{Waiter, WakeReason};
use spin::Mutex;

pub const FUTEX_WAIT: u32 = 0;
pub const FUTEX_WAKE: u32 = 1;
pub const FUTEX_REQUEUE: u32 = 3;
pub const FUTEX_CMP_REQUEUE: u32 = 4;
pub const FUTEX_WAKE_OP: u32 = 5;
pub const FUTEX_WAIT_BITSET: u32 = 9;
pub const FUTEX_WAKE_BITSET: u32 = 10;
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
/// Matches every waiter's bitset.
pub const BITSET_MATCH_ANY: u32 = u32::MAX;

struct Entry {
    waiter: Arc<Waiter>,
    bitset: u32,
    /// The queue the entry is on now (requeue moves it).
    addr: AtomicU64,
}

/// A futex's identity: the process (PID) and the address in its application half.
type Key = (u32, u64);

static TABLE: Mutex<BTreeMap<Key, VecDeque<Arc<Entry>>>> = Mutex::new(BTreeMap::new());

/// The key of `addr` in the calling process.
fn key(addr: u64) -> Key {
    (crate::process::current().pid, addr)
}

/// A decoded futex operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Wait { bitset: u32, absolute: bool },
    Wake { bitset: u32 },
    Requeue { compare: bool },
    WakeOp,
}

/// Decode `futex_op` (operation plus flags). `FUTEX_CLOCK_REALTIME` only goes with
/// the absolute-timeout waits (and, since Linux 4.5, `FUTEX_WAIT`).
pub fn decode(op: u32, val3: u32) -> KResult<(Op, bool)> {
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let decoded = match cmd {
        FUTEX_WAIT => Op::Wait {
            bitset: BITSET_MATCH_ANY,
            absolute: false,
        },
        FUTEX_WAIT_BITSET => Op::Wait {
            bitset: val3,
            absolute: true,
        },
        FUTEX_WAKE => Op::Wake {
            bitset: BITSET_MATCH_ANY,
        },
        FUTEX_WAKE_BITSET => Op::Wake { bitset: val3 },
        FUTEX_REQUEUE => Op::Requeue { compare: false },
        FUTEX_CMP_REQUEUE => Op::Requeue { compare: true },
        FUTEX_WAKE_OP => Op::WakeOp,
        // Priority-inheritance futexes and FUTEX_FD.
        _ => return Err(Errno::ENOSYS),
    };
    if realtime && !matches!(decoded, Op::Wait { .. }) {
        return Err(Errno::ENOSYS);
    }
    if let Op::Wait { bitset: 0, .. } | Op::Wake { bitset: 0 } = decoded {
        return Err(Errno::EINVAL);
    }
    Ok((decoded, realtime))
}

/// The `FUTEX_WAKE_OP` encoding: operation on `*uaddr2` and the comparison of its old
/// value that decides whether `uaddr2`'s waiters are woken too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeOp {
    op: u32,
    cmp: u32,
    oparg: u32,
    cmparg: u32,
}

impl WakeOp {
    pub fn decode(val3: u32) -> KResult<WakeOp> {
        let op = (val3 >> 28) & 0xf;
        let cmp = (val3 >> 24) & 0xf;
        // 12-bit fields, sign-extended as Linux does.
        let sext = |v: u32| (((v & 0xfff) << 20) as i32 >> 20) as u32;
        let mut oparg = sext(val3 >> 12);
        if op & 8 != 0 {
            // FUTEX_OP_OPARG_SHIFT; Linux warns and masks shifts beyond 31.
            oparg = 1u32 << (oparg & 31);
        }
        if op & 7 > 4 || cmp > 5 {
            return Err(Errno::ENOSYS);
        }
        Ok(WakeOp {
            op: op & 7,
            cmp,
            oparg,
            cmparg: sext(val3),
        })
    }

    /// The new value stored for `old`.
    pub fn apply(&self, old: u32) -> u32 {
        match self.op {
            0 => self.oparg,
            1 => old.wrapping_add(self.oparg),
            2 => old | self.oparg,
            3 => old & !self.oparg,
            _ => old ^ self.oparg,
        }
    }

    /// Whether waiters on the second address are woken, given its old value.
    pub fn condition(&self, old: u32) -> bool {
        let (a, b) = (old as i32, self.cmparg as i32);
        match self.cmp {
            0 => a == b,
            1 => a != b,
            2 => a < b,
            3 => a <= b,
            4 => a > b,
            _ => a >= b,
        }
    }
}

fn check_aligned(addr: u64) -> KResult<()> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Wake up to `n` waiters on `addr` whose bitset intersects `bitset`; how many woke.
pub fn wake(addr: u64, n: u32, bitset: u32) -> u32 {
    let k = key(addr);
    let mut table = TABLE.lock();
    wake_locked(&mut table, k, n, bitset)
}

fn wake_locked(
    table: &mut BTreeMap<Key, VecDeque<Arc<Entry>>>,
    key: Key,
    n: u32,
    bitset: u32,
) -> u32 {
    let Some(queue) = table.get_mut(&key) else {
        return 0;
    };
    let mut woken = 0;
    let mut i = 0;
    while i < queue.len() && woken < n {
        if queue[i].bitset & bitset != 0 {
            let e = queue.remove(i).expect("index in range");
            e.waiter.wake();
            woken += 1;
        } else {
            i += 1;
        }
    }
    if queue.is_empty() {
        table.remove(&key);
    }
    woken
}

/// Wait on `addr` while it holds `expected`, until woken, the deadline (monotonic ns)
/// passes, or a signal arrives.
fn wait(addr: u64, expected: u32, bitset: u32, deadline: Option<u64>) -> KResult<u64> {
    let (pid, _) = key(addr);
    let entry = Arc::new(Entry {
        waiter: Waiter::new(),
        bitset,
        addr: AtomicU64::new(addr),
    });
    {
        let mut table = TABLE.lock();
        let value: u32 = UserPtr(addr).read()?;
        if value != expected {
            return Err(Errno::EAGAIN);
        }
        table
            .entry((pid, addr))
            .or_default()
            .push_back(entry.clone());
    }
    let reason = skiff_sched::wait(&entry.waiter, deadline, true);
    if reason == WakeReason::Woken {
        return Ok(0);
    }
    // Leave the queue, unless a waker removed the entry first: then the wake counts.
    let mut table = TABLE.lock();
    let at = (pid, entry.addr.load(Ordering::Relaxed));
    if let Some(queue) = table.get_mut(&at) {
        if let Some(i) = queue.iter().position(|e| Arc::ptr_eq(e, &entry)) {
            queue.remove(i);
            if queue.is_empty() {
                table.remove(&at);
            }
            return Err(match reason {
                WakeReason::TimedOut => Errno::ETIMEDOUT,
                // Without a timeout the call restarts after a handler with SA_RESTART, as
                // on Linux; a timed wait reports EINTR.
                _ if deadline.is_none() => Errno::ERESTARTSYS,
                _ => Errno::EINTR,
            });
        }
    }
    Ok(0)
}

/// Move waiters: wake `wake_n` on `from`, move up to `move_n` more to `to`.
fn requeue(from: u64, to: u64, wake_n: u32, move_n: u32, expected: Option<u32>) -> KResult<u64> {
    let (pid, _) = key(from);
    let mut table = TABLE.lock();
    if let Some(expected) = expected {
        let value: u32 = UserPtr(from).read()?;
        if value != expected {
            return Err(Errno::EAGAIN);
        }
    }
    let woken = wake_locked(&mut table, (pid, from), wake_n, BITSET_MATCH_ANY);
    let mut moved = 0;
    if from != to {
        let mut taken = VecDeque::new();
        if let Some(queue) = table.get_mut(&(pid, from)) {
            while moved < move_n {
                let Some(e) = queue.pop_front() else { break };
                e.addr.store(to, Ordering::Relaxed);
                taken.push_back(e);
                moved += 1;
            }
            if queue.is_empty() {
                table.remove(&(pid, from));
            }
        }
        if !taken.is_empty() {
            table.entry((pid, to)).or_default().extend(taken);
        }
    } else {
        // Requeueing onto the same address leaves the waiters where they are; Linux
        // counts them as requeued.
        moved = table
            .get(&(pid, from))
            .map_or(0, |q| (q.len() as u32).min(move_n));
    }
    Ok((woken + moved) as u64)
}

fn wake_op(addr1: u64, addr2: u64, n1: u32, n2: u32, op: WakeOp) -> KResult<u64> {
    check_aligned(addr2)?;
    let (pid, _) = key(addr1);
    let mut table = TABLE.lock();
    let old: u32 = UserPtr(addr2).read()?;
    UserPtr(addr2).write(&op.apply(old))?;
    let mut woken = wake_locked(&mut table, (pid, addr1), n1, BITSET_MATCH_ANY);
    if op.condition(old) {
        woken += wake_locked(&mut table, (pid, addr2), n2, BITSET_MATCH_ANY);
    }
    Ok(woken as u64)
}

const NSEC: i64 = 1_000_000_000;

/// The deadline for a wait: `FUTEX_WAIT` takes a relative timeout, the bitset wait an
/// absolute time on CLOCK_MONOTONIC or, with `FUTEX_CLOCK_REALTIME`, CLOCK_REALTIME.
fn deadline(ts: UserPtr, absolute: bool, realtime: bool) -> KResult<Option<u64>> {
    if ts.is_null() {
        return Ok(None);
    }
    let [sec, nsec]: [i64; 2] = ts.read()?;
    if sec < 0 || !(0..NSEC).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    let ns = sec.saturating_mul(NSEC).saturating_add(nsec);
    let now = time::monotonic_ns();
    Ok(Some(if !absolute {
        now.saturating_add(ns as u64)
    } else if realtime {
        let left = ns.saturating_sub(time::realtime_ns()).max(0);
        now.saturating_add(left as u64)
    } else {
        ns as u64
    }))
}

pub fn futex(a: &Args) -> KResult<u64> {
    let addr = a.raw(0);
    let (op, realtime) = decode(a.u32(1), a.u32(5))?;
    check_aligned(addr)?;
    let val = a.u32(2);
    match op {
        Op::Wait { bitset, absolute } => {
            let d = deadline(a.ptr(3), absolute, realtime)?;
            wait(addr, val, bitset, d)
        }
        Op::Wake { bitset } => Ok(wake(addr, val, bitset) as u64),
        Op::Requeue { compare } => {
            let addr2 = a.raw(4);
            check_aligned(addr2)?;
            // val2 travels in the timeout argument's register.
            let move_n = a.raw(3) as u32;
            if (val as i32) < 0 || (move_n as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            requeue(addr, addr2, val, move_n, compare.then_some(a.u32(5)))
        }
        Op::WakeOp => {
            let op = WakeOp::decode(a.u32(5))?;
            wake_op(addr, a.raw(4), val, a.raw(3) as u32, op)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_flags_decode() {
        assert_eq!(
            decode(FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0),
            Ok((
                Op::Wait {
                    bitset: BITSET_MATCH_ANY,
                    absolute: false
                },
                false
            ))
        );
        assert_eq!(
            decode(FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0b10),
            Ok((
                Op::Wait {
                    bitset: 0b10,
                    absolute: true
                },
                true
            ))
        );
        assert_eq!(decode(FUTEX_WAKE_BITSET, 0), Err(Errno::EINVAL));
        assert_eq!(
            decode(FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 0),
            Err(Errno::ENOSYS)
        );
        assert_eq!(decode(6, 0), Err(Errno::ENOSYS)); // FUTEX_LOCK_PI
    }

    fn encode(op: u32, cmp: u32, oparg: u32, cmparg: u32) -> u32 {
        (op << 28) | (cmp << 24) | ((oparg & 0xfff) << 12) | (cmparg & 0xfff)
    }

    #[test]
    fn wake_op_arithmetic_matches_linux() {
        // glibc's pthread_cond_signal of old: FUTEX_OP_CLEAR_WAKE_IF_GT_ONE.
        let op = WakeOp::decode(encode(0, 4, 0, 1)).unwrap();
        assert_eq!(op.apply(7), 0);
        assert!(op.condition(2));
        assert!(!op.condition(1));
        let add = WakeOp::decode(encode(1, 0, 5, 10)).unwrap();
        assert_eq!(add.apply(5), 10);
        assert!(add.condition(10));
        let shifted = WakeOp::decode(encode(8 | 2, 1, 4, 0)).unwrap();
        assert_eq!(shifted.apply(1), 0b10001);
        let andn = WakeOp::decode(encode(3, 5, 1, 0)).unwrap();
        assert_eq!(andn.apply(3), 2);
        let xor = WakeOp::decode(encode(4, 2, 0xfff, 0)).unwrap();
        // -1 sign-extended: xor flips every bit.
        assert_eq!(xor.apply(0), u32::MAX);
        assert!(WakeOp::decode(encode(5, 0, 0, 0)).is_err());
        assert!(WakeOp::decode(encode(0, 6, 0, 0)).is_err());
        // Negative comparison argument compares signed.
        let lt = WakeOp::decode(encode(0, 2, 0, 0xfff)).unwrap();
        assert!(lt.condition((-2i32) as u32));
        assert!(!lt.condition(0));
    }
}
