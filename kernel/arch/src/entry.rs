//! Trap and `syscall` entry stubs.
//!
//! Both paths build the same [`TrapFrame`] on the current thread's kernel stack, so signal
//! delivery, `clone` and `rt_sigreturn` can work on one layout.
//!
//! **Traps.** Every vector arrives on an IST stack (the application's red zone is live).
//! The common stub moves the hardware frame off the IST stack at once, onto the thread's
//! kernel stack: to its top when the interrupted `rsp` was not on that stack (the
//! application, or the last instructions of the syscall return path, was running), or
//! 128 bytes below the interrupted `rsp` when the kernel was (the precompiled `core` uses
//! the red zone too). That makes nested traps and preemption safe, since the IST stack is
//! free again before Rust runs.
//!
//! **Syscalls.** The application runs in ring 0, so `syscall` does not switch stacks.
//! The stub saves `rsp` in a per-CPU scratch slot and loads the kernel stack before its
//! first push. The common return jumps back with `jmp` (`sysretq` would drop to ring 3)
//! after restoring `rflags` on the kernel stack; a handler that rewrote the whole frame
//! (`rt_sigreturn`, signal delivery) asks for the `iretq` path instead, which restores
//! every register.
//!
//! Both paths save the application's vector state (`xsave64` or `fxsave64`, see
//! [`crate::fpu`]) in a 64-byte aligned area right below the frame, around the Rust
//! handler: the kernel's compiled code uses SSE registers, Linux preserves them across
//! syscalls, and a thread switched out inside a handler keeps its state there. Handlers
//! get that area as a byte slice (signal delivery copies it into the signal frame,
//! `rt_sigreturn` and `clone` write it).

use crate::percpu::{OFF_FPU_SIZE, OFF_FPU_XSAVE, OFF_KSTACK_LO, OFF_KSTACK_TOP, OFF_USER_RSP};
use core::arch::global_asm;

/// The `vector` value of a frame built by the syscall entry.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Registers of interrupted or system-calling code, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// Whether the interrupted code was the application's (lower-half instruction).
    pub fn from_app(&self) -> bool {
        crate::layout::is_user(self.rip)
    }
}

/// How the syscall stub should return.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallReturn {
    /// Only `rax` changed: restore registers and `jmp` back (rcx = rip, r11 = rflags,
    /// as Linux leaves them).
    Fast = 0,
    /// The frame was rewritten: restore every register with `iretq`.
    Full = 1,
}

/// Handlers the kernel installs before enabling interrupts. Each gets the frame and the
/// saved vector state of the interrupted or calling code.
#[derive(Clone, Copy)]
pub struct Handlers {
    pub syscall: fn(&mut TrapFrame, &mut [u8]) -> SyscallReturn,
    pub trap: fn(&mut TrapFrame, &mut [u8]),
    /// Runs first on a new thread's kernel stack, before it returns to the application
    /// (the scheduler finishes the switch there).
    pub thread_start: fn(),
}

static HANDLERS: spin::Once<Handlers> = spin::Once::new();

/// Install the Rust handlers the entry stubs call. Once, before interrupts are enabled.
pub fn set_handlers(h: Handlers) {
    HANDLERS.call_once(|| h);
}

/// The vector-state area the stub saved at `area`.
fn fpu_area<'a>(area: *mut u8) -> &'a mut [u8] {
    let size = crate::percpu::this_cpu()
        .fpu_size
        .load(core::sync::atomic::Ordering::Relaxed) as usize;
    // SAFETY: the entry stub reserved `fpu_size` bytes at `area` on the current kernel
    // stack, below the frame, and nothing else refers to them while the handler runs.
    unsafe { core::slice::from_raw_parts_mut(area, size) }
}

extern "C" fn syscall_trampoline(frame: &mut TrapFrame, area: *mut u8) -> u64 {
    match HANDLERS.get() {
        Some(h) => (h.syscall)(frame, fpu_area(area)) as u64,
        None => {
            frame.rax = (-38i64) as u64; // ENOSYS: the kernel is not ready.
            SyscallReturn::Fast as u64
        }
    }
}

extern "C" fn trap_trampoline(frame: &mut TrapFrame, area: *mut u8) {
    if let Some(h) = HANDLERS.get() {
        (h.trap)(frame, fpu_area(area))
    } else {
        crate::serial::early_panic_trap(frame);
    }
}

pub(crate) extern "C" fn thread_start_trampoline() {
    if let Some(h) = HANDLERS.get() {
        (h.thread_start)()
    }
}

