//! Skiff's TCP/IP networking (being written: the network configuration so far).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod config;
pub mod device;

pub use config::NetConfig;
pub use device::NetDevice;
