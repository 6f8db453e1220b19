//! The Linux x86_64 signal-frame ABI.
//!
//! This module owns the byte layout of everything the kernel and a signal handler
//! exchange through application memory: `siginfo_t` ([`SigInfo`]), `stack_t`
//! ([`AltStack`]), `struct ucontext` and `struct sigcontext` ([`UContext`],
//! [`SigContext`]), the FPU image in a frame (an `fxsave` image, or an `xsave` image
//! tagged with `struct _fpx_sw_bytes` and `FP_XSTATE_MAGIC2`), and the `rt_sigframe`
//! that ties them together. [`build`] lays a frame out for delivery;
//! [`parse_sigcontext`], [`fpstate_len`] and [`restore_fpu`] take one apart for
//! `rt_sigreturn`.
//!
//! It is pure: it computes bytes and addresses, and the caller copies them to and from
//! the application with its usual pointer checks. Layout and semantics follow Linux's
//! `arch/x86/kernel/signal.c`, `signal_64.c`, `fpu/signal.c` and the uapi headers, so
//! libc's `ucontext_t`, unwinders, and programs that edit the context in a handler
//! work unchanged.
//!
//! Where Skiff differs, it is because the application runs in ring 0: the frame records
//! the kernel's selectors (`cs` 0x08, `ss` 0x10) instead of Linux's user ones, a page
//! fault's error code gets the "user mode" bit the CPU did not set, and `rt_sigreturn`
//! refuses a context that would resume outside the application's half (Linux lets the
//! `iret` fault instead). A hostile FPU image is sanitised rather than refused (as Linux
//! did before 5.x), so restoring it can never make `xrstor`/`fxrstor` fault in the
//! kernel.

use super::state::{SigSet, UNBLOCKABLE};
use alloc::vec;
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};
use skiff_arch::gdt::{KERNEL_CS, KERNEL_DS};
use skiff_arch::layout::USER_END;
use skiff_arch::TrapFrame;
use skiff_errno::{Errno, KResult};

/// How the kernel saves the application's FPU state (chosen at boot by `skiff_arch`).
pub use skiff_arch::fpu::FpuFormat;

// ----- siginfo_t -----------------------------------------------------------------------

/// Bytes of a `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;
/// Offset of the union (`_sifields`) in `siginfo_t`: after signo, errno, code and
/// padding to 8.
const SIFIELDS: usize = 16;
/// Bytes of the union that Linux keeps (`struct kernel_siginfo` is 48 bytes); it writes
/// the rest of a `siginfo_t` as zeros.
const SIFIELDS_KEPT: usize = 32;
const SIGINFO_KEPT: usize = SIFIELDS + SIFIELDS_KEPT;

// Field offsets inside `siginfo_t`, per union member.
const SI_PID: usize = 16; // _kill, _rt, _sigchld
const SI_UID: usize = 20;
const SI_VALUE: usize = 24; // _rt, _timer (sigval_t, 8 bytes)
const SI_STATUS: usize = 24; // _sigchld
const SI_UTIME: usize = 32;
const SI_STIME: usize = 40;
const SI_ADDR: usize = 16; // _sigfault
const SI_TID: usize = 16; // _timer
const SI_OVERRUN: usize = 20;

/// `si_code`: sent by `kill`.
pub const SI_USER: i32 = 0;
/// `si_code`: sent by the kernel without more detail.
pub const SI_KERNEL: i32 = 0x80;
/// `si_code`: sent by `sigqueue` (`rt_sigqueueinfo`).
pub const SI_QUEUE: i32 = -1;
/// `si_code`: a POSIX timer expired.
pub const SI_TIMER: i32 = -2;
/// `si_code`: sent by `tkill`/`tgkill`.
pub const SI_TKILL: i32 = -6;
const SI_DETHREAD: i32 = -7;
const SI_ASYNCNL: i32 = -60;

pub const ILL_ILLOPC: i32 = 1;
pub const ILL_ILLOPN: i32 = 2;
pub const ILL_PRVOPC: i32 = 5;
pub const FPE_INTDIV: i32 = 1;
pub const FPE_INTOVF: i32 = 2;
pub const FPE_FLTDIV: i32 = 3;
pub const FPE_FLTOVF: i32 = 4;
pub const FPE_FLTUND: i32 = 5;
pub const FPE_FLTRES: i32 = 6;
pub const FPE_FLTINV: i32 = 7;
pub const FPE_FLTSUB: i32 = 8;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRALN: i32 = 1;
pub const BUS_ADRERR: i32 = 2;
pub const TRAP_BRKPT: i32 = 1;
pub const TRAP_TRACE: i32 = 2;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_TRAPPED: i32 = 4;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// A `siginfo_t`, kept as Linux keeps it (`struct kernel_siginfo`): the header and the
/// first 32 bytes of the union, whose live member depends on `signo` and `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    /// Bytes 16..48 of the `siginfo_t`; use the constructors and accessors.
    pub fields: [u8; SIFIELDS_KEPT],
}

impl SigInfo {
    /// No signal (signo 0): filler for preallocated queues.
    pub const EMPTY: SigInfo = SigInfo {
        signo: 0,
        errno: 0,
        code: 0,
        fields: [0; SIFIELDS_KEPT],
    };

    const fn header(signo: i32, code: i32) -> Self {
        SigInfo {
            signo,
            errno: 0,
            code,
            fields: [0; SIFIELDS_KEPT],
        }
    }

    /// Sent by a process: `kill` (`SI_USER`), `tkill`/`tgkill` (`SI_TKILL`), with the
    /// sender's pid and uid.
    pub fn user(sig: i32, code: i32, pid: i32, uid: u32) -> Self {
        let mut i = Self::header(sig, code);
        i.put(SI_PID, &pid.to_le_bytes());
        i.put(SI_UID, &uid.to_le_bytes());
        i
    }

    /// Sent by `sigqueue` with a `sigval` (`SI_QUEUE`).
    pub fn queue(sig: i32, pid: i32, uid: u32, value: u64) -> Self {
        let mut i = Self::user(sig, SI_QUEUE, pid, uid);
        i.put(SI_VALUE, &value.to_le_bytes());
        i
    }

    /// Sent by the kernel with no further detail (`SI_KERNEL`), e.g. the `SIGSEGV` for
    /// a frame that could not be written.
    pub fn kernel(sig: i32) -> Self {
        Self::header(sig, SI_KERNEL)
    }

    /// A fault in the application's code: `code` is e.g. [`SEGV_MAPERR`], `addr` the
    /// faulting address (`si_addr`).
    pub fn fault(sig: i32, code: i32, addr: u64) -> Self {
        let mut i = Self::header(sig, code);
        i.put(SI_ADDR, &addr.to_le_bytes());
        i
    }

    /// A POSIX timer expired (`SI_TIMER`): kernel timer id, overrun count, and the
    /// `sigev_value` the timer was created with.
    pub fn timer(sig: i32, timer_id: i32, overrun: i32, value: u64) -> Self {
        let mut i = Self::header(sig, SI_TIMER);
        i.put(SI_TID, &timer_id.to_le_bytes());
        i.put(SI_OVERRUN, &overrun.to_le_bytes());
        i.put(SI_VALUE, &value.to_le_bytes());
        i
    }

    /// `SIGCHLD` for a child that changed state (`code` is [`CLD_EXITED`] etc.);
    /// `status` is the exit code or signal, times are in clock ticks.
    pub fn child(code: i32, pid: i32, uid: u32, status: i32, utime: i64, stime: i64) -> Self {
        let mut i = Self::user(super::state::SIGCHLD as i32, code, pid, uid);
        i.put(SI_STATUS, &status.to_le_bytes());
        i.put(SI_UTIME, &utime.to_le_bytes());
        i.put(SI_STIME, &stime.to_le_bytes());
        i
    }

    /// Decode a `siginfo_t` as stored. Bytes past the 48 Linux keeps are dropped.
    pub fn from_bytes(b: &[u8; SIGINFO_SIZE]) -> Self {
        let mut fields = [0; SIFIELDS_KEPT];
        fields.copy_from_slice(&b[SIFIELDS..SIGINFO_KEPT]);
        SigInfo {
            signo: get_i32(b, 0),
            errno: get_i32(b, 4),
            code: get_i32(b, 8),
            fields,
        }
    }

    /// Decode the `siginfo_t` an application passed to `rt_sigqueueinfo` or
    /// `rt_tgsigqueueinfo` for signal `sig`, as Linux does: `si_signo` is replaced by
    /// `sig`, and for an `si_code` whose layout Linux does not know, the bytes it would
    /// drop must be zero (`E2BIG` otherwise), so the receiver gets exactly what was
    /// sent. Whether the sender may use that `si_code` is [`Self::impersonates`].
    pub fn from_user(sig: i32, b: &[u8; SIGINFO_SIZE]) -> KResult<Self> {
        let mut info = Self::from_bytes(b);
        info.signo = sig;
        if !known_layout(sig, info.code) && b[SIGINFO_KEPT..].iter().any(|&x| x != 0) {
            return Err(Errno::E2BIG);
        }
        Ok(info)
    }

