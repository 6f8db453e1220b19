//! A mutex whose waiters sleep: for state held across operations that may block (file
//! I/O during a page fault, a volume's device requests).
//!
//! There is one CPU and kernel code is never preempted in place, so a spin lock whose
//! holder goes to sleep would make the next locker spin forever. [`SleepMutex`] parks
//! its waiters on a [`WaitQueue`] instead. It must not be taken in interrupt context.

use crate::WaitQueue;
use core::ops::{Deref, DerefMut};

pub struct SleepMutex<T> {
    inner: spin::Mutex<T>,
    released: WaitQueue,
}

pub struct SleepMutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    released: &'a WaitQueue,
}

impl<T> SleepMutex<T> {
    pub const fn new(value: T) -> SleepMutex<T> {
        SleepMutex {
            inner: spin::Mutex::new(value),
            released: WaitQueue::new(),
        }
    }

    /// Takes the lock, sleeping (uninterruptibly) while another thread holds it.
    pub fn lock(&self) -> SleepMutexGuard<'_, T> {
        loop {
            if let Some(guard) = self.inner.try_lock() {
                return SleepMutexGuard {
                    guard: Some(guard),
                    released: &self.released,
                };
            }
            // Uninterruptible and without deadline: the holder always releases.
            let _ = self
                .released
                .wait_until(None, false, || !self.inner.is_locked());
        }
    }

    /// Takes the lock only if it is free.
    pub fn try_lock(&self) -> Option<SleepMutexGuard<'_, T>> {
        self.inner.try_lock().map(|guard| SleepMutexGuard {
            guard: Some(guard),
            released: &self.released,
        })
    }
}

impl<T> Deref for SleepMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().expect("guard present until drop")
    }
}

impl<T> DerefMut for SleepMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().expect("guard present until drop")
    }
}

impl<T> Drop for SleepMutexGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.released.wake_all();
    }
}
