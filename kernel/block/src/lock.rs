//! [`SleepLock`]: a mutex that may be held while the block device puts its holder to
//! sleep.
//!
//! There is one CPU and kernel code is never preempted in place, so a spin lock whose
//! holder sleeps on I/O would make the next locker spin forever: the holder cannot run
//! again until the spinner yields, which it never does. A `SleepLock` waiter instead
//! calls the kernel's wait hook, which parks the thread until an unlock calls the wake
//! hook. The kernel installs both hooks once at boot ([`set_lock_hooks`], backed by a
//! scheduler wait queue); without hooks (host tests, early boot) waiting spins.

use core::fmt;
use core::ops::{Deref, DerefMut};
use spin::{Mutex, MutexGuard};

/// How a waiter sleeps: `wait(ready)` returns once `ready()` is true (it may return
/// early; the caller re-checks). How an unlock wakes sleepers: `wake()`.
#[derive(Clone, Copy)]
struct Hooks {
    wait: fn(&dyn Fn() -> bool),
    wake: fn(),
}

static HOOKS: spin::Once<Hooks> = spin::Once::new();

/// Installs the kernel's sleep and wake-up functions for every [`SleepLock`]. `wait`
/// must return once its condition holds (it may return earlier, spuriously); `wake` is
/// called after every unlock and must wake the threads sleeping in `wait`. Only the
/// first call has an effect.
pub fn set_lock_hooks(wait: fn(&dyn Fn() -> bool), wake: fn()) {
    HOOKS.call_once(|| Hooks { wait, wake });
}

/// A mutual-exclusion lock whose holder may sleep (block on device I/O) while holding
/// it. Not reentrant: locking it twice on one thread deadlocks.
pub struct SleepLock<T> {
    inner: Mutex<T>,
}

impl<T> SleepLock<T> {
    pub const fn new(value: T) -> SleepLock<T> {
        SleepLock {
            inner: Mutex::new(value),
        }
    }

    /// Takes the lock, sleeping (through the installed wait hook) while another thread
    /// holds it.
    pub fn lock(&self) -> SleepLockGuard<'_, T> {
        loop {
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            match HOOKS.get() {
                Some(hooks) => (hooks.wait)(&|| !self.inner.is_locked()),
                None => core::hint::spin_loop(),
            }
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<SleepLockGuard<'_, T>> {
        self.inner
            .try_lock()
            .map(|guard| SleepLockGuard { guard: Some(guard) })
    }

    /// Whether some thread holds the lock (a hint: it may change at once).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The protected value, through exclusive access to the lock itself.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: Default> Default for SleepLock<T> {
    fn default() -> Self {
        SleepLock::new(T::default())
    }
}

impl<T> fmt::Debug for SleepLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SleepLock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Holds a [`SleepLock`]; dropping it unlocks and wakes the waiters.
pub struct SleepLockGuard<'a, T> {
    guard: Option<MutexGuard<'a, T>>,
}

impl<T> Deref for SleepLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard present until drop")
    }
}

impl<T> DerefMut for SleepLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard present until drop")
    }
}

impl<T> Drop for SleepLockGuard<'_, T> {
    fn drop(&mut self) {
        // Unlock first, so that a woken waiter finds the lock free.
        drop(self.guard.take());
        if let Some(hooks) = HOOKS.get() {
            (hooks.wake)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_and_try_lock() {
        let lock = SleepLock::new(5);
        {
            let mut g = lock.lock();
            *g += 1;
            assert!(lock.is_locked());
            assert!(lock.try_lock().is_none());
        }
        assert!(!lock.is_locked());
        assert_eq!(*lock.try_lock().unwrap(), 6);
    }

    #[test]
    fn threads_are_serialized() {
        let lock = Arc::new(SleepLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let mut g = lock.lock();
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn holder_may_block_while_another_waits() {
        // The holder "sleeps" (blocks on a channel) while another thread waits for the
        // lock; the waiter gets it once the holder lets go.
        let lock = Arc::new(SleepLock::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = lock.lock();
        let l2 = lock.clone();
        let waiter = std::thread::spawn(move || {
            l2.lock().push(2);
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let holder = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                rx.recv().unwrap();
                lock.lock().push(3);
            })
        };
        drop(g);
        waiter.join().unwrap();
        tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(*lock.lock(), vec![2, 3]);
    }
}