    /// The `siginfo_t` bytes to copy to the application.
    pub fn to_bytes(&self) -> [u8; SIGINFO_SIZE] {
        let mut b = [0; SIGINFO_SIZE];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[4..8].copy_from_slice(&self.errno.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        b[SIFIELDS..SIGINFO_KEPT].copy_from_slice(&self.fields);
        b
    }

    /// The signal number as the kernel indexes signals (0 if `signo` is negative).
    pub fn sig(&self) -> usize {
        usize::try_from(self.signo).unwrap_or(0)
    }

    /// Whether the kernel generated this signal (`SI_FROMKERNEL`: a positive code).
    pub fn is_from_kernel(&self) -> bool {
        self.code > 0
    }

    /// Whether this siginfo claims to come from the kernel or from `kill`/`tkill`,
    /// which `rt_sigqueueinfo` refuses (`EPERM`) unless a process signals itself.
    pub fn impersonates(&self) -> bool {
        self.code >= 0 || self.code == SI_TKILL
    }

    /// `si_pid` (kill, queue, tkill, child forms).
    pub fn pid(&self) -> i32 {
        self.get_i32(SI_PID)
    }

    /// `si_uid` (kill, queue, tkill, child forms).
    pub fn uid(&self) -> u32 {
        self.get_i32(SI_UID) as u32
    }

    /// `si_value` (queue and timer forms).
    pub fn value(&self) -> u64 {
        self.get_u64(SI_VALUE)
    }

    /// `si_addr` (fault form).
    pub fn addr(&self) -> u64 {
        self.get_u64(SI_ADDR)
    }

    /// `si_tid`: the kernel's timer id (timer form).
    pub fn timer_id(&self) -> i32 {
        self.get_i32(SI_TID)
    }

    /// `si_overrun` (timer form).
    pub fn overrun(&self) -> i32 {
        self.get_i32(SI_OVERRUN)
    }

    /// Update `si_overrun` (timer form): Linux reports the overruns counted up to the
    /// moment of delivery.
    pub fn set_overrun(&mut self, overrun: i32) {
        self.put(SI_OVERRUN, &overrun.to_le_bytes());
    }

    /// Write `bytes` at `off` of the `siginfo_t` (`off` >= 16, inside the kept union).
    fn put(&mut self, off: usize, bytes: &[u8]) {
        let at = off - SIFIELDS;
        self.fields[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn get_i32(&self, off: usize) -> i32 {
        get_i32(&self.fields, off - SIFIELDS)
    }

    fn get_u64(&self, off: usize) -> u64 {
        get_u64(&self.fields, off - SIFIELDS)
    }
}

/// Linux's `known_siginfo_layout`: codes whose union member the kernel knows, so it
/// can drop the bytes past `struct kernel_siginfo` without losing anything.
fn known_layout(sig: i32, code: i32) -> bool {
    use super::state::{SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGIO, SIGSEGV, SIGSYS, SIGTRAP};
    /// Highest `si_code` of the generic `SIGPOLL` set (`NSIGPOLL`).
    const NSIGPOLL: i32 = 6;
    // (signal, highest code): NSIGILL, NSIGFPE, NSIGSEGV, NSIGBUS, NSIGTRAP, NSIGCHLD,
    // NSIGPOLL, NSIGSYS as of Linux 6.x.
    const SPECIFIC: [(usize, i32); 8] = [
        (SIGILL, 11),
        (SIGFPE, 15),
        (SIGSEGV, 10),
        (SIGBUS, 5),
        (SIGTRAP, 6),
        (SIGCHLD, 6),
        (SIGIO, NSIGPOLL),
        (SIGSYS, 2),
    ];
    if code == SI_KERNEL {
        true
    } else if code > SI_USER {
        match SPECIFIC.iter().find(|(s, _)| *s as i32 == sig) {
            Some(&(_, limit)) => code <= limit,
            None => code <= NSIGPOLL,
        }
    } else {
        code >= SI_DETHREAD || code == SI_ASYNCNL
    }
}

// ----- stack_t -------------------------------------------------------------------------

/// `ss_flags`: the thread is running on its alternate stack (reported, or accepted as 0).
pub const SS_ONSTACK: u32 = 1;
/// `ss_flags`: no alternate stack.
pub const SS_DISABLE: u32 = 2;
/// `ss_flags`: disarm the alternate stack while a handler runs on it.
pub const SS_AUTODISARM: u32 = 1 << 31;

/// An alternate signal stack, laid out as `stack_t` (`ss_sp` @0, `ss_flags` @8,
/// `ss_size` @16). As a thread's setting, `flags` is what `sigaltstack` stored
/// (`SS_DISABLE`, `SS_AUTODISARM` or 0), which is also what a frame saves.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub flags: u32,
    pub size: u64,
}

/// Bytes of a `stack_t`.
pub const STACK_T_SIZE: usize = size_of::<AltStack>();

impl AltStack {
    /// No alternate stack (a new thread's setting).
    pub const fn disabled() -> Self {
        AltStack {
            sp: 0,
            flags: SS_DISABLE,
            size: 0,
        }
    }

    pub fn from_bytes(b: &[u8; STACK_T_SIZE]) -> Self {
        AltStack {
            sp: get_u64(b, offset_of!(AltStack, sp)),
            flags: get_i32(b, offset_of!(AltStack, flags)) as u32,
            size: get_u64(b, offset_of!(AltStack, size)),
        }
    }

    pub fn to_bytes(&self) -> [u8; STACK_T_SIZE] {
        let mut b = [0; STACK_T_SIZE];
        put(&mut b, offset_of!(AltStack, sp), self.sp);
        put(&mut b, offset_of!(AltStack, flags), self.flags);
        put(&mut b, offset_of!(AltStack, size), self.size);
        b
    }

    /// Whether there is an alternate stack to switch to.
    pub fn is_enabled(&self) -> bool {
        self.flags & SS_DISABLE == 0 && self.size != 0
    }

    /// One past the highest byte of the stack, if that does not wrap.
    pub fn top(&self) -> Option<u64> {
        self.sp.checked_add(self.size)
    }

    /// Whether `sp` lies on the stack (Linux's `__on_sig_stack`). The range is
    /// `(base, base + size]` because a stack pointer at the top has pushed nothing yet.
    pub fn contains(&self, sp: u64) -> bool {
        sp > self.sp && sp - self.sp <= self.size
    }

    /// Whether a thread with stack pointer `sp` counts as running on this stack (Linux's
    /// `on_sig_stack`). With `SS_AUTODISARM` it never does: the stack is disarmed while
    /// in use, so being "on" it means the program re-armed it deliberately, and a
    /// corrupt `sp` near its top must not stop the next signal from using it.
    pub fn on_stack(&self, sp: u64) -> bool {
        self.flags & SS_AUTODISARM == 0 && self.contains(sp)
    }

    /// The `ss_flags` that `sigaltstack` reports for a thread at `sp`: `SS_DISABLE`,
    /// `SS_ONSTACK` or 0, plus `SS_AUTODISARM` if set.
    pub fn reported_flags(&self, sp: u64) -> u32 {
        let state = if self.size == 0 {
            SS_DISABLE
        } else if self.on_stack(sp) {
            SS_ONSTACK
        } else {
            0
        };
        state | (self.flags & SS_AUTODISARM)
    }
}

// ----- sigcontext, ucontext, rt_sigframe ---------------------------------------------

/// `struct sigcontext` (64-bit), i.e. `uc_mcontext`. A layout description: frames are
/// built and parsed as bytes at the offsets of these fields.
#[repr(C)]
pub struct SigContext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u16,
    pub gs: u16,
    pub fs: u16,
    pub ss: u16,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    /// Address of the FPU image (0: none, restore the initial state).
    pub fpstate: u64,
    pub reserved1: [u64; 8],
}

/// `struct ucontext` (layout description, see [`SigContext`]).
#[repr(C)]
pub struct UContext {
    pub uc_flags: u64,
    pub uc_link: u64,
    pub uc_stack: AltStack,
    pub uc_mcontext: SigContext,
    pub uc_sigmask: u64,
}

/// `struct rt_sigframe` (layout description): what `rsp` points at when a handler
/// starts. The FPU image follows it, 64-byte aligned, above.
#[repr(C)]
pub struct RtSigframe {
    /// The restorer's address: the handler's return address.
    pub pretcode: u64,
    pub uc: UContext,
    /// `siginfo_t` (8-byte aligned, as its union holds pointers).
    pub info: [u64; SIGINFO_SIZE / 8],
}

/// Bytes `rt_sigreturn` reads at `rsp - 8`.
pub const RT_SIGFRAME_SIZE: usize = size_of::<RtSigframe>();

/// `struct _fpx_sw_bytes`: the software-reserved tail of the `fxsave` area, through which
/// a frame says it holds an `xsave` image and how big it is.
#[repr(C)]
pub struct FpxSwBytes {
    pub magic1: u32,
    /// Bytes of the whole image in the frame, `FP_XSTATE_MAGIC2` included.
    pub extended_size: u32,
    /// Components the image may hold (XCR0).
    pub xfeatures: u64,
    /// Bytes of the `xsave` image proper; `FP_XSTATE_MAGIC2` follows it.
    pub xstate_size: u32,
    pub padding: [u32; 7],
}

/// `uc_flags`: the FPU image is in `xsave` format.
pub const UC_FP_XSTATE: u64 = 1;
/// `uc_flags`: `ss` in the sigcontext is meaningful.
pub const UC_SIGCONTEXT_SS: u64 = 2;
/// `uc_flags`: `rt_sigreturn` restores `ss` as saved.
pub const UC_STRICT_RESTORE_SS: u64 = 4;

/// `FP_XSTATE_MAGIC1`, in `_fpx_sw_bytes.magic1`.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// `FP_XSTATE_MAGIC2`, right after the `xsave` image.
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const FP_XSTATE_MAGIC2_SIZE: usize = 4;

/// Bytes below the interrupted `rsp` that leaf functions may use (the System V red
/// zone); a frame on the same stack goes below it.
pub const RED_ZONE: u64 = 128;
/// Lowest address a frame may use: the first page is never the application's.
const MIN_FRAME_ADDR: u64 = 0x1000;

// rflags bits.
const FLAG_CF: u64 = 1 << 0;
const FLAG_FIXED: u64 = 1 << 1;
const FLAG_PF: u64 = 1 << 2;
const FLAG_AF: u64 = 1 << 4;
const FLAG_ZF: u64 = 1 << 6;
const FLAG_SF: u64 = 1 << 7;
const FLAG_TF: u64 = 1 << 8;
const FLAG_IF: u64 = 1 << 9;
const FLAG_DF: u64 = 1 << 10;
const FLAG_OF: u64 = 1 << 11;
const FLAG_RF: u64 = 1 << 16;
const FLAG_AC: u64 = 1 << 18;
/// Flags a frame may change (Linux's `FIX_EFLAGS`). Everything else comes from the
/// kernel: in particular IF (the ring-0 application must not resume with interrupts
/// off) and NT (an `iretq` with NT set faults in long mode).
const FIX_EFLAGS: u64 = FLAG_AC
    | FLAG_OF
    | FLAG_DF
    | FLAG_TF
    | FLAG_SF
    | FLAG_ZF
    | FLAG_AF
    | FLAG_PF
    | FLAG_CF
    | FLAG_RF;

/// Page-fault error code bits Linux reports that a ring-0 access lacks.
const PF_PROT: u64 = 1 << 0;
const PF_USER: u64 = 1 << 2;
const VECTOR_PAGE_FAULT: u64 = 14;
/// Vectors below this are exceptions, which set `trapno`/`err`.
const FIRST_IRQ_VECTOR: u64 = 32;

// ----- FPU image ---------------------------------------------------------------------

/// Bytes of an `fxsave` image (the legacy area of an `xsave` image).
const FXSAVE_SIZE: usize = 512;
/// Bytes of the `xsave` header that follows the legacy area.
const XSAVE_HEADER_SIZE: usize = 64;
const XSAVE_MIN_SIZE: usize = FXSAVE_SIZE + XSAVE_HEADER_SIZE;
/// Sanity bound on a save area (AMX-era CPUs need about 11 KiB).
const XSAVE_MAX_SIZE: usize = 64 << 10;

// Offsets in the legacy area.
const FX_FCW: usize = 0;
const FX_MXCSR: usize = 24;
const FX_MXCSR_MASK: usize = 28;
/// x87 control state other than FCW: FSW, abridged FTW, FOP, FIP, FDP.
const FX_X87_CONTROL: core::ops::Range<usize> = 2..24;
const FX_ST: core::ops::Range<usize> = 32..160;
const FX_XMM: core::ops::Range<usize> = 160..416;
/// `sw_reserved`: where [`FpxSwBytes`] lives.
const FX_SW_RESERVED: usize = 464;
// Offsets in the xsave header.
const XSTATE_BV: usize = FXSAVE_SIZE;
const XCOMP_BV: usize = FXSAVE_SIZE + 8;

const XFEATURE_X87: u64 = 1 << 0;
const XFEATURE_SSE: u64 = 1 << 1;
/// Components a frame may bring back: those `xrstor` loads whatever their bytes (x87,
/// SSE, AVX, the AVX-512 trio, PKRU). Others (MPX bounds config, AMX tile config) can
/// fault on bad contents and are put in their initial state instead. Skiff enables
/// only x87, SSE and AVX today.
const FRAME_XFEATURES: u64 = 0b10_1110_0111;

/// Linux's initial x87 control word (all exceptions masked, 64-bit precision).
const FCW_INIT: u16 = 0x037f;
/// Linux's initial MXCSR (all exceptions masked, round to nearest).
const MXCSR_INIT: u32 = 0x1f80;
/// MXCSR bits to allow when the CPU reports a zero MXCSR_MASK (no DAZ).
const MXCSR_MASK_DEFAULT: u32 = 0xffbf;

fn check_format(fmt: &FpuFormat) -> KResult<()> {
    let ok = if fmt.xsave {
        (XSAVE_MIN_SIZE..=XSAVE_MAX_SIZE).contains(&fmt.size)
            && fmt.xfeatures & (XFEATURE_X87 | XFEATURE_SSE) == XFEATURE_X87 | XFEATURE_SSE
    } else {
        fmt.size == FXSAVE_SIZE
    };
    if ok {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Bytes the FPU image takes in a frame (`xstate_sigframe_size`): the save area, plus
/// `FP_XSTATE_MAGIC2` for `xsave`.
pub fn frame_fpstate_size(fmt: &FpuFormat) -> usize {
    if fmt.xsave {
        fmt.size + FP_XSTATE_MAGIC2_SIZE
    } else {
        FXSAVE_SIZE
    }
}

/// The MXCSR bits a restored image may set. The kernel's save area holds the mask the
/// CPU wrote (`fxsave`/`xsave` store it), unlike a frame, whose copy is the
/// application's to forge.
fn trusted_mxcsr_mask(area: &[u8]) -> u32 {
    match get_u32(area, FX_MXCSR_MASK) {
        0 => MXCSR_MASK_DEFAULT,
        mask => mask,
    }
}

/// Write Linux's initial FPU state into the kernel save area `dest` (its first
/// `fmt.size` bytes): FCW 0x37F, MXCSR 0x1F80, everything else zero; for `xsave` an
/// empty XSTATE_BV, so every component starts in its init state. This is what a
/// signal handler starts with, and what `rt_sigreturn` restores when the frame has no
/// FPU image. The MXCSR_MASK the CPU stored in `dest` is kept. A `dest` shorter than
/// `fmt.size` (a kernel bug) is filled as far as it goes, never overrun.
pub fn init_fpu(fmt: &FpuFormat, dest: &mut [u8]) {
    let len = fmt.size.min(dest.len());
    let dest = &mut dest[..len];
    if len < FXSAVE_SIZE {
        dest.fill(0);
        return;
    }
    let mask = trusted_mxcsr_mask(dest);
    dest.fill(0);
    put(dest, FX_FCW, FCW_INIT);
    put(dest, FX_MXCSR, MXCSR_INIT);
    put(dest, FX_MXCSR_MASK, mask);
}

/// Copy the kernel's save area into the frame's FPU image (`dst`, of
/// [`frame_fpstate_size`] bytes), as `copy_fpstate_to_sigframe` lays it out.
fn write_fpstate(dst: &mut [u8], src: &[u8], fmt: &FpuFormat) {
    dst[..fmt.size].copy_from_slice(&src[..fmt.size]);
    if !fmt.xsave {
        // fxsave leaves sw_reserved alone; whatever is there must not look like an
        // xsave tag to a later rt_sigreturn.
        dst[FX_SW_RESERVED..FXSAVE_SIZE].fill(0);
        return;
    }
    // Linux always marks x87 and SSE present, so that a program that edits the legacy
    // area without knowing about XSTATE_BV gets its edits restored. A component the
    // CPU reported in its init state may have stale bytes: write the init values.
    let bv = get_u64(dst, XSTATE_BV);
    if bv & XFEATURE_X87 == 0 {
        put(dst, FX_FCW, FCW_INIT);
        dst[FX_X87_CONTROL].fill(0);
        dst[FX_ST].fill(0);
    }
    if bv & XFEATURE_SSE == 0 {
        dst[FX_XMM].fill(0);
    }
    put(dst, XSTATE_BV, bv | XFEATURE_X87 | XFEATURE_SSE);
    // The standard format has no XCOMP_BV, and the rest of the header is reserved.
    dst[XCOMP_BV..XSAVE_MIN_SIZE].fill(0);

    let sw = &mut dst[FX_SW_RESERVED..FXSAVE_SIZE];
    sw.fill(0);
    put(sw, offset_of!(FpxSwBytes, magic1), FP_XSTATE_MAGIC1);
    let extended = (fmt.size + FP_XSTATE_MAGIC2_SIZE) as u32;
    put(sw, offset_of!(FpxSwBytes, extended_size), extended);
    put(sw, offset_of!(FpxSwBytes, xfeatures), fmt.xfeatures);
    put(sw, offset_of!(FpxSwBytes, xstate_size), fmt.size as u32);
    put(dst, fmt.size, FP_XSTATE_MAGIC2);
}

/// The `xsave` image size a frame's FPU image declares, if its `_fpx_sw_bytes` pass
/// Linux's `check_xstate_in_sigframe` (magic1, and `xstate_size` between the header's
/// end and both the kernel's size and `extended_size`). `None` means: treat it as a
/// plain `fxsave` image.
fn declared_xstate_size(legacy: &[u8], fmt: &FpuFormat) -> Option<usize> {
    if !fmt.xsave {
        return None;
    }
    let sw = legacy.get(FX_SW_RESERVED..FXSAVE_SIZE)?;
    let magic1 = get_u32(sw, offset_of!(FpxSwBytes, magic1));
    let extended = get_u32(sw, offset_of!(FpxSwBytes, extended_size)) as usize;
    let size = get_u32(sw, offset_of!(FpxSwBytes, xstate_size)) as usize;
    (magic1 == FP_XSTATE_MAGIC1 && (XSAVE_MIN_SIZE..=fmt.size).contains(&size) && size <= extended)
        .then_some(size)
}

/// How many bytes `rt_sigreturn` must read at the frame's `fpstate` address, given the
/// first 512 (the legacy area): 512 for an `fxsave` image, or the declared `xsave`
/// image plus `FP_XSTATE_MAGIC2` (at most `fmt.size + 4`).
pub fn fpstate_len(legacy: &[u8], fmt: &FpuFormat) -> usize {
    match declared_xstate_size(legacy, fmt) {
        Some(size) => size + FP_XSTATE_MAGIC2_SIZE,
        None => FXSAVE_SIZE,
    }
}

/// Validate a frame's FPU image (`src`: the [`fpstate_len`] bytes read at its
/// `fpstate` address) and copy it into the kernel save area `dest` (`fmt.size` bytes),
/// in a form `xrstor`/`fxrstor` cannot fault on:
/// - a well-tagged `xsave` image (magic1, sizes, magic2 right after it) is copied with
///   XSTATE_BV limited to the components the tag, the CPU and [`FRAME_XFEATURES`]
///   allow; the rest of `dest` (components the image did not cover) is zero;
/// - anything else is taken as an `fxsave` image: x87 and SSE from it, every other
///   component in its init state (Linux's "fx_only" restore);
/// - XCOMP_BV and the reserved header bytes are zeroed, MXCSR is masked with the
///   CPU's MXCSR_MASK (read from `dest` before it is overwritten, and kept).
///
/// `EFAULT` if `src` is shorter than the legacy area; `EINVAL` if `fmt` or `dest` do
/// not describe a save area (a kernel bug).
pub fn restore_fpu(src: &[u8], fmt: &FpuFormat, dest: &mut [u8]) -> KResult<()> {
    check_format(fmt)?;
    let dest = dest.get_mut(..fmt.size).ok_or(Errno::EINVAL)?;
    let legacy = src.get(..FXSAVE_SIZE).ok_or(Errno::EFAULT)?;
    let mask = trusted_mxcsr_mask(dest);

    // The tag counts only if magic2 follows the declared image: a program that copied
    // just the legacy area (tag included) must not have garbage loaded as AVX state.
    let xstate = declared_xstate_size(legacy, fmt).filter(|&size| {
        src.get(size..size + FP_XSTATE_MAGIC2_SIZE)
            .is_some_and(|m| get_u32(m, 0) == FP_XSTATE_MAGIC2)
    });
    dest.fill(0);
    match xstate {
        Some(size) => {
            dest[..size].copy_from_slice(&src[..size]);
            let sw = &legacy[FX_SW_RESERVED..FXSAVE_SIZE];
            let tagged = get_u64(sw, offset_of!(FpxSwBytes, xfeatures));
            let bv = get_u64(dest, XSTATE_BV) & tagged & fmt.xfeatures & FRAME_XFEATURES;
            put(dest, XSTATE_BV, bv);
            dest[XCOMP_BV..XSAVE_MIN_SIZE].fill(0);
        }
        None => {
            dest[..FXSAVE_SIZE].copy_from_slice(legacy);
            if fmt.xsave {
                let bv = (XFEATURE_X87 | XFEATURE_SSE) & fmt.xfeatures;
                put(dest, XSTATE_BV, bv);
            }
        }
    }
    // Software-only bytes: keep the frame's tag out of the kernel's state.
    dest[FX_SW_RESERVED..FXSAVE_SIZE].fill(0);
    let mxcsr = get_u32(dest, FX_MXCSR) & mask;
    put(dest, FX_MXCSR, mxcsr);
    put(dest, FX_MXCSR_MASK, mask);
    Ok(())
}

// ----- delivery ----------------------------------------------------------------------

/// Where a handler's frame goes (Linux's `get_sigframe` stack choice): below the red
/// zone of the interrupted stack, or at the top of the alternate stack when the action
/// has `SA_ONSTACK`, one is set up, and the thread is not already on it. Pass the
/// result as `stack_top` to [`build`].
pub fn signal_stack_top(rsp: u64, altstack: &AltStack, sa_onstack: bool) -> u64 {
    // A nonsense rsp wraps here and is refused by `build` (the caller's SIGSEGV).
    let sp = rsp.wrapping_sub(RED_ZONE);
    if sa_onstack && altstack.is_enabled() && !altstack.on_stack(sp) {
        if let Some(top) = altstack.top() {
            return top;
        }
    }
    sp
}

/// A signal frame ready to be written: `bytes` go to `base` in the application's
/// memory, then [`SignalFrame::enter_handler`] points the thread at the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalFrame {
    pub base: u64,
    pub bytes: Vec<u8>,
    /// The handler's `rsp`: `base`, where the restorer address sits.
    pub rsp: u64,
    /// The handler's second argument.
    pub siginfo_addr: u64,
    /// The handler's third argument.
    pub ucontext_addr: u64,
    /// Where the FPU image is (`sigcontext.fpstate`).
    pub fpstate_addr: u64,
    /// The handler's first argument.
    pub signo: i32,
}

/// Lay out an `rt_sigframe` as Linux's `get_sigframe` and `x64_setup_rt_frame` do:
/// the FPU image first, 64-byte aligned below `stack_top`, then the frame below it so
/// that the handler starts with `rsp % 16 == 8` (as if called).
///
/// - `regs`: the thread's registers at the interruption, as saved (for an exception,
///   `vector` and `error_code` become `trapno` and `err`);
/// - `fpu`: the kernel's save area of the thread's FPU state (`fmt.size` bytes);
/// - `blocked`: the signal mask to restore at `rt_sigreturn` (the mask before
///   delivery);
/// - `altstack`: the thread's alternate-stack setting before delivery, saved in
///   `uc_stack` (`SS_AUTODISARM` disarms it only after the frame is built);
/// - `stack_top`: where the frame goes below, from [`signal_stack_top`];
/// - `restorer`: `sa_restorer`, the handler's return address;
/// - `cr2`: the faulting address of a page fault.
///
/// `EFAULT` if the frame would leave the application's half (or touch the first page),
/// or overflow the alternate stack it is on; the caller turns that into `SIGSEGV`.
/// `EINVAL` if the FPU description is inconsistent (a kernel bug).
// Nine independent inputs, each gathered from a different place by the caller (as
// Linux's `setup_rt_frame` gathers them from the task); documented one by one above.
#[allow(clippy::too_many_arguments)]
pub fn build(
    regs: &TrapFrame,
    fpu: &[u8],
    fmt: &FpuFormat,
    info: &SigInfo,
    blocked: SigSet,
    altstack: &AltStack,
    stack_top: u64,
    restorer: u64,
    cr2: u64,
) -> KResult<SignalFrame> {
    check_format(fmt)?;
    if fpu.len() < fmt.size {
        return Err(Errno::EINVAL);
    }
    let fp_size = frame_fpstate_size(fmt);
    if stack_top > USER_END {
        return Err(Errno::EFAULT);
    }
    let fpstate = stack_top.checked_sub(fp_size as u64).ok_or(Errno::EFAULT)? & !63;
    let below = fpstate
        .checked_sub(RT_SIGFRAME_SIZE as u64)
        .ok_or(Errno::EFAULT)?;
    // 16-byte aligned less 8: the handler starts as if `call`ed, its return address
    // (pretcode) just pushed.
    let frame = (below & !15)
        .checked_sub(8)
        .filter(|&f| f >= MIN_FRAME_ADDR)
        .ok_or(Errno::EFAULT)?;
    // A frame on the alternate stack (entering it, or nested on it) must fit in it;
    // Linux gives up with SIGSEGV rather than write below it.
    let on_alt =
        altstack.on_stack(regs.rsp) || (altstack.is_enabled() && altstack.top() == Some(stack_top));
    if on_alt && !altstack.contains(frame) {
        return Err(Errno::EFAULT);
    }

    let fp_off = (fpstate - frame) as usize;
    let mut b = vec![0u8; fp_off + fp_size];
    write_fpstate(&mut b[fp_off..], fpu, fmt);

    put(&mut b, offset_of!(RtSigframe, pretcode), restorer);
    let uc_flags =
        UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if fmt.xsave { UC_FP_XSTATE } else { 0 };
    put(&mut b, offset_of!(RtSigframe, uc.uc_flags), uc_flags);
    // uc_link stays 0.
    put_bytes(
        &mut b,
        offset_of!(RtSigframe, uc.uc_stack),
        &altstack.to_bytes(),
    );
    let mut saved = *regs;
    for (off, reg) in GREGS {
        put(&mut b, SC + off, *reg(&mut saved));
    }
    put(&mut b, sc(offset_of!(SigContext, eflags)), regs.rflags);
    put(&mut b, sc(offset_of!(SigContext, cs)), KERNEL_CS);
    put(&mut b, sc(offset_of!(SigContext, ss)), KERNEL_DS);
    // gs and fs stay 0, as on Linux (the bases live in MSRs, not selectors).
    let (trapno, err) = trap_info(regs, cr2);
    put(&mut b, sc(offset_of!(SigContext, err)), err);
    put(&mut b, sc(offset_of!(SigContext, trapno)), trapno);
    put(&mut b, sc(offset_of!(SigContext, oldmask)), blocked);
    put(&mut b, sc(offset_of!(SigContext, cr2)), cr2);
    put(&mut b, sc(offset_of!(SigContext, fpstate)), fpstate);
    put(&mut b, offset_of!(RtSigframe, uc.uc_sigmask), blocked);
    put_bytes(&mut b, offset_of!(RtSigframe, info), &info.to_bytes());

    Ok(SignalFrame {
        base: frame,
        bytes: b,
        rsp: frame,
        siginfo_addr: frame + offset_of!(RtSigframe, info) as u64,
        ucontext_addr: frame + offset_of!(RtSigframe, uc) as u64,
        fpstate_addr: fpstate,
        signo: info.signo,
    })
}

/// `trapno` and `err` for the frame: an exception's vector and error code (Linux's
/// `thread.trap_nr`/`error_code`), zero for interrupts and system calls. A page fault's
/// error code gets the bits Linux reports for a user-mode fault, which the CPU did not
/// set because the application runs in ring 0.
fn trap_info(regs: &TrapFrame, cr2: u64) -> (u64, u64) {
    if regs.vector >= FIRST_IRQ_VECTOR {
        return (0, 0);
    }
    let mut err = regs.error_code;
    if regs.vector == VECTOR_PAGE_FAULT {
        err |= PF_USER;
        // Linux reports every fault on a kernel address as a protection fault, so
        // the layout of the kernel half does not leak.
        if cr2 >= USER_END {
            err |= PF_PROT;
        }
    }
    (regs.vector, err)
}

impl SignalFrame {
    /// Point `regs` at the handler as Linux does: `rdi` = signal, `rsi` = siginfo,
    /// `rdx` = ucontext, `rax` = 0 (for handlers declared without a prototype), `rsp`
    /// at the restorer address; DF cleared (function-entry ABI), TF and RF cleared
    /// (no single-step into the handler). The caller also resets the thread's FPU
    /// state with [`init_fpu`] and applies the action's mask.
    pub fn enter_handler(&self, regs: &mut TrapFrame, handler: u64) {
        regs.rdi = self.signo as u64;
        regs.rsi = self.siginfo_addr;
        regs.rdx = self.ucontext_addr;
        regs.rax = 0;
        regs.rip = handler;
        regs.rsp = self.rsp;
        regs.rflags &= !(FLAG_DF | FLAG_RF | FLAG_TF);
        regs.cs = KERNEL_CS.into();
        regs.ss = KERNEL_DS.into();
    }
}

// ----- rt_sigreturn ------------------------------------------------------------------

/// Where `rt_sigreturn` finds the frame: the restorer runs after the handler's `ret`
/// popped `pretcode`, so the frame starts 8 bytes below the `rsp` it has at its
/// `syscall`. `EFAULT` if the frame would not lie in the application's half.
pub fn sigreturn_frame_addr(rsp: u64) -> KResult<u64> {
    let frame = rsp.checked_sub(8).ok_or(Errno::EFAULT)?;
    let end = frame
        .checked_add(RT_SIGFRAME_SIZE as u64)
        .ok_or(Errno::EFAULT)?;
    if frame < MIN_FRAME_ADDR || end > USER_END {
        return Err(Errno::EFAULT);
    }
    Ok(frame)
}

/// What a frame says to resume.
#[derive(Clone, Copy, Debug)]
pub struct Restored {
    /// General registers, `rip`, `rsp` and `rflags` from the sigcontext (flags
    /// sanitised, selectors the kernel's); `vector` and `error_code` are zero.
    pub regs: TrapFrame,
    /// The signal mask to install (`uc_sigmask`, without SIGKILL and SIGSTOP).
    pub blocked: SigSet,
    /// `uc_stack`, to be applied as `sigaltstack` would (Linux ignores its errors,
    /// such as being on the current alternate stack).
    pub altstack: AltStack,
    /// Address of the FPU image; 0 means restore the initial state ([`init_fpu`]).
    pub fpstate_addr: u64,
}

impl Restored {
    /// Install the registers in the thread's frame. `rax` is the restored one: the
    /// syscall path must return it unchanged rather than a result of `rt_sigreturn`.
    pub fn apply(&self, regs: &mut TrapFrame) {
        *regs = TrapFrame {
            vector: regs.vector,
            error_code: regs.error_code,
            ..self.regs
        };
    }
}

/// Decode the [`RT_SIGFRAME_SIZE`] bytes read at [`sigreturn_frame_addr`], as Linux's
/// `rt_sigreturn`/`restore_sigcontext`: only Linux's user-changeable flags come from the
/// frame, IF is forced on, and the selectors are the kernel's. `EFAULT` if `rip` is
/// outside the application's half: there is no CPL change to catch that in ring 0, so
/// the caller's `SIGSEGV` stands in for the fault Linux's `iret` would take; `EFAULT`
/// too if fewer bytes than a frame were read.
pub fn parse_sigcontext(frame: &[u8]) -> KResult<Restored> {
    let frame = frame.get(..RT_SIGFRAME_SIZE).ok_or(Errno::EFAULT)?;
    let mut regs = TrapFrame::default();
    for (off, reg) in GREGS {
        *reg(&mut regs) = get_u64(frame, SC + off);
    }
    if regs.rip >= USER_END {
        return Err(Errno::EFAULT);
    }
    let eflags = get_u64(frame, sc(offset_of!(SigContext, eflags)));
    regs.rflags = (eflags & FIX_EFLAGS) | FLAG_IF | FLAG_FIXED;
    regs.cs = KERNEL_CS.into();
    regs.ss = KERNEL_DS.into();

    let mut stack = [0; STACK_T_SIZE];
    let at = offset_of!(RtSigframe, uc.uc_stack);
    stack.copy_from_slice(&frame[at..at + STACK_T_SIZE]);
    Ok(Restored {
        regs,
        blocked: get_u64(frame, offset_of!(RtSigframe, uc.uc_sigmask)) & !UNBLOCKABLE,
        altstack: AltStack::from_bytes(&stack),
        fpstate_addr: get_u64(frame, sc(offset_of!(SigContext, fpstate))),
    })
}

// ----- helpers -----------------------------------------------------------------------

/// Offset of `uc_mcontext` in the frame.
const SC: usize = offset_of!(RtSigframe, uc.uc_mcontext);

const fn sc(field: usize) -> usize {
    SC + field
}

type Reg = fn(&mut TrapFrame) -> &mut u64;

/// The 64-bit registers a sigcontext holds verbatim, with their offsets in it.
const GREGS: [(usize, Reg); 17] = [
    (offset_of!(SigContext, r8), |r| &mut r.r8),
    (offset_of!(SigContext, r9), |r| &mut r.r9),
    (offset_of!(SigContext, r10), |r| &mut r.r10),
    (offset_of!(SigContext, r11), |r| &mut r.r11),
    (offset_of!(SigContext, r12), |r| &mut r.r12),
    (offset_of!(SigContext, r13), |r| &mut r.r13),
    (offset_of!(SigContext, r14), |r| &mut r.r14),
    (offset_of!(SigContext, r15), |r| &mut r.r15),
    (offset_of!(SigContext, rdi), |r| &mut r.rdi),
    (offset_of!(SigContext, rsi), |r| &mut r.rsi),
    (offset_of!(SigContext, rbp), |r| &mut r.rbp),
    (offset_of!(SigContext, rbx), |r| &mut r.rbx),
    (offset_of!(SigContext, rdx), |r| &mut r.rdx),
    (offset_of!(SigContext, rax), |r| &mut r.rax),
    (offset_of!(SigContext, rcx), |r| &mut r.rcx),
    (offset_of!(SigContext, rsp), |r| &mut r.rsp),
    (offset_of!(SigContext, rip), |r| &mut r.rip),
];

/// Integers stored little-endian in the ABI structures.
trait Le: Copy {
    fn store(self, buf: &mut [u8], off: usize);
}

macro_rules! impl_le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            fn store(self, buf: &mut [u8], off: usize) {
                let b = self.to_le_bytes();
                buf[off..off + b.len()].copy_from_slice(&b);
            }
        }
    )*};
}
impl_le!(u16, u32, i32, u64, i64);

