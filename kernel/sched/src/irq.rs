//! A spin lock that also masks interrupts while held, for state that interrupt handlers
//! touch (the run queue, timers, wait queues woken by device interrupts). Taking such a
//! lock with interrupts enabled could deadlock against a handler on the same CPU.

use skiff_arch::cpu;

pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

pub struct IrqGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    /// Whether interrupts were enabled when the lock was taken.
    irqs_were_on: bool,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> IrqMutex<T> {
        IrqMutex {
            inner: spin::Mutex::new(value),
        }
    }

    pub fn lock(&self) -> IrqGuard<'_, T> {
        let irqs_were_on = cpu::interrupts_enabled();
        cpu::disable_interrupts();
        IrqGuard {
            guard: Some(self.inner.lock()),
            irqs_were_on,
        }
    }
}

impl<T> IrqGuard<'_, T> {
    /// Release the lock but leave interrupts masked; returns whether they were enabled
    /// when the lock was taken (the caller restores that later).
    pub fn unlock_irqs_off(mut self) -> bool {
        self.guard = None;
        core::mem::replace(&mut self.irqs_were_on, false)
    }
}

impl<T> core::ops::Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard is held until dropped")
    }
}

impl<T> core::ops::DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard is held until dropped")
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        self.guard = None;
        if self.irqs_were_on {
            cpu::enable_interrupts();
        }
    }
}
