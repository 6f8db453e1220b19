//! The freestanding runtime the compiler expects: `mem*` functions and the unwinding
//! symbols that the precompiled `alloc` refers to even with `panic = "abort"`.
//!
//! The symbols are instantiated only in the kernel image, through
//! [`freestanding_runtime!`](crate::freestanding_runtime), so host test binaries of this
//! crate keep their libc's versions.

use core::arch::asm;

/// # Safety
/// `dst` and `src` must be valid for `n` bytes and must not overlap.
#[inline]
pub unsafe fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: delegated to the caller; `rep movsb` copies exactly `n` bytes forward.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// `dst` and `src` must be valid for `n` bytes; they may overlap.
#[inline]
pub unsafe fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy is correct when dst is below src or the ranges are
        // disjoint; validity is the caller's.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: backward copy with the direction flag set, cleared again before returning
    // (the ABI requires DF clear); pointers start at the last byte of each range.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             options(nostack));
    }
    dst
}

/// # Safety
/// `dst` must be valid for `n` bytes.
#[inline]
pub unsafe fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: delegated to the caller; `rep stosb` writes exactly `n` bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[inline]
pub unsafe fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and both pointers are valid for `n` bytes.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

/// # Safety
/// `s` must point at a NUL-terminated string.
#[inline]
pub unsafe fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees a terminating NUL within the allocation.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// Instantiate the runtime symbols. Use once, in the kernel image crate.
#[macro_export]
macro_rules! freestanding_runtime {
    () => {
        #[allow(unsafe_code)]
        mod __skiff_freestanding_runtime {
            #[no_mangle]
            unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
                // SAFETY: the compiler calls memcpy with valid, non-overlapping ranges.
                unsafe { $crate::rt::memcpy(d, s, n) }
            }
            #[no_mangle]
            unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
                // SAFETY: the compiler calls memmove with valid ranges.
                unsafe { $crate::rt::memmove(d, s, n) }
            }
            #[no_mangle]
            unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
                // SAFETY: the compiler calls memset with a valid range.
                unsafe { $crate::rt::memset(d, c, n) }
            }
            #[no_mangle]
            unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
                // SAFETY: the compiler calls memcmp with valid ranges.
                unsafe { $crate::rt::memcmp(a, b, n) }
            }
            #[no_mangle]
            unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
                // SAFETY: as for memcmp.
                unsafe { $crate::rt::memcmp(a, b, n) }
            }
            #[no_mangle]
            unsafe extern "C" fn strlen(s: *const u8) -> usize {
                // SAFETY: callers pass NUL-terminated strings.
                unsafe { $crate::rt::strlen(s) }
            }
            #[no_mangle]
            extern "C" fn rust_eh_personality() {}
            #[no_mangle]
            extern "C" fn _Unwind_Resume() -> ! {
                $crate::cpu::halt_forever()
            }
        }
    };
}