fn put<T: Le>(buf: &mut [u8], off: usize, v: T) {
    v.store(buf, off);
}

fn put_bytes(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

fn get_u32(buf: &[u8], off: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_le_bytes(b)
}

fn get_i32(buf: &[u8], off: usize) -> i32 {
    get_u32(buf, off) as i32
}

fn get_u64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::state::{sig_bit, SIGBUS, SIGKILL, SIGSEGV, SIGSTOP, SIGUSR1};

    const FX: FpuFormat = FpuFormat {
        xsave: false,
        size: 512,
        xfeatures: 0b11,
    };
    /// x87, SSE, AVX in the standard format: 576 + 256 bytes of YMM upper halves.
    const XS: FpuFormat = FpuFormat {
        xsave: true,
        size: 832,
        xfeatures: 0b111,
    };

    fn regs() -> TrapFrame {
        TrapFrame {
            r15: 0x1515,
            r14: 0x1414,
            r13: 0x1313,
            r12: 0x1212,
            r11: 0x1111,
            r10: 0x1010,
            r9: 0x0909,
            r8: 0x0808,
            rbp: 0xb0b0,
            rdi: 0xd1d1,
            rsi: 0x5151,
            rdx: 0xd0d0,
            rcx: 0xc0c0,
            rbx: 0xbbbb,
            rax: 0xaaaa,
            vector: skiff_arch::SYSCALL_VECTOR,
            error_code: 0,
            rip: 0x40_1234,
            cs: 0x08,
            rflags: 0x202 | FLAG_CF | FLAG_ZF,
            rsp: 0x7fff_ffe0_0008,
            ss: 0x10,
        }
    }

    /// A save area as the CPU would leave it, with recognisable contents.
    fn fpu_area(fmt: &FpuFormat) -> Vec<u8> {
        let mut a: Vec<u8> = (0..fmt.size).map(|i| (i * 7 + 3) as u8).collect();
        put(&mut a, FX_MXCSR, 0x1fa0u32);
        put(&mut a, FX_MXCSR_MASK, 0xffffu32);
        a[FX_SW_RESERVED..FXSAVE_SIZE].fill(0xee);
        if fmt.xsave {
            put(&mut a, XSTATE_BV, 0b111u64);
            a[XCOMP_BV..XSAVE_MIN_SIZE].fill(0);
        }
        a
    }

    /// `build`'s arguments, so tests can vary one at a time.
    struct Delivery<'a> {
        regs: &'a TrapFrame,
        fpu: &'a [u8],
        fmt: FpuFormat,
        info: SigInfo,
        blocked: SigSet,
        altstack: AltStack,
        stack_top: u64,
        restorer: u64,
        cr2: u64,
    }

    fn run(d: &Delivery<'_>) -> KResult<SignalFrame> {
        build(
            d.regs,
            d.fpu,
            &d.fmt,
            &d.info,
            d.blocked,
            &d.altstack,
            d.stack_top,
            d.restorer,
            d.cr2,
        )
    }

    fn delivery<'a>(regs: &'a TrapFrame, fpu: &'a [u8], fmt: FpuFormat) -> Delivery<'a> {
        Delivery {
            regs,
            fpu,
            fmt,
            info: SigInfo::queue(SIGUSR1 as i32, 7, 1000, 0xfeed),
            blocked: sig_bit(SIGBUS) | sig_bit(40),
            altstack: AltStack {
                sp: 0x1000_0000,
                flags: SS_AUTODISARM,
                size: 0x4000,
            },
            stack_top: regs.rsp.wrapping_sub(RED_ZONE),
            restorer: 0x40_9999,
            cr2: 0,
        }
    }

    fn at(f: &SignalFrame, addr: u64, len: usize) -> &[u8] {
        let off = (addr - f.base) as usize;
        &f.bytes[off..off + len]
    }

    fn frame_array(f: &SignalFrame) -> [u8; RT_SIGFRAME_SIZE] {
        let mut a = [0; RT_SIGFRAME_SIZE];
        a.copy_from_slice(&f.bytes[..RT_SIGFRAME_SIZE]);
        a
    }

    // ----- layout --------------------------------------------------------------------

    #[test]
    fn struct_sizes_match_linux() {
        assert_eq!(size_of::<RtSigframe>(), 440);
        assert_eq!(size_of::<UContext>(), 304);
        assert_eq!(size_of::<SigContext>(), 256);
        assert_eq!(size_of::<AltStack>(), 24);
        assert_eq!(size_of::<FpxSwBytes>(), 48);
        assert_eq!(SigInfo::EMPTY.to_bytes().len(), 128);
        assert_eq!(RT_SIGFRAME_SIZE, 440);
    }

    #[test]
    fn rt_sigframe_and_ucontext_offsets_match_linux() {
        assert_eq!(offset_of!(RtSigframe, pretcode), 0);
        assert_eq!(offset_of!(RtSigframe, uc), 8);
        assert_eq!(offset_of!(RtSigframe, info), 312);
        assert_eq!(offset_of!(UContext, uc_flags), 0);
        assert_eq!(offset_of!(UContext, uc_link), 8);
        assert_eq!(offset_of!(UContext, uc_stack), 16);
        assert_eq!(offset_of!(UContext, uc_mcontext), 40);
        assert_eq!(offset_of!(UContext, uc_sigmask), 296);
        assert_eq!(offset_of!(AltStack, sp), 0);
        assert_eq!(offset_of!(AltStack, flags), 8);
        assert_eq!(offset_of!(AltStack, size), 16);
    }

    #[test]
    fn sigcontext_offsets_match_linux() {
        // glibc's gregs order differs; these are the kernel's struct sigcontext offsets.
        let expect = [
            (offset_of!(SigContext, r8), 0),
            (offset_of!(SigContext, r15), 56),
            (offset_of!(SigContext, rdi), 64),
            (offset_of!(SigContext, rsi), 72),
            (offset_of!(SigContext, rbp), 80),
            (offset_of!(SigContext, rbx), 88),
            (offset_of!(SigContext, rdx), 96),
            (offset_of!(SigContext, rax), 104),
            (offset_of!(SigContext, rcx), 112),
            (offset_of!(SigContext, rsp), 120),
            (offset_of!(SigContext, rip), 128),
            (offset_of!(SigContext, eflags), 136),
            (offset_of!(SigContext, cs), 144),
            (offset_of!(SigContext, gs), 146),
            (offset_of!(SigContext, fs), 148),
            (offset_of!(SigContext, ss), 150),
            (offset_of!(SigContext, err), 152),
            (offset_of!(SigContext, trapno), 160),
            (offset_of!(SigContext, oldmask), 168),
            (offset_of!(SigContext, cr2), 176),
            (offset_of!(SigContext, fpstate), 184),
            (offset_of!(SigContext, reserved1), 192),
        ];
        for (got, want) in expect {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn fpx_sw_bytes_offsets_match_linux() {
        assert_eq!(offset_of!(FpxSwBytes, magic1), 0);
        assert_eq!(offset_of!(FpxSwBytes, extended_size), 4);
        assert_eq!(offset_of!(FpxSwBytes, xfeatures), 8);
        assert_eq!(offset_of!(FpxSwBytes, xstate_size), 16);
        assert_eq!(offset_of!(FpxSwBytes, padding), 20);
    }

    // ----- siginfo -------------------------------------------------------------------

    #[test]
    fn siginfo_kill_and_tkill_forms() {
        let b = SigInfo::user(15, SI_USER, 42, 1000).to_bytes();
        assert_eq!(get_i32(&b, 0), 15);
        assert_eq!(get_i32(&b, 4), 0);
        assert_eq!(get_i32(&b, 8), SI_USER);
        assert_eq!(get_i32(&b, 16), 42);
        assert_eq!(get_u32(&b, 20), 1000);
        assert!(b[24..].iter().all(|&x| x == 0));
        let t = SigInfo::user(10, SI_TKILL, 1, 0);
        assert_eq!(get_i32(&t.to_bytes(), 8), -6);
        assert_eq!((t.pid(), t.uid()), (1, 0));
    }

    #[test]
    fn siginfo_queue_timer_fault_kernel_child_forms() {
        let q = SigInfo::queue(34, 5, 6, 0x1122_3344_5566_7788).to_bytes();
        assert_eq!(get_i32(&q, 8), SI_QUEUE);
        assert_eq!((get_i32(&q, 16), get_u32(&q, 20)), (5, 6));
        assert_eq!(get_u64(&q, 24), 0x1122_3344_5566_7788);

        let t = SigInfo::timer(14, 3, 9, 0xabcd);
        let tb = t.to_bytes();
        assert_eq!(get_i32(&tb, 8), SI_TIMER);
        assert_eq!((get_i32(&tb, 16), get_i32(&tb, 20)), (3, 9));
        assert_eq!(get_u64(&tb, 24), 0xabcd);
        let mut t2 = t;
        t2.set_overrun(12);
        assert_eq!((t2.overrun(), t2.value()), (12, 0xabcd));

        let f = SigInfo::fault(SIGSEGV as i32, SEGV_MAPERR, 0xdead_beef).to_bytes();
        assert_eq!(get_i32(&f, 8), 1);
        assert_eq!(get_u64(&f, 16), 0xdead_beef);

        let k = SigInfo::kernel(SIGSEGV as i32);
        assert_eq!(k.code, 0x80);
        assert!(k.is_from_kernel());
        assert!(k.to_bytes()[12..].iter().all(|&x| x == 0));

        let c = SigInfo::child(CLD_EXITED, 9, 0, 3, 100, -1).to_bytes();
        assert_eq!(get_i32(&c, 0), 17);
        assert_eq!((get_i32(&c, 16), get_i32(&c, 24)), (9, 3));
        assert_eq!((get_u64(&c, 32), get_u64(&c, 40) as i64), (100, -1));
    }

    #[test]
    fn siginfo_bytes_round_trip() {
        for info in [
            SigInfo::queue(40, -1, u32::MAX, u64::MAX),
            SigInfo::fault(SIGBUS as i32, BUS_ADRERR, 1 << 47),
            SigInfo::timer(34, i32::MIN, i32::MAX, 1),
        ] {
            assert_eq!(SigInfo::from_bytes(&info.to_bytes()), info);
        }
        // Past the 48 bytes Linux keeps, nothing survives.
        let mut b = SigInfo::queue(40, 1, 2, 3).to_bytes();
        b[100] = 1;
        assert_eq!(SigInfo::from_bytes(&b).to_bytes()[100], 0);
    }

    #[test]
    fn siginfo_from_user_overrides_signo_and_checks_unknown_tails() {
        let mut b = SigInfo::queue(99, 1, 2, 3).to_bytes();
        let i = SigInfo::from_user(40, &b).unwrap();
        assert_eq!((i.signo, i.value()), (40, 3));
        // SI_QUEUE is a known layout: a dirty tail is dropped, as Linux does.
        b[127] = 1;
        assert!(SigInfo::from_user(40, &b).is_ok());
        // An unknown code must not carry bytes the receiver would never see.
        let mut u = [0; SIGINFO_SIZE];
        u[8..12].copy_from_slice(&(-100i32).to_le_bytes());
        assert!(SigInfo::from_user(40, &u).is_ok());
        u[60] = 1;
        assert_eq!(SigInfo::from_user(40, &u), Err(Errno::E2BIG));
        // A code above a signal's own range is unknown too.
        u[8..12].copy_from_slice(&50i32.to_le_bytes());
        assert_eq!(SigInfo::from_user(SIGSEGV as i32, &u), Err(Errno::E2BIG));
        u[8..12].copy_from_slice(&SI_KERNEL.to_le_bytes());
        assert!(SigInfo::from_user(SIGSEGV as i32, &u).is_ok());
    }

    #[test]
    fn siginfo_impersonation_rule() {
        assert!(SigInfo::user(10, SI_USER, 1, 0).impersonates());
        assert!(SigInfo::user(10, SI_TKILL, 1, 0).impersonates());
        assert!(SigInfo::kernel(10).impersonates());
        assert!(!SigInfo::queue(10, 1, 0, 0).impersonates());
        assert!(!SigInfo::timer(10, 1, 0, 0).impersonates());
    }

    // ----- stack_t -------------------------------------------------------------------

    #[test]
    fn altstack_bytes_round_trip() {
        let s = AltStack {
            sp: 0x7000_0000,
            flags: SS_AUTODISARM,
            size: 8192,
        };
        let b = s.to_bytes();
        assert_eq!(get_u64(&b, 0), 0x7000_0000);
        assert_eq!(get_i32(&b, 8), i32::MIN);
        assert_eq!(get_u32(&b, 12), 0, "padding stays zero");
        assert_eq!(get_u64(&b, 16), 8192);
        assert_eq!(AltStack::from_bytes(&b), s);
    }

    #[test]
    fn altstack_contains_is_base_exclusive_top_inclusive() {
        let s = AltStack {
            sp: 0x1000,
            flags: 0,
            size: 0x1000,
        };
        assert!(!s.contains(0x1000));
        assert!(s.contains(0x1001));
        assert!(s.contains(0x2000));
        assert!(!s.contains(0x2001));
        assert!(!AltStack::disabled().contains(1));
        // No overflow near the top of the address space.
        let high = AltStack {
            sp: u64::MAX - 10,
            flags: 0,
            size: 100,
        };
        assert!(high.contains(u64::MAX));
        assert_eq!(high.top(), None);
    }

    #[test]
    fn altstack_autodisarm_is_never_on_stack() {
        let mut s = AltStack {
            sp: 0x1000,
            flags: 0,
            size: 0x1000,
        };
        assert!(s.on_stack(0x1800));
        assert_eq!(s.reported_flags(0x1800), SS_ONSTACK);
        assert_eq!(s.reported_flags(0x9000), 0);
        s.flags = SS_AUTODISARM;
        assert!(!s.on_stack(0x1800));
        assert_eq!(s.reported_flags(0x1800), SS_AUTODISARM);
        assert_eq!(AltStack::disabled().reported_flags(0), SS_DISABLE);
    }

    #[test]
    fn stack_choice_follows_get_sigframe() {
        let alt = AltStack {
            sp: 0x10_0000,
            flags: 0,
            size: 0x8000,
        };
        let rsp = 0x7fff_0000;
        assert_eq!(signal_stack_top(rsp, &alt, false), rsp - 128);
        assert_eq!(signal_stack_top(rsp, &alt, true), 0x10_8000);
        // Already on it: nest below the red zone instead of starting over at the top.
        assert_eq!(signal_stack_top(0x10_4000, &alt, true), 0x10_4000 - 128);
        assert_eq!(
            signal_stack_top(rsp, &AltStack::disabled(), true),
            rsp - 128
        );
    }

    // ----- build ---------------------------------------------------------------------

    #[test]
    fn frame_alignment_for_every_stack_top_residue() {
        let r = regs();
        for fmt in [FX, XS] {
            let fpu = fpu_area(&fmt);
            for k in 0..128 {
                let mut d = delivery(&r, &fpu, fmt);
                d.stack_top = 0x7fff_f000_0000 - k;
                let f = run(&d).unwrap();
                assert_eq!(f.rsp % 16, 8, "handler entry looks like a call");
                assert_eq!(f.fpstate_addr % 64, 0);
                assert_eq!(f.base, f.rsp);
                assert!(f.base + RT_SIGFRAME_SIZE as u64 <= f.fpstate_addr);
                let end = f.base + f.bytes.len() as u64;
                assert_eq!(end, f.fpstate_addr + frame_fpstate_size(&fmt) as u64);
                assert!(end <= d.stack_top);
                // Linux's arithmetic, literally.
                let fp = (d.stack_top - frame_fpstate_size(&fmt) as u64) & !63;
                assert_eq!(f.fpstate_addr, fp);
                assert_eq!(f.base, ((fp - 440) & !15) - 8);
            }
        }
    }

    #[test]
    fn frame_fields_are_where_linux_puts_them() {
        let r = regs();
        let fpu = fpu_area(&XS);
        let d = delivery(&r, &fpu, XS);
        let f = run(&d).unwrap();
        let b = &f.bytes;
        assert_eq!(get_u64(b, 0), 0x40_9999, "pretcode");
        assert_eq!(
            get_u64(b, 8),
            UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
        );
        assert_eq!(get_u64(b, 16), 0, "uc_link");
        assert_eq!(&b[24..48], &d.altstack.to_bytes());
        let sc = 48;
        assert_eq!(get_u64(b, sc), r.r8);
        assert_eq!(get_u64(b, sc + 56), r.r15);
        assert_eq!(get_u64(b, sc + 64), r.rdi);
        assert_eq!(get_u64(b, sc + 104), r.rax);
        assert_eq!(get_u64(b, sc + 112), r.rcx);
        assert_eq!(get_u64(b, sc + 120), r.rsp);
        assert_eq!(get_u64(b, sc + 128), r.rip);
        assert_eq!(get_u64(b, sc + 136), r.rflags);
        assert_eq!(u16::from_le_bytes([b[sc + 144], b[sc + 145]]), 0x08);
        assert_eq!(u16::from_le_bytes([b[sc + 146], b[sc + 147]]), 0, "gs");
        assert_eq!(u16::from_le_bytes([b[sc + 150], b[sc + 151]]), 0x10);
        assert_eq!(get_u64(b, sc + 152), 0, "err: not an exception");
        assert_eq!(get_u64(b, sc + 160), 0, "trapno: not an exception");
        assert_eq!(get_u64(b, sc + 168), d.blocked, "oldmask");
        assert_eq!(get_u64(b, sc + 184), f.fpstate_addr);
        assert!(b[sc + 192..sc + 256].iter().all(|&x| x == 0), "reserved1");
        assert_eq!(get_u64(b, 8 + 296), d.blocked, "uc_sigmask");
        assert_eq!(&b[312..440], &d.info.to_bytes());
        assert_eq!(f.siginfo_addr, f.base + 312);
        assert_eq!(f.ucontext_addr, f.base + 8);
        // The gap between the frame and the FPU image holds nothing stale.
        assert!(b[440..(f.fpstate_addr - f.base) as usize]
            .iter()
            .all(|&x| x == 0));
    }

    #[test]
    fn fxsave_frame_has_no_xstate_tag() {
        let r = regs();
        let fpu = fpu_area(&FX);
        let f = run(&delivery(&r, &fpu, FX)).unwrap();
        assert_eq!(
            get_u64(&f.bytes, 8),
            UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
        );
        let img = at(&f, f.fpstate_addr, 512);
        assert_eq!(&img[..FX_SW_RESERVED], &fpu[..FX_SW_RESERVED]);
        assert!(img[FX_SW_RESERVED..].iter().all(|&x| x == 0));
        assert_eq!(fpstate_len(img, &FX), 512);
    }

    #[test]
    fn xsave_frame_has_sw_bytes_and_magic2() {
        let r = regs();
        let fpu = fpu_area(&XS);
        let f = run(&delivery(&r, &fpu, XS)).unwrap();
        let img = at(&f, f.fpstate_addr, XS.size + 4);
        let sw = &img[464..512];
        assert_eq!(get_u32(sw, 0), FP_XSTATE_MAGIC1);
        assert_eq!(get_u32(sw, 4), 832 + 4, "extended_size");
        assert_eq!(get_u64(sw, 8), 0b111, "xfeatures");
        assert_eq!(get_u32(sw, 16), 832, "xstate_size");
        assert!(sw[20..].iter().all(|&x| x == 0));
        assert_eq!(get_u32(img, 832), FP_XSTATE_MAGIC2);
        assert_eq!(f.bytes.len() as u64, f.fpstate_addr - f.base + 836);
        assert_eq!(&img[..464], &fpu[..464]);
        assert_eq!(&img[576..832], &fpu[576..832]);
        assert_eq!(fpstate_len(img, &XS), 836);
    }

    #[test]
    fn xsave_frame_marks_x87_and_sse_present_with_init_values() {
        let r = regs();
        let mut fpu = fpu_area(&XS);
        put(&mut fpu, XSTATE_BV, 0b100u64); // x87 and SSE in init state
        let f = run(&delivery(&r, &fpu, XS)).unwrap();
        let img = at(&f, f.fpstate_addr, XS.size);
        assert_eq!(get_u64(img, XSTATE_BV), 0b111);
        assert_eq!(u16::from_le_bytes([img[0], img[1]]), FCW_INIT);
        assert!(img[2..24].iter().all(|&x| x == 0));
        assert!(img[32..416].iter().all(|&x| x == 0));
        assert_eq!(get_u32(img, FX_MXCSR), 0x1fa0, "MXCSR is not part of init");
        assert_eq!(&img[576..832], &fpu[576..832], "AVX state untouched");
    }

    #[test]
    fn exception_frames_carry_trapno_err_and_cr2() {
        let mut r = regs();
        r.vector = 14;
        r.error_code = 0b10; // write, not-present, and (ring 0) no user bit
        let fpu = fpu_area(&FX);
        let mut d = delivery(&r, &fpu, FX);
        d.cr2 = 0x1234_5000;
        let f = run(&d).unwrap();
        let sc = 48;
        assert_eq!(get_u64(&f.bytes, sc + 160), 14);
        assert_eq!(get_u64(&f.bytes, sc + 152), 0b110, "user bit as on Linux");
        assert_eq!(get_u64(&f.bytes, sc + 176), 0x1234_5000);

        d.cr2 = 0xffff_8000_0000_0000;
        let f = run(&d).unwrap();
        assert_eq!(
            get_u64(&f.bytes, sc + 152),
            0b111,
            "kernel address: protection"
        );

        r.vector = 13;
        r.error_code = 0x18;
        let f = run(&delivery(&r, &fpu, FX)).unwrap();
        assert_eq!(get_u64(&f.bytes, sc + 160), 13);
        assert_eq!(get_u64(&f.bytes, sc + 152), 0x18);

        r.vector = 32; // timer interrupt
        let f = run(&delivery(&r, &fpu, FX)).unwrap();
        assert_eq!(get_u64(&f.bytes, sc + 160), 0);
        assert_eq!(get_u64(&f.bytes, sc + 152), 0);
    }

    #[test]
    fn enter_handler_sets_linux_registers() {
        let r = regs();
        let fpu = fpu_area(&FX);
        let f = run(&delivery(&r, &fpu, FX)).unwrap();
        let mut h = r;
        h.rflags |= FLAG_DF | FLAG_TF | FLAG_RF;
        f.enter_handler(&mut h, 0x40_5000);
        assert_eq!(
            (h.rdi, h.rsi, h.rdx, h.rax),
            (SIGUSR1 as u64, f.siginfo_addr, f.ucontext_addr, 0)
        );
        assert_eq!((h.rip, h.rsp), (0x40_5000, f.rsp));
        assert_eq!(h.rflags & (FLAG_DF | FLAG_TF | FLAG_RF), 0);
        assert_ne!(h.rflags & FLAG_IF, 0);
        assert_eq!((h.cs, h.ss), (0x08, 0x10));
        assert_eq!(h.rbx, r.rbx, "other registers are the handler's to clobber");
    }

    #[test]
    fn frames_outside_the_lower_half_are_efault() {
        let r = regs();
        for fmt in [FX, XS] {
            let fpu = fpu_area(&fmt);
            let mut d = delivery(&r, &fpu, fmt);
            for top in [0, 8, 0x100, 0x1000, 0x1200, u64::MAX, USER_END + 1, 1 << 63] {
                d.stack_top = top;
                assert_eq!(run(&d), Err(Errno::EFAULT), "stack_top {top:#x}");
            }
            // Just enough room above the first page.
            d.stack_top = 0x1000 + 8 + 440 + frame_fpstate_size(&fmt) as u64 + 64 + 16;
            let f = run(&d).unwrap();
            assert!(f.base >= 0x1000);
            // And at the very top of the lower half.
            d.stack_top = USER_END;
            assert!(run(&d).is_ok());
        }
    }

    #[test]
    fn rsp_below_the_red_zone_wraps_into_efault() {
        let mut r = regs();
        r.rsp = 0x40;
        let fpu = fpu_area(&FX);
        let mut d = delivery(&r, &fpu, FX);
        d.stack_top = signal_stack_top(r.rsp, &AltStack::disabled(), false);
        assert_eq!(run(&d), Err(Errno::EFAULT));
    }

    #[test]
    fn alt_stack_overflow_is_efault() {
        let r = regs();
        let fpu = fpu_area(&XS);
        let mut d = delivery(&r, &fpu, XS);
        d.altstack = AltStack {
            sp: 0x20_0000,
            flags: 0,
            size: 1024, // smaller than an xsave frame
        };
        d.stack_top = signal_stack_top(r.rsp, &d.altstack, true);
        assert_eq!(d.stack_top, 0x20_0400);
        assert_eq!(run(&d), Err(Errno::EFAULT));
        d.altstack.size = 0x2000;
        d.stack_top = signal_stack_top(r.rsp, &d.altstack, true);
        let f = run(&d).unwrap();
        assert!(d.altstack.contains(f.base));
        // Nested on the alternate stack, near its bottom: overflow too.
        let mut nested = r;
        nested.rsp = 0x20_0300;
        let mut d2 = delivery(&nested, &fpu, XS);
        d2.altstack = d.altstack;
        d2.stack_top = signal_stack_top(nested.rsp, &d2.altstack, true);
        assert_eq!(run(&d2), Err(Errno::EFAULT));
    }

    #[test]
    fn inconsistent_fpu_descriptions_are_einval() {
        let r = regs();
        let short = vec![0u8; 100];
        assert_eq!(run(&delivery(&r, &short, FX)), Err(Errno::EINVAL));
        let fpu = fpu_area(&XS);
        let bad = FpuFormat { size: 513, ..XS };
        assert_eq!(run(&delivery(&r, &fpu, bad)), Err(Errno::EINVAL));
        let bad = FpuFormat { size: 832, ..FX };
        assert_eq!(run(&delivery(&r, &fpu, bad)), Err(Errno::EINVAL));
        let bad = FpuFormat {
            xfeatures: 0b100,
            ..XS
        };
        assert_eq!(run(&delivery(&r, &fpu, bad)), Err(Errno::EINVAL));
    }

    // ----- rt_sigreturn --------------------------------------------------------------

    #[test]
    fn build_then_parse_round_trips_everything() {
        let r = regs();
        for fmt in [FX, XS] {
            let fpu = fpu_area(&fmt);
            let d = delivery(&r, &fpu, fmt);
            let f = run(&d).unwrap();
            // The handler returns: `ret` pops pretcode, the restorer's syscall has
            // rsp = base + 8.
            assert_eq!(sigreturn_frame_addr(f.rsp + 8), Ok(f.base));
            let back = parse_sigcontext(&frame_array(&f)).unwrap();
            let mut want = r;
            want.vector = 0;
            want.error_code = 0;
            assert_eq!(format!("{:?}", back.regs), format!("{want:?}"));
            assert_eq!(back.blocked, d.blocked);
            assert_eq!(back.altstack, d.altstack);
            assert_eq!(back.fpstate_addr, f.fpstate_addr);

            // And the FPU image comes back as it was.
            let img = at(
                &f,
                back.fpstate_addr,
                fpstate_len(at(&f, back.fpstate_addr, 512), &fmt),
            );
            let mut dest = fpu.clone();
            restore_fpu(img, &fmt, &mut dest).unwrap();
            let mut want = fpu.clone();
            want[FX_SW_RESERVED..FXSAVE_SIZE].fill(0);
            assert_eq!(dest, want);
        }
    }

    #[test]
    fn restored_registers_apply_but_keep_the_entry_vector() {
        let r = regs();
        let fpu = fpu_area(&FX);
        let back = parse_sigcontext(&frame_array(&run(&delivery(&r, &fpu, FX)).unwrap())).unwrap();
        let mut now = TrapFrame {
            vector: skiff_arch::SYSCALL_VECTOR,
            rax: 15,
            ..TrapFrame::default()
        };
        back.apply(&mut now);
        assert_eq!(now.rax, r.rax);
        assert_eq!(now.rip, r.rip);
        assert_eq!(now.vector, skiff_arch::SYSCALL_VECTOR);
    }

    #[test]
    fn parse_sanitises_flags_selectors_and_mask() {
        let r = regs();
        let fpu = fpu_area(&FX);
        let mut b = frame_array(&run(&delivery(&r, &fpu, FX)).unwrap());
        let sc = 48;
        // Every flag set: IOPL 3, NT, VM, VIF, VIP, ID, and IF cleared.
        put(&mut b, sc + 136, !FLAG_IF);
        put(&mut b, sc + 144, 0x33u16);
        put(&mut b, sc + 150, 0x2bu16);
        put(&mut b, 8 + 296, u64::MAX);
        let back = parse_sigcontext(&b).unwrap();
        assert_eq!(back.regs.rflags, FIX_EFLAGS | FLAG_IF | FLAG_FIXED);
        assert_eq!(back.regs.rflags & (1 << 14), 0, "NT");
        assert_eq!(back.regs.rflags & (3 << 12), 0, "IOPL");
        assert_eq!((back.regs.cs, back.regs.ss), (0x08, 0x10));
        assert_eq!(back.blocked, !(sig_bit(SIGKILL) | sig_bit(SIGSTOP)));

        put(&mut b, sc + 136, 0u64);
        assert_eq!(
            parse_sigcontext(&b).unwrap().regs.rflags,
            FLAG_IF | FLAG_FIXED
        );
    }

    #[test]
    fn parse_refuses_rip_outside_the_application() {
        let r = regs();
        let fpu = fpu_area(&FX);
        let mut b = frame_array(&run(&delivery(&r, &fpu, FX)).unwrap());
        for rip in [USER_END, 0x8000_0000_0000, 0xffff_ffff_8000_0000, u64::MAX] {
            put(&mut b, 48 + 128, rip);
            assert_eq!(
                parse_sigcontext(&b).err(),
                Some(Errno::EFAULT),
                "rip {rip:#x}"
            );
        }
        put(&mut b, 48 + 128, USER_END - 1);
        assert!(parse_sigcontext(&b).is_ok());
    }

    #[test]
    fn sigreturn_frame_address_checks() {
        assert_eq!(sigreturn_frame_addr(0), Err(Errno::EFAULT));
        assert_eq!(sigreturn_frame_addr(0x1000), Err(Errno::EFAULT));
        assert_eq!(sigreturn_frame_addr(0x1008), Ok(0x1000));
        assert_eq!(sigreturn_frame_addr(USER_END - 432), Ok(USER_END - 440));
        assert_eq!(sigreturn_frame_addr(USER_END - 431), Err(Errno::EFAULT));
        assert_eq!(sigreturn_frame_addr(u64::MAX), Err(Errno::EFAULT));
    }

    // ----- FPU restore ---------------------------------------------------------------

    /// A kernel save area as the CPU wrote it at the `rt_sigreturn` syscall.
    fn current_area(fmt: &FpuFormat, mxcsr_mask: u32) -> Vec<u8> {
        let mut a = vec![0x5a; fmt.size];
        put(&mut a, FX_MXCSR_MASK, mxcsr_mask);
        a
    }

    /// A frame image as `build` would write it for `fmt`.
    fn image(fmt: &FpuFormat) -> Vec<u8> {
        let mut img = vec![0; frame_fpstate_size(fmt)];
        write_fpstate(&mut img, &fpu_area(fmt), fmt);
        img
    }

    fn assert_sane(dest: &[u8], fmt: &FpuFormat, mask: u32) {
        assert_eq!(get_u32(dest, FX_MXCSR) & !mask, 0, "MXCSR reserved bits");
        assert_eq!(get_u32(dest, FX_MXCSR_MASK), mask);
        assert!(dest[FX_SW_RESERVED..FXSAVE_SIZE].iter().all(|&x| x == 0));
        if fmt.xsave {
            assert_eq!(get_u64(dest, XSTATE_BV) & !fmt.xfeatures, 0, "XSTATE_BV");
            assert!(
                dest[XCOMP_BV..XSAVE_MIN_SIZE].iter().all(|&x| x == 0),
                "header"
            );
        }
    }

    #[test]
    fn hostile_mxcsr_is_masked_with_the_cpus_mask() {
        for fmt in [FX, XS] {
            let mut img = image(&fmt);
            put(&mut img, FX_MXCSR, 0xffff_ffffu32);
            // The frame's own MXCSR_MASK claims everything is allowed: ignored.
            put(&mut img, FX_MXCSR_MASK, 0xffff_ffffu32);
            let mut dest = current_area(&fmt, 0xffff);
            restore_fpu(&img, &fmt, &mut dest).unwrap();
            assert_eq!(get_u32(&dest, FX_MXCSR), 0xffff);
            assert_sane(&dest, &fmt, 0xffff);
            // A CPU reporting mask 0 allows 0xffbf (no DAZ).
            let mut dest = current_area(&fmt, 0);
            restore_fpu(&img, &fmt, &mut dest).unwrap();
            assert_eq!(get_u32(&dest, FX_MXCSR), 0xffbf);
            assert_sane(&dest, &fmt, 0xffbf);
        }
    }

    #[test]
    fn hostile_xsave_header_is_cleaned() {
        let mut img = image(&XS);
        put(&mut img, XSTATE_BV, u64::MAX);
        put(&mut img, XCOMP_BV, 1u64 << 63 | 0b111);
        img[528..576].fill(0xff);
        let mut dest = current_area(&XS, 0xffff);
        restore_fpu(&img, &XS, &mut dest).unwrap();
        assert_eq!(get_u64(&dest, XSTATE_BV), 0b111);
        assert_sane(&dest, &XS, 0xffff);
        assert_eq!(&dest[576..832], &img[576..832], "AVX state kept");
    }

    #[test]
    fn xstate_bv_is_limited_by_the_tag_and_safe_features() {
        let fmt = FpuFormat {
            xfeatures: 0b111 | (1 << 3) | (1 << 17),
            ..XS
        };
        let mut img = image(&fmt);
        put(&mut img, XSTATE_BV, 0b111u64 | 1 << 3 | 1 << 17);
        let mut dest = current_area(&fmt, 0xffff);
        restore_fpu(&img, &fmt, &mut dest).unwrap();
        assert_eq!(
            get_u64(&dest, XSTATE_BV),
            0b111,
            "MPX/AMX config left in init"
        );
        // The tag's xfeatures narrow what is restored (Linux's RFBM).
        let mut img = image(&XS);
        put(&mut img, FX_SW_RESERVED + 8, 0b011u64);
        let mut dest = current_area(&XS, 0xffff);
        restore_fpu(&img, &XS, &mut dest).unwrap();
        assert_eq!(get_u64(&dest, XSTATE_BV), 0b011);
    }

    #[test]
    fn bad_magic2_falls_back_to_fxsave_only() {
        let mut img = image(&XS);
        put(&mut img, XS.size, 0x1234u32);
        assert_eq!(fpstate_len(&img, &XS), 836, "the tag itself looks fine");
        let mut dest = current_area(&XS, 0xffff);
        restore_fpu(&img, &XS, &mut dest).unwrap();
        assert_eq!(&dest[..FX_SW_RESERVED], &img[..FX_SW_RESERVED]);
        assert_eq!(get_u64(&dest, XSTATE_BV), 0b11);
        assert!(
            dest[520..].iter().all(|&x| x == 0),
            "extended state in init"
        );
        assert_sane(&dest, &XS, 0xffff);
    }

    #[test]
    fn bad_tags_are_fxsave_images() {
        let cases: [(usize, u32); 6] = [
            (0, 0x1234_5678), // magic1
            (16, 575),        // xstate_size below legacy + header
            (16, 833),        // xstate_size above the kernel's
            (16, u32::MAX),   // absurd
            (4, 100),         // extended_size below xstate_size
            (4, 0),           // extended_size 0
        ];
        for (field, value) in cases {
            let mut img = image(&XS);
            put(&mut img, FX_SW_RESERVED + field, value);
            assert_eq!(fpstate_len(&img, &XS), 512, "field {field} = {value}");
            let mut dest = current_area(&XS, 0xffff);
            restore_fpu(&img, &XS, &mut dest).unwrap();
            assert_eq!(get_u64(&dest, XSTATE_BV), 0b11);
            assert!(dest[520..].iter().all(|&x| x == 0));
            assert_sane(&dest, &XS, 0xffff);
        }
    }

    #[test]
    fn smaller_xstate_images_are_accepted_and_zero_extended() {
        // A frame from a configuration with less state (x87+SSE only, 576 bytes).
        let small = FpuFormat {
            size: 576,
            xfeatures: 0b11,
            ..XS
        };
        let img = image(&small);
        assert_eq!(fpstate_len(&img, &XS), 580);
        let mut dest = current_area(&XS, 0xffff);
        restore_fpu(&img, &XS, &mut dest).unwrap();
        assert_eq!(&dest[..FX_SW_RESERVED], &img[..FX_SW_RESERVED]);
        assert_eq!(get_u64(&dest, XSTATE_BV), 0b11);
        assert!(dest[576..].iter().all(|&x| x == 0));
    }

    #[test]
    fn short_inputs_never_read_past_the_end() {
        let img = image(&XS);
        let mut dest = current_area(&XS, 0xffff);
        for len in [0, 1, 511] {
            assert_eq!(restore_fpu(&img[..len], &XS, &mut dest), Err(Errno::EFAULT));
            assert_eq!(fpstate_len(&img[..len], &XS), 512);
        }
        // Tag present but the caller read less than it declared: no magic2, fx only.
        for len in [512, 600, 832, 835] {
            let mut dest = current_area(&XS, 0xffff);
            restore_fpu(&img[..len], &XS, &mut dest).unwrap();
            assert_eq!(get_u64(&dest, XSTATE_BV), 0b11, "len {len}");
            assert!(dest[520..].iter().all(|&x| x == 0));
        }
        // A destination smaller than the format is a kernel bug, not a panic.
        let mut small = vec![0; 600];
        assert_eq!(restore_fpu(&img, &XS, &mut small), Err(Errno::EINVAL));
        small.fill(0xff);
        init_fpu(&XS, &mut small);
        assert_eq!(get_u32(&small, FX_MXCSR), MXCSR_INIT);
        assert!(
            small[32..].iter().all(|&x| x == 0),
            "filled as far as it goes"
        );
        let mut tiny = vec![0xff; 100];
        init_fpu(&XS, &mut tiny);
        assert!(tiny.iter().all(|&x| x == 0));
    }

    #[test]
    fn random_fpstate_bytes_always_come_out_sanitised() {
        // xorshift64: deterministic garbage, with the tag fields sometimes valid.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for round in 0..2000 {
            let fmt = if round % 2 == 0 { XS } else { FX };
            let mut img: Vec<u8> = (0..frame_fpstate_size(&XS)).map(|_| next() as u8).collect();
            if round % 3 == 0 {
                put(&mut img, FX_SW_RESERVED, FP_XSTATE_MAGIC1);
                let size = 576 + (next() % 300) as u32;
                put(&mut img, FX_SW_RESERVED + 16, size);
                put(&mut img, FX_SW_RESERVED + 4, size + 4);
                if round % 2 == 0 && (size as usize) <= XS.size {
                    put(&mut img, size as usize, FP_XSTATE_MAGIC2);
                }
            }
            let len = fpstate_len(&img, &fmt).min(img.len());
            let mask = if round % 5 == 0 { 0 } else { 0xffff };
            let mut dest = current_area(&fmt, mask);
            restore_fpu(&img[..len], &fmt, &mut dest).unwrap();
            assert_sane(&dest, &fmt, if mask == 0 { 0xffbf } else { mask });
        }
    }

    #[test]
    fn init_state_is_linux_initial_fpu_state() {
        for fmt in [FX, XS] {
            let mut dest = current_area(&fmt, 0xffff);
            init_fpu(&fmt, &mut dest);
            assert_eq!(u16::from_le_bytes([dest[0], dest[1]]), 0x37f);
            assert_eq!(get_u32(&dest, FX_MXCSR), 0x1f80);
            assert_eq!(get_u32(&dest, FX_MXCSR_MASK), 0xffff);
            assert!(dest[2..24].iter().all(|&x| x == 0));
            assert!(
                dest[32..].iter().all(|&x| x == 0),
                "registers and XSTATE_BV"
            );
        }
        let mut fresh = vec![0; 512];
        init_fpu(&FX, &mut fresh);
        assert_eq!(get_u32(&fresh, FX_MXCSR_MASK), 0xffbf);
    }
}
