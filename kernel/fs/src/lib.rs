#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
extern crate alloc;