/// Vectors for which the CPU pushes an error code.
const fn has_error_code(v: usize) -> bool {
    matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Address of the stub for `vector` (stubs are 16 bytes apart).
pub fn trap_stub_address(vector: usize) -> u64 {
    extern "C" {
        static skiff_trap_stubs: u8;
    }
    (&raw const skiff_trap_stubs) as u64 + vector as u64 * 16
}

/// Entry point for the `syscall` instruction (LSTAR).
pub fn syscall_entry_address() -> u64 {
    extern "C" {
        fn skiff_syscall_entry();
    }
    skiff_syscall_entry as *const () as u64
}

// The stubs. `.rept` emits one 16-byte stub per vector; vectors with a CPU-pushed error
// code skip the dummy push.
global_asm!(
    r#"
    /* The general registers in TrapFrame order (r15 lowest); one definition for the
       trap and syscall paths. */
    .macro skiff_push_gprs
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
    .endm
    .macro skiff_pop_gprs
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
    .endm

    /* Save the vector state below the current rsp (64-byte aligned); rbx keeps the
       frame address. Clobbers rax and rdx, which the frame already holds. */
    .macro skiff_fpu_save
        movq %rsp, %rbx
        subq %gs:{fpusz}, %rsp
        andq $-64, %rsp
        cmpq $0, %gs:{fpuxs}
        je 91f
        /* This is recycled stack memory, and xsave leaves most of the header alone: of
           XSTATE_BV it writes only the bits of enabled components, and XCOMP_BV and the
           reserved bytes not at all. xrstor faults on any stray bit there, so clear the
           whole 64-byte header first. */
        xorl %eax, %eax
        movq %rax, 512(%rsp)
        movq %rax, 520(%rsp)
        movq %rax, 528(%rsp)
        movq %rax, 536(%rsp)
        movq %rax, 544(%rsp)
        movq %rax, 552(%rsp)
        movq %rax, 560(%rsp)
        movq %rax, 568(%rsp)
        movl $-1, %eax
        movl $-1, %edx
        xsave64 (%rsp)
        jmp 92f
91:
        fxsave64 (%rsp)
92:
    .endm
    /* Restore it and put rsp back on the frame. Clobbers rax and rdx. */
    .macro skiff_fpu_restore
        cmpq $0, %gs:{fpuxs}
        je 93f
        movl $-1, %eax
        movl $-1, %edx
        xrstor64 (%rsp)
        jmp 94f
93:
        fxrstor64 (%rsp)
94:
        movq %rbx, %rsp
    .endm

    .section .text.skiff_entry, "ax"
    .p2align 4
    .global skiff_trap_stubs
skiff_trap_stubs:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp skiff_trap_common
    .set vec, vec + 1
    .endr

    .p2align 4
skiff_trap_common:
    /* IST stack: vector, error, rip, cs, rflags, rsp, ss */
    pushq %rax
    pushq %rbx
    movq 56(%rsp), %rax
    movq %gs:{klo}, %rbx
    cmpq %rbx, %rax
    jb 1f
    movq %gs:{ktop}, %rbx
    cmpq %rbx, %rax
    jae 1f
    leaq -128(%rax), %rbx
    andq $-16, %rbx
    jmp 2f
1:
    movq %gs:{ktop}, %rbx
2:
    subq $56, %rbx
    movq 16(%rsp), %rax
    movq %rax, 0(%rbx)
    movq 24(%rsp), %rax
    movq %rax, 8(%rbx)
    movq 32(%rsp), %rax
    movq %rax, 16(%rbx)
    movq 40(%rsp), %rax
    movq %rax, 24(%rbx)
    movq 48(%rsp), %rax
    movq %rax, 32(%rbx)
    movq 56(%rsp), %rax
    movq %rax, 40(%rbx)
    movq 64(%rsp), %rax
    movq %rax, 48(%rbx)
    movq (%rsp), %rax
    movq %rax, -8(%rbx)
    movq 8(%rsp), %rax
    movq %rax, -16(%rbx)
    leaq -16(%rbx), %rsp
    popq %rax
    popq %rbx
    skiff_push_gprs
    cld
    skiff_fpu_save
    movq %rbx, %rdi
    movq %rsp, %rsi
    call {trap}
    /* A new thread starts here (see context.rs): rbx = frame, rsp = vector state. */
    .global skiff_trap_resume
skiff_trap_resume:
    skiff_fpu_restore
    .global skiff_trap_return
skiff_trap_return:
    skiff_pop_gprs
    addq $16, %rsp
    iretq

    .p2align 4
    .global skiff_syscall_entry
skiff_syscall_entry:
    movq %rsp, %gs:{urspoff}
    movq %gs:{ktop}, %rsp
    pushq $0x10
    pushq %gs:{urspoff}
    pushq %r11
    pushq $0x08
    pushq %rcx
    pushq $0
    pushq ${sysvec}
    skiff_push_gprs
    skiff_fpu_save
    sti
    movq %rbx, %rdi
    movq %rsp, %rsi
    call {sys}
    cli
    movq %rax, %r12
    skiff_fpu_restore
    testq %r12, %r12
    jnz skiff_trap_return
    skiff_pop_gprs
    /* rip, cs, rflags, rsp, ss remain after vector and error */
    movq 16(%rsp), %rcx
    movq 32(%rsp), %r11
    addq $32, %rsp
    popfq
    popq %rsp
    jmpq *%rcx
    .text
    "#,
    klo = const OFF_KSTACK_LO,
    ktop = const OFF_KSTACK_TOP,
    urspoff = const OFF_USER_RSP,
    fpusz = const OFF_FPU_SIZE,
    fpuxs = const OFF_FPU_XSAVE,
    sysvec = const SYSCALL_VECTOR,
    trap = sym trap_trampoline,
    sys = sym syscall_trampoline,
    options(att_syntax)
);

/// Install LSTAR/STAR/FMASK so the application's `syscall` enters [`skiff_syscall_entry`].
pub fn init_syscall() {
    use crate::cpu::*;
    // SAFETY: the entry stub and the GDT selectors it relies on are in place; the GS
    // base (per-CPU block) is set before this is called.
    unsafe {
        let efer = rdmsr(MSR_EFER);
        wrmsr(MSR_EFER, efer | 1); // SCE
        wrmsr(MSR_LSTAR, syscall_entry_address());
        wrmsr(
            MSR_STAR,
            (crate::gdt::KERNEL_CS as u64) << 32 | (crate::gdt::KERNEL_CS as u64) << 48,
        );
        // Mask IF, TF, DF, AC, NT on entry.
        wrmsr(MSR_FMASK, 0x200 | 0x100 | 0x400 | 0x4_0000 | 0x4000);
    }
}

const _: () = {
    assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
    assert!(has_error_code(14) && !has_error_code(3));
};
