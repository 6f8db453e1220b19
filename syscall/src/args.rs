//! Typed decoding of the raw syscall registers, in one place.
//!
//! A handler receives [`Args`] and turns each register into what it means with one of
//! the methods here: a file descriptor, a checked user pointer, flags with unknown bits
//! rejected (`EINVAL`), a path copied in from application memory. Nothing else in the
//! crate reads raw registers.

use alloc::vec::Vec;
use skiff_arch::TrapFrame;
use skiff_errno::{Errno, KResult};
use skiff_mm::usercopy::{self, Pod};

/// Longest path accepted (Linux's `PATH_MAX`, including the NUL).
pub const PATH_MAX: usize = 4096;
/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;

/// The six argument registers of a system call, in ABI order.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    pub nr: u64,
    raw: [u64; 6],
}

impl Args {
    pub fn from_frame(f: &TrapFrame) -> Args {
        Args {
            nr: f.rax,
            raw: [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9],
        }
    }

    #[cfg(test)]
    pub fn new(nr: u64, raw: [u64; 6]) -> Args {
        Args { nr, raw }
    }

    /// Raw register `i` (0-based).
    pub fn raw(&self, i: usize) -> u64 {
        self.raw[i]
    }

    /// A C `int` argument (the low 32 bits, sign-extended as the C ABI passes it).
    pub fn int(&self, i: usize) -> i32 {
        self.raw[i] as u32 as i32
    }

    /// An unsigned 32-bit argument.
    pub fn u32(&self, i: usize) -> u32 {
        self.raw[i] as u32
    }

    /// A `size_t`/`unsigned long` argument.
    pub fn usize(&self, i: usize) -> usize {
        self.raw[i] as usize
    }

    /// A signed 64-bit argument (`off_t`, `long`).
    pub fn i64(&self, i: usize) -> i64 {
        self.raw[i] as i64
    }

    /// A file descriptor: negative values are `EBADF`.
    pub fn fd(&self, i: usize) -> KResult<i32> {
        let fd = self.int(i);
        if fd < 0 {
            Err(Errno::EBADF)
        } else {
            Ok(fd)
        }
    }

    /// A directory file descriptor for `*at` calls: `AT_FDCWD` or a descriptor.
    pub fn dirfd(&self, i: usize) -> DirFd {
        match self.int(i) {
            AT_FDCWD => DirFd::Cwd,
            fd => DirFd::Fd(fd),
        }
    }

    /// A pointer argument (checked when it is used).
    pub fn ptr(&self, i: usize) -> UserPtr {
        UserPtr(self.raw[i])
    }

    /// Flags that must be a subset of `known`; anything else is `EINVAL`.
    pub fn flags(&self, i: usize, known: u64) -> KResult<u64> {
        let v = self.raw[i];
        if v & !known != 0 {
            Err(Errno::EINVAL)
        } else {
            Ok(v)
        }
    }

    /// 32-bit flags that must be a subset of `known`.
    pub fn flags32(&self, i: usize, known: u32) -> KResult<u32> {
        let v = self.u32(i);
        if v & !known != 0 {
            Err(Errno::EINVAL)
        } else {
            Ok(v)
        }
    }

    /// A NUL-terminated path in application memory: `EFAULT` for a bad pointer,
    /// `ENAMETOOLONG` past `PATH_MAX`.
    pub fn path(&self, i: usize) -> KResult<Vec<u8>> {
        self.ptr(i).read_cstr(PATH_MAX - 1).map_err(|e| {
            if e == Errno::ERANGE {
                Errno::ENAMETOOLONG
            } else {
                e
            }
        })
    }
}

/// The directory a `*at` call resolves relative paths against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirFd {
    Cwd,
    Fd(i32),
}

/// An application address. Every access is range-checked and fault-safe (`EFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPtr(pub u64);

impl UserPtr {
    pub fn is_null(self) -> bool {
        self.0 == 0
    }

    pub fn addr(self) -> u64 {
        self.0
    }

    pub fn offset(self, bytes: u64) -> UserPtr {
        UserPtr(self.0.wrapping_add(bytes))
    }

    pub fn read<T: Pod>(self) -> KResult<T> {
        usercopy::read_user(self.0)
    }

