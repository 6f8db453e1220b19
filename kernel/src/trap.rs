//! What each interrupt and exception vector means to Skiff.
//!
//! Device interrupts are acknowledged and handed to their driver. Exceptions in
//! application code become signals (through the syscall layer, which owns the process);
//! page faults first get a chance at demand paging. An exception in kernel code that
//! is not a recoverable user-memory access is a kernel bug: it is reported with the
//! registers and the machine stops with the kernel-failure status, never hangs.

use skiff_arch::idt::{exception_name, vectors};
use skiff_arch::{cpu, lapic, TrapFrame};
use skiff_bootproto::ExitReport;
use skiff_console as console;
use skiff_syscall::fault::{self, FaultOutcome};

pub fn handle(frame: &mut TrapFrame) {
    match frame.vector {
        vectors::TIMER => {
            // Its only job is to end a `hlt`: sleepers and waiters re-check their
            // deadline when they wake.
            lapic::eoi();
        }
        v if v == vectors::IRQ_BASE + skiff_arch::serial::IRQ as u64 => {
            console::on_receive_interrupt();
            lapic::eoi();
        }
        vectors::SPURIOUS => {}
        vectors::PAGE_FAULT => page_fault(frame),
        v if v < 32 => exception(frame),
        v => {
            console::warn!("unexpected interrupt vector {}", v);
            lapic::eoi();
        }
    }
}

fn page_fault(frame: &mut TrapFrame) {
    let addr = cpu::read_cr2();
    match fault::page_fault(frame, addr) {
        FaultOutcome::Resolved => {}
        FaultOutcome::Fixup(rip) => frame.rip = rip,
        FaultOutcome::Signal => {}
        FaultOutcome::KernelBug => kernel_bug(frame, addr),
    }
}

fn exception(frame: &mut TrapFrame) {
    if frame.from_app() {
        fault::app_exception(frame);
    } else {
        kernel_bug(frame, cpu::read_cr2());
    }
}

fn kernel_bug(frame: &TrapFrame, cr2: u64) -> ! {
    cpu::disable_interrupts();
    console::error!(
        "kernel bug: {} (vector {}) at rip {:#x}, error code {:#x}, fault address {:#x}, rsp {:#x}",
        exception_name(frame.vector),
        frame.vector,
        frame.rip,
        frame.error_code,
        cr2,
        frame.rsp
    );
    console::error!(
        "  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp
    );
    console::exit(ExitReport::KernelFailure)
}
