//! The list of armed timers, ordered by nothing: the scheduler scans it for the earliest
//! deadline. It holds a handful of entries per thread at most, and, above all, never
//! allocates once its capacity is reserved, because timers expire in interrupt context
//! where the heap lock may be held by the interrupted code.

use alloc::vec::Vec;

/// Identifies one armed timer.
pub type TimerId = u64;

pub struct Timer<A> {
    pub id: TimerId,
    /// Monotonic nanoseconds.
    pub deadline: u64,
    pub action: A,
}

pub struct TimerList<A> {
    timers: Vec<Timer<A>>,
    next_id: TimerId,
}

impl<A> TimerList<A> {
    pub const fn new() -> TimerList<A> {
        TimerList {
            timers: Vec::new(),
            next_id: 1,
        }
    }

    /// Make room for `extra` more timers than are armed now, so that many `add`s
    /// cannot allocate (call in thread context).
    pub fn reserve(&mut self, extra: usize) {
        self.timers.reserve(extra);
    }

    /// Room for at least one more timer without allocating.
    pub fn has_room(&self) -> bool {
        self.timers.len() < self.timers.capacity()
    }

    /// Arm a timer. The caller made room with [`TimerList::reserve`]; when there is none,
    /// `None` (never an allocation).
    pub fn add(&mut self, deadline: u64, action: A) -> Option<TimerId> {
        if !self.has_room() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.timers.push(Timer {
            id,
            deadline,
            action,
        });
        Some(id)
    }

    /// Re-arm a timer under the id it had (a periodic timer's next period). Like
    /// [`TimerList::add`], it never allocates.
    pub fn add_with_id(&mut self, id: TimerId, deadline: u64, action: A) -> Option<TimerId> {
        if !self.has_room() {
            return None;
        }
        self.timers.push(Timer {
            id,
            deadline,
            action,
        });
        Some(id)
    }

    /// Disarm a timer; its action, if it was still armed.
    pub fn cancel(&mut self, id: TimerId) -> Option<A> {
        let i = self.timers.iter().position(|t| t.id == id)?;
        Some(self.timers.swap_remove(i).action)
    }

    /// Disarm every timer whose action matches.
    pub fn cancel_where(&mut self, mut matches: impl FnMut(&A) -> bool) {
        self.timers.retain(|t| !matches(&t.action));
    }

    pub fn earliest(&self) -> Option<u64> {
        self.timers.iter().map(|t| t.deadline).min()
    }

    /// Remove and return one timer due at `now`, earliest first.
    pub fn pop_expired(&mut self, now: u64) -> Option<Timer<A>> {
        let (i, _) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.deadline <= now)
            .min_by_key(|(_, t)| t.deadline)?;
        Some(self.timers.swap_remove(i))
    }

    pub fn len(&self) -> usize {
        self.timers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }
}

impl<A> Default for TimerList<A> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_grows_past_the_reservation() {
        let mut t = TimerList::new();
        assert_eq!(t.add(5, 'a'), None);
        t.reserve(2);
        let cap = t.timers.capacity();
        let a = t.add(5, 'a').unwrap();
        let b = t.add(3, 'b').unwrap();
        while t.has_room() {
            t.add(9, 'x').unwrap();
        }
        assert_eq!(t.add(1, 'c'), None);
        assert_eq!(t.timers.capacity(), cap);
        assert_ne!(a, b);
    }

    #[test]
    fn expires_earliest_first_and_only_when_due() {
        let mut t = TimerList::new();
        t.reserve(3);
        t.add(30, 3).unwrap();
        t.add(10, 1).unwrap();
        t.add(20, 2).unwrap();
        assert_eq!(t.earliest(), Some(10));
        assert!(t.pop_expired(9).is_none());
        assert_eq!(t.pop_expired(25).map(|x| x.action), Some(1));
        assert_eq!(t.pop_expired(25).map(|x| x.action), Some(2));
        assert!(t.pop_expired(25).is_none());
        assert_eq!(t.earliest(), Some(30));
    }

    #[test]
    fn cancel_removes_exactly_one() {
        let mut t = TimerList::new();
        t.reserve(3);
        let a = t.add(10, 'a').unwrap();
        t.add(10, 'b').unwrap();
        assert_eq!(t.cancel(a), Some('a'));
        assert_eq!(t.cancel(a), None);
        assert_eq!(t.len(), 1);
        t.cancel_where(|&c| c == 'b');
        assert!(t.is_empty());
    }
}
