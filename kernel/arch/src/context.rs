//! Kernel execution contexts: a kernel stack, the stack pointer saved while the context
//! is switched out, and the per-thread CPU state the entry stubs do not save (the FS
//! base). The scheduler owns the policy; this module owns the one instruction sequence
//! that swaps stacks.
//!
//! Two kinds of context start fresh: application threads ([`Context::new_user`]), whose
//! first switch leaves like a trap return into application code, and kernel threads
//! ([`Context::new_kernel`]), whose first switch calls a kernel function that never
//! returns. Both run the scheduler's finish-switch handler first.
//!
//! A switch happens inside a Rust handler (syscall, trap or the idle loop), so the
//! application's registers and vector state are already saved on the outgoing thread's
//! kernel stack by the entry stub. The switch itself only keeps the System V callee-saved
//! registers; the kernel's own SSE registers are caller-saved, and its MXCSR and x87
//! control word never change from the defaults.

use crate::entry::TrapFrame;
use alloc::alloc::{alloc, dealloc, Layout};
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// Size of each thread's kernel stack. Syscall frames, the vector-state save area, a
/// nested trap and the deepest handler path (path lookup plus VFS) fit with room to
/// spare; the canary at the bottom reports an overflow at the next switch.
pub const KERNEL_STACK_SIZE: usize = 64 * 1024;
const STACK_CANARY: u64 = 0x5afe_57ac_c0de_f00d;

/// An owned kernel stack from the heap.
struct KernelStack {
    base: *mut u8,
}

// SAFETY: the stack is plain memory owned by exactly one context; moving that ownership
// between CPUs is fine.
unsafe impl Send for KernelStack {}
// SAFETY: shared references only read the address range.
unsafe impl Sync for KernelStack {}

impl KernelStack {
    fn layout() -> Layout {
        // 4 KiB alignment keeps the stack within as few pages as possible.
        Layout::from_size_align(KERNEL_STACK_SIZE, 4096).expect("constant layout")
    }

