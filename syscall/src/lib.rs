//! The Linux system-call layer of Skiff.
//!
//! The application's `syscall` instruction arrives in [`dispatch`] with the registers in
//! a [`TrapFrame`]. [`args`] decodes them into typed values (one place), [`table`] maps
//! the number to a handler (one table), the handler calls a subsystem (`skiff-fs`,
//! `skiff-vm`, the clocks) and the result is encoded back into `rax`, with errors
//! negated into `-errno` in exactly one place, [`table::dispatch`].
//!
//! This crate also owns processes: their file-system context, address space, identity,
//! limits and signal dispositions ([`process`]), threads ([`thread`], [`futex`]),
//! signals ([`signal`]), starting the first from the initrd ([`exec`]), new ones
//! ([`fork`]) and how they end ([`lifecycle`]), and what a fault in their code means
//! ([`fault`]).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod args;
pub mod env;
pub mod exec;
pub mod fault;
pub mod fork;
pub mod futex;
pub mod lifecycle;
pub mod net;
pub mod nr;
pub mod process;
pub mod signal;
mod sockmsg;
mod sys_epoll;
mod sys_exec;
mod sys_fs;
mod sys_mem;
mod sys_net;
mod sys_poll;
mod sys_proc;
mod sys_signal;
mod sys_signalfd;
mod sys_time;
mod sys_timer;
mod sys_timerfd;
mod sys_wait;
pub mod table;
pub mod thread;
pub mod wait;

pub use exec::{start, BootParams};
pub use signal::deliver::interrupt_pending;
pub use table::dispatch;

/// The last step of every interrupt or exception taken in application code: deliver
/// pending signals (a timer may have posted one, or the fault itself).
pub fn return_to_app(frame: &mut skiff_arch::TrapFrame, fpu: &mut [u8]) {
    signal::deliver::deliver(frame, fpu, None);
}
