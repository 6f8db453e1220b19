//! Keeping shared memory mappings of a file coherent with `read(2)`, `write(2)` and
//! size changes made through descriptors.
//!
//! Skiff has no page cache: a `MAP_SHARED` mapping holds its own copy of the file's
//! pages and writes the modified ones back whole (on `msync`, `munmap` and exit). So
//! that neither path loses the other's data, every read, write and size change of a
//! regular file through an [`OpenFile`](crate::OpenFile) asks the kernel's
//! [`SharedMappings`] to hold the file's mappings still for the duration and:
//! * before a read, writes back the mapped pages covering the range that the program
//!   modified ([`HeldMappings::flush`]), so `read` sees stores to the mapping;
//! * after a write, copies the written bytes into the mapped pages
//!   ([`HeldMappings::written`]), so the mapping sees the write and its later
//!   write-back carries the new bytes instead of overwriting them;
//! * after a size change, zeroes the mapped bytes between the old and new end and past
//!   a smaller end ([`HeldMappings::resized`]).
//!
//! Files nobody maps shared pay one lookup. Without an installed [`SharedMappings`]
//! (host tests) nothing is mapped.

use crate::inode::Inode;
use alloc::boxed::Box;
use alloc::sync::Arc;
use skiff_errno::KResult;

/// The kernel's view of which files are mapped shared, installed once with [`install`].
pub trait SharedMappings: Send + Sync {
    /// The shared mappings of `inode` held still (no fault, write-back or unmap runs
    /// until the result is dropped), or `None` when nothing maps the file shared.
    fn hold(&self, inode: &Arc<dyn Inode>) -> Option<Box<dyn HeldMappings>>;
}

/// The shared mappings of one file, held still.
pub trait HeldMappings {
    /// Writes the modified mapped pages showing bytes `[offset, offset + len)` to the
    /// file and marks them clean.
    fn flush(&mut self, offset: u64, len: u64) -> KResult<()>;
    /// `data` was just written to the file at `offset`: mapped pages show it too.
    fn written(&mut self, offset: u64, data: &[u8]);
    /// The file's size changed from `old` to `new`: the mapped bytes from the smaller of
    /// the two on read as zeros, as the file does.
    fn resized(&mut self, old: u64, new: u64);
}

static MAPPINGS: spin::Once<&'static dyn SharedMappings> = spin::Once::new();

/// Installs the kernel's [`SharedMappings`]; only the first call has an effect.
pub fn install(mappings: &'static dyn SharedMappings) {
    MAPPINGS.call_once(|| mappings);
}

/// The shared mappings of `inode`, held, if there are any.
pub(crate) fn hold(inode: &Arc<dyn Inode>) -> Option<Box<dyn HeldMappings>> {
    MAPPINGS.get()?.hold(inode)
}

/// The identity under which mappings know a file: its inode's address (the same key
/// [`crate::lock`] uses).
pub fn inode_key(inode: &Arc<dyn Inode>) -> usize {
    Arc::as_ptr(inode) as *const () as usize
}

/// `inode.set_size(len)` with the file's shared mappings kept coherent.
pub(crate) fn set_size(inode: &Arc<dyn Inode>, len: u64) -> KResult<()> {
    match hold(inode) {
        None => inode.set_size(len),
        Some(mut mapped) => {
            let old = inode.stat()?.size;
            let result = inode.set_size(len);
            let new = inode.stat().map_or(len, |s| s.size);
            mapped.resized(old, new);
            result
        }
    }
}
