//! The application's virtual memory map (`skiff-vm`).
//!
//! This crate owns the list of VMAs of the one application and Linux's semantics for
//! `mmap`, `munmap`, `mprotect`, `mremap`, `brk` and `madvise`, decides what a page
//! fault means (populate, grow the stack, or which signal), answers `EFAULT` checks and
//! renders `/proc/self/maps`. It never touches page tables: the kernel implements
//! [`PageOps`] and file contents arrive through [`MapSource`]. Pages are populated
//! lazily, on the first fault.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod abi;
mod maps;
mod prot;
mod space;
mod vma;

pub use prot::{Access, FaultKind, Prot};
pub use space::{AddressSpace, Layout, PageOps, DEFAULT_STACK_LIMIT, STACK_GUARD_GAP};
pub use vma::{Backing, MapSource, Vma, VmaKind};

#[cfg(test)]
mod tests;
