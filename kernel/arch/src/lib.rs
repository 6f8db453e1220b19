//! The x86_64 machine layer of Skiff.
//!
//! This crate owns everything that touches the processor or a device register directly:
//! the PVH boot path and early page tables ([`boot`]), descriptor tables ([`gdt`],
//! [`idt`]), the trap and `syscall` entry stubs ([`entry`]), kernel contexts and the
//! context switch ([`context`]), vector-register state ([`fpu`]), per-CPU data
//! ([`percpu`]), port and MMIO access, the serial line ([`serial`]), the local APIC and its timer
//! ([`lapic`]), the I/O APIC ([`ioapic`]), clocks ([`time`], [`rtc`]), and the
//! freestanding runtime pieces the compiler expects ([`rt`]). Every `unsafe` block here
//! carries a `// SAFETY:` comment naming the invariant it relies on.
#![no_std]

extern crate alloc;

pub mod boot;
pub mod context;
pub mod cpu;
pub mod entry;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod lapic;
pub mod layout;
pub mod pci;
pub mod percpu;
pub mod pit;
pub mod pvh;
pub mod rt;
pub mod rtc;
pub mod serial;
pub mod time;

pub use entry::{TrapFrame, SYSCALL_VECTOR};