    pub fn write<T: Pod>(self, v: &T) -> KResult<()> {
        usercopy::write_user(self.0, v)
    }

    pub fn read_bytes(self, len: usize) -> KResult<Vec<u8>> {
        let mut v = alloc::vec![0u8; len];
        usercopy::copy_from_user(&mut v, self.0)?;
        Ok(v)
    }

    pub fn read_into(self, buf: &mut [u8]) -> KResult<()> {
        usercopy::copy_from_user(buf, self.0)
    }

    pub fn write_bytes(self, data: &[u8]) -> KResult<()> {
        usercopy::copy_to_user(self.0, data)
    }

    pub fn read_cstr(self, max: usize) -> KResult<Vec<u8>> {
        usercopy::read_user_cstr(self.0, max)
    }

    /// Check the range without touching it (for buffers filled later).
    pub fn check(self, len: usize) -> KResult<()> {
        usercopy::check_user_range(self.0, len)
    }

    /// Read a NULL-terminated array of string pointers (argv/envp style).
    pub fn read_cstr_array(self, max_count: usize, max_total: usize) -> KResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        if self.is_null() {
            return Ok(out);
        }
        let mut total = 0;
        loop {
            let p: u64 = self.offset(out.len() as u64 * 8).read()?;
            if p == 0 {
                return Ok(out);
            }
            if out.len() >= max_count {
                return Err(Errno::E2BIG);
            }
            let s = UserPtr(p).read_cstr(max_total).map_err(|e| {
                if e == Errno::ERANGE {
                    Errno::E2BIG
                } else {
                    e
                }
            })?;
            total += s.len() + 1;
            if total > max_total {
                return Err(Errno::E2BIG);
            }
            out.push(s);
        }
    }
}

/// An I/O vector (`struct iovec`) read from application memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct IoVec {
    pub base: u64,
    pub len: u64,
}

/// Linux's `UIO_MAXIOV`.
pub const IOV_MAX: usize = 1024;

/// Read an iovec array: `EINVAL` when there are more than `IOV_MAX` entries or the total
/// length overflows `ssize_t`, `EFAULT` when the array itself is unreadable.
pub fn read_iovecs(ptr: UserPtr, count: usize) -> KResult<Vec<IoVec>> {
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut out = Vec::with_capacity(count);
    let mut total: u64 = 0;
    for i in 0..count {
        let pair: [u64; 2] = ptr.offset(i as u64 * 16).read()?;
        total = total.checked_add(pair[1]).ok_or(Errno::EINVAL)?;
        if total > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push(IoVec {
            base: pair[0],
            len: pair[1],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_the_low_32_bits_sign_extended() {
        let a = Args::new(0, [0xffff_ffff_ffff_ff9c, 0x1_0000_0005, u64::MAX, 7, 0, 0]);
        assert_eq!(a.int(0), -100);
        assert_eq!(a.dirfd(0), DirFd::Cwd);
        assert_eq!(a.int(1), 5, "upper register bits are not part of a C int");
        assert_eq!(a.dirfd(1), DirFd::Fd(5));
        assert_eq!(a.i64(2), -1);
        assert_eq!(a.usize(3), 7);
    }

    #[test]
    fn negative_descriptors_are_ebadf() {
        let a = Args::new(0, [(-1i64) as u64, 3, 0, 0, 0, 0]);
        assert_eq!(a.fd(0), Err(Errno::EBADF));
        assert_eq!(a.fd(1), Ok(3));
    }

    #[test]
    fn unknown_flag_bits_are_einval() {
        let a = Args::new(0, [0b101, 0b1000, 0, 0, 0, 0]);
        assert_eq!(a.flags(0, 0b111), Ok(0b101));
        assert_eq!(a.flags(1, 0b111), Err(Errno::EINVAL));
        assert_eq!(a.flags32(0, 0b100), Err(Errno::EINVAL));
    }

    #[test]
    fn user_pointer_arithmetic_wraps_instead_of_panicking() {
        let p = UserPtr(u64::MAX - 1).offset(8);
        assert_eq!(p.addr(), 6);
        assert!(UserPtr(0).is_null());
    }
}
