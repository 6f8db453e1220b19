//! Program loading for Skiff: validating a static x86_64 ELF executable and building
//! the initial process stack Linux gives a new program.
//!
//! This crate decides *what* to map and *what* the stack holds; it touches no memory
//! of its own. The kernel maps the [`Executable`]'s segments and copies the
//! [`stack::InitialStack`] bytes; the host CLI calls [`parse`] before booting so a
//! program Skiff cannot run is refused with a one-line reason (exit status 126).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
extern crate alloc;

mod elf;
pub mod stack;

pub use elf::{
    machine_name, parse, ExecKind, Executable, LoadError, Segment, MIN_MAP_ADDR, PAGE_SIZE,
    USER_ADDR_END,
};

#[cfg(test)]
mod tests;
