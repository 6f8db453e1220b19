//! x87/SSE/AVX register state: which save format the CPU offers and how big it is.
//!
//! The entry stubs save the application's vector state on the thread's kernel stack
//! around every Rust handler, so that state follows the thread through context switches
//! and is where signal delivery finds it. `xsave` is used when CPUID offers it (then
//! XCR0 enables x87, SSE and, if present, AVX — the 256-bit registers glibc's string
//! functions use); otherwise `fxsave`, which covers x87 and SSE. AVX-512 is left off:
//! its 2.5 KiB of state would triple every kernel-stack frame for registers that the
//! programs we run rarely need, and without it in XCR0 libc does not use them.

use crate::cpu::cpuid;
use crate::percpu::this_cpu;
use core::sync::atomic::Ordering;

/// XCR0 bits: x87, SSE, AVX.
const XFEATURE_X87: u64 = 1;
const XFEATURE_SSE: u64 = 2;
const XFEATURE_AVX: u64 = 4;
const CR4_OSXSAVE: u64 = 1 << 18;

/// Size of the legacy `fxsave` image.
pub const FXSAVE_SIZE: usize = 512;

/// How the application's vector state is saved on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuFormat {
    /// `xsave` (standard, non-compacted format) rather than `fxsave`.
    pub xsave: bool,
    /// Bytes of one save area.
    pub size: usize,
    /// Components enabled in XCR0 (0b11 for `fxsave`).
    pub xfeatures: u64,
}

/// Pick the save format and enable it (OSXSAVE, XCR0). Once per CPU, before interrupts
/// are enabled and before any application code runs.
pub fn init() -> FpuFormat {
    let (_, _, ecx1, _) = cpuid(1, 0);
    let has_xsave = ecx1 & (1 << 26) != 0;
    let has_avx = ecx1 & (1 << 28) != 0;
    let format = if has_xsave {
        let xcr0 = XFEATURE_X87 | XFEATURE_SSE | if has_avx { XFEATURE_AVX } else { 0 };
        // SAFETY: CPUID says XSAVE exists, so CR4.OSXSAVE may be set, and XCR0 gets only
        // components CPUID reports (x87 and SSE always, AVX when its bit is set).
        unsafe {
            let cr4: u64;
            core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
            core::arch::asm!("mov cr4, {}", in(reg) cr4 | CR4_OSXSAVE, options(nomem, nostack));
            core::arch::asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32,
                options(nomem, nostack));
        }
        // EBX of leaf 0xD reports the size for the components enabled right now.
        let (_, ebx, _, _) = cpuid(0xd, 0);
        FpuFormat {
            xsave: true,
            size: (ebx as usize).max(FXSAVE_SIZE + 64),
            xfeatures: xcr0,
        }
    } else {
        FpuFormat {
            xsave: false,
            size: FXSAVE_SIZE,
            xfeatures: XFEATURE_X87 | XFEATURE_SSE,
        }
    };
    let cpu = this_cpu();
    cpu.fpu_size.store(format.size as u64, Ordering::Relaxed);
    cpu.fpu_xsave.store(format.xsave as u64, Ordering::Relaxed);
    FORMAT.call_once(|| format);
    format
}

static FORMAT: spin::Once<FpuFormat> = spin::Once::new();

/// The save format chosen by [`init`] (`fxsave` before it ran).
pub fn format() -> FpuFormat {
    FORMAT.get().copied().unwrap_or(FpuFormat {
        xsave: false,
        size: FXSAVE_SIZE,
        xfeatures: XFEATURE_X87 | XFEATURE_SSE,
    })
}

/// Write Linux's initial FPU state (what a new program and a signal handler start
/// with) into a save area of `format().size` bytes: FCW 0x37F, MXCSR 0x1F80, all
/// registers zero, and for `xsave` an empty XSTATE_BV (every component in init state).
pub fn write_init_state(area: &mut [u8]) {
    area.fill(0);
    area[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
    area[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    area[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
}
