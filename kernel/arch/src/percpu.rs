//! Per-CPU data, reached through the GS base.
//!
//! The kernel owns GS for good: the application runs in ring 0 with the kernel, so a
//! `swapgs` dance would leave windows where an interrupt cannot know whose GS is live.
//! Linux programs use FS for TLS; `arch_prctl(ARCH_SET_GS)` is refused with `EINVAL`.
//! The entry stubs read the fields below at fixed offsets; keep them in sync with the
//! `OFF_*` constants (a test asserts the layout).

use core::sync::atomic::{AtomicU64, Ordering};

#[repr(C)]
pub struct PerCpu {
    /// Address of this structure (so Rust can find it from GS with one load).
    pub self_ptr: u64,
    /// Top of the current thread's kernel stack: where syscalls and traps from
    /// application code start.
    pub kstack_top: AtomicU64,
    /// Bottom of the current thread's kernel stack: an interrupted `rsp` inside
    /// `[kstack_lo, kstack_top)` means the kernel was running.
    pub kstack_lo: AtomicU64,
    /// Scratch slot for the application's `rsp` during syscall entry.
    pub user_rsp_scratch: u64,
    /// Logical CPU number.
    pub cpu_id: u64,
    /// Bytes of one vector-state save area (see [`crate::fpu`]).
    pub fpu_size: AtomicU64,
    /// Non-zero when the save areas use `xsave` rather than `fxsave`.
    pub fpu_xsave: AtomicU64,
}

pub const OFF_KSTACK_TOP: usize = 8;
pub const OFF_KSTACK_LO: usize = 16;
pub const OFF_USER_RSP: usize = 24;
pub const OFF_FPU_SIZE: usize = 40;
pub const OFF_FPU_XSAVE: usize = 48;

static mut CPU0: PerCpu = PerCpu {
    self_ptr: 0,
    kstack_top: AtomicU64::new(0),
    kstack_lo: AtomicU64::new(0),
    user_rsp_scratch: 0,
    cpu_id: 0,
    fpu_size: AtomicU64::new(crate::fpu::FXSAVE_SIZE as u64),
    fpu_xsave: AtomicU64::new(0),
};

/// Install CPU 0's per-CPU block and point GS at it. Call once, first thing at boot.
pub fn init_bsp(kstack_lo: u64, kstack_top: u64) {
    let p = &raw mut CPU0;
    // SAFETY: called once on the boot CPU before interrupts are enabled and before any
    // other code reads per-CPU data, so nothing aliases this write.
    unsafe {
        (*p).self_ptr = p as u64;
        (*p).kstack_lo.store(kstack_lo, Ordering::Relaxed);
        (*p).kstack_top.store(kstack_top, Ordering::Relaxed);
        crate::cpu::wrmsr(crate::cpu::MSR_GS_BASE, p as u64);
        crate::cpu::wrmsr(crate::cpu::MSR_KERNEL_GS_BASE, 0);
    }
}

/// This CPU's block.
#[inline]
pub fn this_cpu() -> &'static PerCpu {
    let p: u64;
    // SAFETY: GS base points at a `PerCpu` whose `self_ptr` is its own address, set by
    // `init_bsp` before any caller can run; the block lives forever.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*(p as *const PerCpu)
    }
}

/// Switch the current kernel stack (the scheduler calls this on a context switch).
pub fn set_kernel_stack(lo: u64, top: u64) {
    let c = this_cpu();
    c.kstack_lo.store(lo, Ordering::Relaxed);
    c.kstack_top.store(top, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn layout_matches_entry_stubs() {
        assert_eq!(core::mem::offset_of!(PerCpu, kstack_top), OFF_KSTACK_TOP);
        assert_eq!(core::mem::offset_of!(PerCpu, kstack_lo), OFF_KSTACK_LO);
        assert_eq!(
            core::mem::offset_of!(PerCpu, user_rsp_scratch),
            OFF_USER_RSP
        );
        assert_eq!(core::mem::offset_of!(PerCpu, fpu_size), OFF_FPU_SIZE);
        assert_eq!(core::mem::offset_of!(PerCpu, fpu_xsave), OFF_FPU_XSAVE);
    }
}
