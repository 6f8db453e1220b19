//! What each interrupt and exception vector means to Skiff.
//!
//! Device interrupts are acknowledged and handed to their driver; the timer drives the
//! scheduler. Exceptions in application code become signals (through the syscall layer,
//! which owns the process and delivers them before the trap returns);
//! page faults first get a chance at demand paging. An exception in kernel code that
//! is not a recoverable user-memory access is a kernel bug: it is reported with the
//! registers and the machine stops with the kernel-failure status, never hangs.

use skiff_arch::idt::{exception_name, vectors};
use skiff_arch::{cpu, lapic, TrapFrame};
use skiff_bootproto::ExitReport;
use skiff_console as console;
use skiff_syscall::fault::{self, FaultOutcome};

pub fn handle(frame: &mut TrapFrame, fpu: &mut [u8]) {
    match frame.vector {
        vectors::TIMER => {
            lapic::eoi();
            // Expire timers and end the slice; this may switch to another thread and
            // come back much later.
            skiff_sched::on_timer_interrupt(frame.from_app());
        }
        v if v == vectors::IRQ_BASE + skiff_arch::serial::IRQ as u64 => {
            console::on_receive_interrupt();
            skiff_syscall::wait::io_event();
            lapic::eoi();
        }
        v if v == vectors::IRQ_BASE + skiff_arch::rtc::IRQ as u64 => {
            let tsc = cpu::rdtsc();
            if let Some(secs) = skiff_arch::rtc::on_interrupt() {
                let correction = skiff_arch::time::on_rtc_update(tsc, secs);
                if let Some(hz) = correction.tsc_hz {
                    console::debug!("clock: TSC at {} Hz by the RTC", hz);
                }
                if let Some(step) = correction.step_realtime_ns {
                    console::debug!("clock: wall clock stepped {} us to the RTC", step / 1000);
                }
            }
            lapic::eoi();
        }
        v if (vectors::DEVICE_FIRST..=vectors::DEVICE_LAST).contains(&v) => {
            if !skiff_drivers::on_interrupt(v as u8) {
                console::warn!("interrupt on unclaimed device vector {}", v);
            }
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
    if frame.from_app() {
        skiff_syscall::return_to_app(frame, fpu);
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
