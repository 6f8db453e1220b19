//! Reading and writing application memory from the kernel.
//!
//! Every access first checks that the range lies in the lower half without overflow
//! (else `EFAULT`), then copies with a `rep movsb` whose faults the page-fault handler
//! recognises: it first tries to populate the page (demand paging), and if the address
//! is invalid it resumes the copy at a fixup label that reports how much was left, so a
//! bad pointer from the application becomes `EFAULT`, never a kernel fault.

use alloc::vec::Vec;
use core::arch::global_asm;
use skiff_arch::layout::{PAGE_SIZE, USER_END};
use skiff_errno::{Errno, KResult};

extern "C" {
    /// Copies `len` bytes; returns the number of bytes *not* copied.
    fn skiff_copy_user(dst: *mut u8, src: *const u8, len: usize) -> usize;
    static skiff_copy_user_insn: u8;
    static skiff_copy_user_fixup: u8;
}

global_asm!(
    r#"
    .section .text.skiff_usercopy, "ax"
    .global skiff_copy_user
    .global skiff_copy_user_insn
    .global skiff_copy_user_fixup
skiff_copy_user:
    movq %rdx, %rcx
skiff_copy_user_insn:
    rep movsb
    xorl %eax, %eax
    ret
skiff_copy_user_fixup:
    movq %rcx, %rax
    ret
    .text
    "#,
    options(att_syntax)
);

/// If `rip` is the user-copy instruction, the address to resume at when the fault
/// cannot be resolved.
pub fn fixup_for(rip: u64) -> Option<u64> {
    let insn = &raw const skiff_copy_user_insn as u64;
    (rip == insn).then_some(&raw const skiff_copy_user_fixup as u64)
}

/// Check that `[addr, addr + len)` is an application range.
pub fn check_user_range(addr: u64, len: usize) -> KResult<()> {
    let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
    if end > USER_END || (addr == 0 && len > 0) {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Copy application memory at `src` into `dst`.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> KResult<()> {
    check_user_range(src, dst.len())?;
    if dst.is_empty() {
        return Ok(());
    }
    // SAFETY: `dst` is a valid kernel buffer; `src` is a checked lower-half range whose
    // faults are resolved or fixed up by the page-fault handler (see module docs).
    let left = unsafe { skiff_copy_user(dst.as_mut_ptr(), src as *const u8, dst.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copy `src` into application memory at `dst`.
pub fn copy_to_user(dst: u64, src: &[u8]) -> KResult<()> {
    check_user_range(dst, src.len())?;
    if src.is_empty() {
        return Ok(());
    }
    // SAFETY: as for `copy_from_user`, with the roles swapped.
    let left = unsafe { skiff_copy_user(dst as *mut u8, src.as_ptr(), src.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Plain-old-data that may be copied to and from application memory byte for byte.
///
/// # Safety
/// Implementors must have no padding-dependent invariants and accept every bit pattern.
pub unsafe trait Pod: Copy + Default {}
// SAFETY: integers accept every bit pattern.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for i64 {}
// SAFETY: arrays of Pod are Pod.
unsafe impl<const N: usize> Pod for [u64; N] where [u64; N]: Default {}
// SAFETY: arrays of Pod are Pod.
unsafe impl<const N: usize> Pod for [i64; N] where [i64; N]: Default {}
// SAFETY: arrays of Pod are Pod.
unsafe impl<const N: usize> Pod for [u32; N] where [u32; N]: Default {}
// SAFETY: arrays of Pod are Pod.
unsafe impl<const N: usize> Pod for [u8; N] where [u8; N]: Default {}

/// Read one value from application memory.
pub fn read_user<T: Pod>(addr: u64) -> KResult<T> {
    let mut v = T::default();
    // SAFETY: `T: Pod`, so viewing it as bytes and filling them with any pattern is sound.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(&mut v as *mut T as *mut u8, core::mem::size_of::<T>())
    };
    copy_from_user(bytes, addr)?;
    Ok(v)
}

/// Write one value to application memory.
pub fn write_user<T: Pod>(addr: u64, v: &T) -> KResult<()> {
    // SAFETY: `T: Pod`, so its bytes are initialized plain data.
    let bytes = unsafe {
        core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>())
    };
    copy_to_user(addr, bytes)
}

/// Read a NUL-terminated string of at most `max` bytes (without the NUL).
/// `ENAMETOOLONG`-style overflow is reported as `Err(ERANGE)`; the caller maps it.
pub fn read_user_cstr(addr: u64, max: usize) -> KResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = addr;
    loop {
        let page_left = (PAGE_SIZE - (cur % PAGE_SIZE)) as usize;
        let want = page_left.min(max + 1 - out.len());
        let mut chunk = [0u8; PAGE_SIZE as usize];
        copy_from_user(&mut chunk[..want], cur)?;
        if let Some(nul) = chunk[..want].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..want]);
        if out.len() > max {
            return Err(Errno::ERANGE);
        }
        cur += want as u64;
    }
}

/// Fill application memory with zeros.
pub fn clear_user(addr: u64, len: usize) -> KResult<()> {
    let zeros = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len());
        copy_to_user(addr + done as u64, &zeros[..n])?;
        done += n;
    }
    Ok(())
}
