//! Memory management: physical frames ([`frames`]), the kernel heap ([`heap`]), the
//! page tables of the one address space ([`paging`]), access to application memory
//! from the kernel ([`usercopy`]), and memory shared with devices ([`dma`], [`virtio_net`]). The
//! application's virtual memory *map* (VMAs and the semantics of `mmap` and friends) is
//! `skiff-vm`; this crate applies its decisions to the hardware page tables through
//! [`paging::UserPageTable`].
#![no_std]

extern crate alloc;

pub mod dma;
pub mod frames;
pub mod heap;
pub mod paging;
pub mod usercopy;
pub mod virtio_net;