    fn new() -> Option<KernelStack> {
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc(Self::layout()) };
        if base.is_null() {
            return None;
        }
        // SAFETY: the allocation is at least 8 bytes and 4096-aligned.
        unsafe { (base as *mut u64).write(STACK_CANARY) };
        Some(KernelStack { base })
    }

    fn bounds(&self) -> (u64, u64) {
        let lo = self.base as u64;
        (lo, lo + KERNEL_STACK_SIZE as u64)
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc` with the same layout; the scheduler drops a
        // context only after switching away from it for good.
        unsafe { dealloc(self.base, Self::layout()) }
    }
}

/// One schedulable kernel context.
pub struct Context {
    /// Saved `rsp` while switched out.
    rsp: AtomicU64,
    /// The FS base (the application's TLS pointer) while switched out.
    fs_base: AtomicU64,
    stack: Option<KernelStack>,
    /// Bounds of the stack (the boot stack for the boot context).
    stack_lo: u64,
    stack_top: u64,
}

extern "C" {
    fn skiff_switch_context(save_rsp: *mut u64, load_rsp: u64);
    fn skiff_thread_start();
    fn skiff_kernel_thread_start();
}

/// What a new kernel thread calls, stored at the top of its stack.
#[repr(C)]
struct KernelEntry {
    entry: fn(u64) -> !,
    arg: u64,
}

global_asm!(
    r#"
    .section .text.skiff_switch, "ax"
    .global skiff_switch_context
skiff_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    /* First instructions of a new thread: rbx holds its trap frame, rsp its vector
       state. Let the scheduler finish the switch, then leave like a trap return. */
    .global skiff_thread_start
skiff_thread_start:
    call {start}
    jmp skiff_trap_resume

    /* First instructions of a new kernel thread: r12 holds its KernelEntry, rsp is
       16-byte aligned (the System V alignment at a call). */
    .global skiff_kernel_thread_start
skiff_kernel_thread_start:
    xorl %ebp, %ebp
    movq %r12, %rdi
    call {kstart}
    ud2
    .text
    "#,
    start = sym crate::entry::thread_start_trampoline,
    kstart = sym kernel_thread_main,
    options(att_syntax)
);

impl Context {
    /// The context already running on the boot stack (it becomes the idle thread).
    pub fn boot(stack_lo: u64, stack_top: u64) -> Context {
        Context {
            rsp: AtomicU64::new(0),
            fs_base: AtomicU64::new(0),
            stack: None,
            stack_lo,
            stack_top,
        }
    }

    /// A new context that, when first switched to, returns to application code with the
    /// registers in `frame`, the vector state in `fpu` (one save area in the format of
    /// [`crate::fpu::format`]) and FS base `fs_base`. `None` when memory is exhausted.
    pub fn new_user(frame: &TrapFrame, fpu: &[u8], fs_base: u64) -> Option<Context> {
        let format = crate::fpu::format();
        assert_eq!(fpu.len(), format.size, "vector state of the wrong size");
        let stack = KernelStack::new()?;
        let (lo, top) = stack.bounds();
        // The layout the trap stub leaves below a frame, then the switch's saved
        // registers: [r15 r14 r13 r12 rbx rbp ret] with rbx = frame, ret = thread start.
        let frame_addr = top - core::mem::size_of::<TrapFrame>() as u64;
        let fpu_addr = (frame_addr - format.size as u64) & !63;
        let switch_addr = fpu_addr - 7 * 8;
        // SAFETY: all three regions lie inside the freshly allocated stack (64 KiB, far
        // more than the frame, one save area and seven words) and nothing else refers to
        // that memory yet.
        unsafe {
            (frame_addr as *mut TrapFrame).write(*frame);
            core::ptr::copy_nonoverlapping(fpu.as_ptr(), fpu_addr as *mut u8, fpu.len());
            let words = switch_addr as *mut u64;
            for i in 0..6 {
                words.add(i).write(0);
            }
            words.add(4).write(frame_addr); // rbx
            words.add(6).write(skiff_thread_start as *const () as u64);
        }
        Some(Context {
            rsp: AtomicU64::new(switch_addr),
            fs_base: AtomicU64::new(fs_base),
            stack: Some(stack),
            stack_lo: lo,
            stack_top: top,
        })
    }

    /// A new context that, when first switched to, finishes the switch (the scheduler's
    /// `thread_start` handler), enables interrupts and calls `entry(arg)` on its own
    /// kernel stack. `None` when memory is exhausted.
    pub fn new_kernel(entry: fn(u64) -> !, arg: u64) -> Option<Context> {
        let stack = KernelStack::new()?;
        let (lo, top) = stack.bounds();
        // [KernelEntry] at the top; below it the switch's saved registers
        // [r15 r14 r13 r12 rbx rbp ret] with r12 = the entry, ret = kernel thread start,
        // placed so that rsp is 16-byte aligned once `ret` has popped them.
        let entry_addr = top - 16;
        let start_rsp = entry_addr;
        let switch_addr = start_rsp - 7 * 8;
        const _: () = assert!(core::mem::size_of::<KernelEntry>() == 16);
        // SAFETY: both regions lie inside the freshly allocated stack (64 KiB, far more
        // than 16 bytes and seven words), suitably aligned (the top is 4096-aligned), and
        // nothing else refers to that memory yet.
        unsafe {
            (entry_addr as *mut KernelEntry).write(KernelEntry { entry, arg });
            let words = switch_addr as *mut u64;
            for i in 0..6 {
                words.add(i).write(0);
            }
            words.add(3).write(entry_addr); // r12
            words
                .add(6)
                .write(skiff_kernel_thread_start as *const () as u64);
        }
        Some(Context {
            rsp: AtomicU64::new(switch_addr),
            fs_base: AtomicU64::new(0),
            stack: Some(stack),
            stack_lo: lo,
            stack_top: top,
        })
    }

    /// Whether the bottom of the stack is intact (false: a kernel stack overflow).
    pub fn stack_intact(&self) -> bool {
        match &self.stack {
            // SAFETY: the canary word lies at the start of the owned allocation.
            Some(s) => unsafe { (s.base as *const u64).read_volatile() == STACK_CANARY },
            None => true,
        }
    }
}

/// The Rust side of a new kernel thread's first instructions.
extern "C" fn kernel_thread_main(start: *const KernelEntry) -> ! {
    // SAFETY: `new_kernel` wrote a `KernelEntry` at `start`, at the top of this thread's
    // own stack, above everything this thread pushes; nothing else writes it.
    let KernelEntry { entry, arg } = unsafe { start.read() };
    crate::entry::thread_start_trampoline();
    crate::cpu::enable_interrupts();
    entry(arg)
}

/// A context switch worked out while the scheduler's lock was held, carried out after
/// the lock is released (with interrupts still masked), so the lock is never held by a
/// stack that is switched out.
pub struct SwitchPlan {
    save_rsp: *mut u64,
    save_fs: *const AtomicU64,
    load_rsp: u64,
    load_fs: u64,
    stack_lo: u64,
    stack_top: u64,
}

impl SwitchPlan {
    /// Plan the switch from the running context `from` to `to`.
    ///
    /// The scheduler guarantees what this cannot check: `from` is the context running
    /// now, `to` is either new or was saved by an earlier switch, and both stay alive
    /// (the scheduler holds them) until the switched-to side has run
    /// [`SwitchPlan::execute`]'s counterpart, i.e. until after the switch.
    pub fn new(from: &Context, to: &Context) -> SwitchPlan {
        SwitchPlan {
            save_rsp: from.rsp.as_ptr(),
            save_fs: &from.fs_base,
            load_rsp: to.rsp.load(Ordering::Relaxed),
            load_fs: to.fs_base.load(Ordering::Relaxed),
            stack_lo: to.stack_lo,
            stack_top: to.stack_top,
        }
    }

    /// Carry the switch out, with interrupts disabled. Returns when a later switch
    /// comes back to the context that was running.
    pub fn execute(self) {
        assert!(
            !crate::cpu::interrupts_enabled(),
            "context switch with interrupts on"
        );
        // SAFETY: per `new`'s contract both contexts are alive: `save_fs` points at the
        // outgoing context's field, `save_rsp` at the slot its own resumption reads back,
        // and `load_rsp` at a stack laid out by `skiff_switch_context` or `new_user`.
        unsafe {
            (*self.save_fs).store(crate::cpu::fs_base(), Ordering::Relaxed);
            crate::cpu::set_fs_base(self.load_fs);
            crate::percpu::set_kernel_stack(self.stack_lo, self.stack_top);
            skiff_switch_context(self.save_rsp, self.load_rsp)
        }
    }
}
