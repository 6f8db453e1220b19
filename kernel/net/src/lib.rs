//! Skiff's TCP/IP networking (placeholder while the stack is written).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod device;
pub use device::NetDevice;
