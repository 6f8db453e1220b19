//! Single instructions: port I/O, MSRs, control registers, CPUID, TSC, halting.

use core::arch::asm;

pub const MSR_EFER: u32 = 0xC000_0080;
pub const MSR_STAR: u32 = 0xC000_0081;
pub const MSR_LSTAR: u32 = 0xC000_0082;
pub const MSR_FMASK: u32 = 0xC000_0084;
pub const MSR_FS_BASE: u32 = 0xC000_0100;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;
pub const MSR_APIC_BASE: u32 = 0x1B;

#[inline]
pub fn outb(port: u16, value: u8) {
    // SAFETY: port writes have no memory-safety effect on Rust state; callers pick ports
    // of devices this crate drives.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

#[inline]
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

#[inline]
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an architectural MSR that exists on every x86_64 CPU we boot on.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (hi as u64) << 32 | lo as u64
}

/// # Safety
/// Writing an MSR changes processor behaviour; the caller must know the write is valid.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// The operand of `lgdt`/`lidt`.
#[repr(C, packed)]
pub struct DescriptorTablePointer {
    pub limit: u16,
    pub base: u64,
}

#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (hi as u64) << 32 | lo as u64
}

/// CPUID leaf/subleaf → (eax, ebx, ecx, edx).
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

#[inline]
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

#[inline]
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Load the page-table root `root` (a physical address) into CR3, unless it is
/// already loaded (reloading would flush the TLB for nothing).
///
/// # Safety
/// `root` must be a PML4 whose upper half maps the kernel exactly as the running one
/// does (the code, stack and data in use stay mapped across the switch).
#[inline]
pub unsafe fn load_page_root(root: u64) {
    if read_cr3() & 0x000f_ffff_ffff_f000 != root {
        // SAFETY: the caller guarantees `root` maps the kernel as the current root does.
        unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) }
    }
}

/// Flush the whole TLB (non-global entries) by reloading CR3.
#[inline]
pub fn flush_tlb_all() {
    // SAFETY: reloading CR3 with its own value only drops cached translations.
    unsafe { asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags)) }
}

/// Drop the TLB entry of one page.
#[inline]
pub fn invlpg(addr: u64) {
    // SAFETY: INVLPG only drops a cached translation.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

#[inline]
pub fn interrupts_enabled() -> bool {
    let f: u64;
    // SAFETY: reading RFLAGS through the stack is harmless.
    unsafe { asm!("pushfq", "pop {}", out(reg) f, options(nomem, preserves_flags)) }
    f & (1 << 9) != 0
}

#[inline]
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before anyone calls this (see kernel init order).
    unsafe { asm!("sti", options(nomem, nostack)) }
}

#[inline]
pub fn disable_interrupts() {
    // SAFETY: masking interrupts never breaks memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Enable interrupts and halt until the next one, atomically (`sti; hlt` has no window in
/// which a wake-up interrupt could be missed).
#[inline]
pub fn enable_interrupts_and_halt() {
    // SAFETY: as for `enable_interrupts`.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) }
}

/// Run `f` with interrupts masked, restoring the previous state.
#[inline]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    disable_interrupts();
    let r = f();
    if was {
        enable_interrupts();
    }
    r
}

/// Set the FS base (the application's TLS pointer).
#[inline]
pub fn set_fs_base(v: u64) {
    // SAFETY: FS is not used by the kernel; the value is the application's to choose.
    unsafe { wrmsr(MSR_FS_BASE, v) }
}

#[inline]
pub fn fs_base() -> u64 {
    rdmsr(MSR_FS_BASE)
}

/// Halt forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping the CPU is always safe.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// CPU features the kernel and the auxiliary vector care about.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    pub hwcap: u32,
    pub rdrand: bool,
    pub fsgsbase: bool,
    pub vendor: [u8; 12],
    pub brand: [u8; 48],
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub flags_ecx: u32,
    pub flags_edx: u32,
}

pub fn features() -> Features {
    let (_, b, c, d) = cpuid(0, 0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&b.to_le_bytes());
    vendor[4..8].copy_from_slice(&d.to_le_bytes());
    vendor[8..].copy_from_slice(&c.to_le_bytes());
    let (a1, _, c1, d1) = cpuid(1, 0);
    let (_, b7, _, _) = cpuid(7, 0);
    let (maxext, _, _, _) = cpuid(0x8000_0000, 0);
    let mut brand = [0u8; 48];
    if maxext >= 0x8000_0004 {
        for i in 0..3u32 {
            let (a, b, c, d) = cpuid(0x8000_0002 + i, 0);
            for (j, w) in [a, b, c, d].iter().enumerate() {
                let off = (i as usize) * 16 + j * 4;
                brand[off..off + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
    }
    let base_family = (a1 >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((a1 >> 20) & 0xff)
    } else {
        base_family
    };
    let model = ((a1 >> 4) & 0xf)
        | if base_family >= 6 {
            ((a1 >> 16) & 0xf) << 4
        } else {
            0
        };
    Features {
        hwcap: d1,
        rdrand: c1 & (1 << 30) != 0,
        fsgsbase: b7 & 1 != 0,
        vendor,
        brand,
        family,
        model,
        stepping: a1 & 0xf,
        flags_ecx: c1,
        flags_edx: d1,
    }
}

/// A hardware random number (RDRAND), if the CPU has it and it delivers.
pub fn rdrand() -> Option<u64> {
    for _ in 0..10 {
        let v: u64;
        let ok: u8;
        // SAFETY: RDRAND is only executed after callers checked `features().rdrand`.
        unsafe {
            asm!("rdrand {}", "setc {}", out(reg) v, out(reg_byte) ok, options(nomem, nostack))
        }
        if ok != 0 {
            return Some(v);
        }
    }
    None
}
