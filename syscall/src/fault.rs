//! What a fault in application code, or in the kernel touching application memory,
//! means.
//!
//! A page fault first goes to the address space (demand paging, stack growth). If that
//! fails and the faulting instruction is the user-copy routine, the copy is cut short
//! (`EFAULT` for the syscall). If the application itself faulted, it gets the signal
//! Linux would send, with Linux's `si_code` and address: its handler runs when the trap
//! returns, or, without one, the program is terminated with a report.

use crate::process;
use crate::signal::deliver::force_fault;
use crate::signal::frame::SigInfo;
use skiff_arch::idt::exception_name;
use skiff_arch::layout::is_user;
use skiff_arch::TrapFrame;
use skiff_bootproto::ExitReport;
use skiff_console as console;
use skiff_mm::paging::UserPageTable;
use skiff_mm::usercopy;
use skiff_vm::{Access, FaultKind};

/// What the trap handler should do after a page fault.
pub enum FaultOutcome {
    /// The page is now mapped; retry the instruction.
    Resolved,
    /// Resume the interrupted user-copy at this address (it reports `EFAULT`).
    Fixup(u64),
    /// The application was signalled; its handler runs as the trap returns.
    Signal,
    /// The kernel faulted on its own memory: a bug.
    KernelBug,
}

const PF_WRITE: u64 = 1 << 1;
const PF_INSTRUCTION: u64 = 1 << 4;

pub fn page_fault(frame: &mut TrapFrame, addr: u64) -> FaultOutcome {
    let access = if frame.error_code & PF_INSTRUCTION != 0 {
        Access::Exec
    } else if frame.error_code & PF_WRITE != 0 {
        Access::Write
    } else {
        Access::Read
    };
    let mut kind = FaultKind::Unmapped;
    if is_user(addr) {
        if let Some(p) = process::try_current() {
            // The address-space lock is never held while application memory is
            // touched, so finding it taken here means a kernel bug, not contention.
            match p.aspace.try_lock() {
                Some(mut aspace) => {
                    match aspace.handle_fault(&mut UserPageTable::current(), addr, access) {
                        Ok(()) => return FaultOutcome::Resolved,
                        Err(k) => kind = k,
                    }
                }
                None => {
                    console::error!(
                        "page fault at {:#x} while the address space was locked",
                        addr
                    );
                    return FaultOutcome::KernelBug;
                }
            }
        }
    }
    if let Some(fixup) = usercopy::fixup_for(frame.rip) {
        return FaultOutcome::Fixup(fixup);
    }
    if frame.from_app() {
        let (signal, code) = kind.signal_and_code();
        let what = match kind {
            FaultKind::Unmapped => "address not mapped",
            FaultKind::Protection => "access not permitted by the mapping",
            FaultKind::Bus => "mapped file page beyond end of file",
            FaultKind::OutOfMemory => "out of memory",
        };
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write",
            Access::Exec => "instruction fetch",
        };
        force_fault(
            frame,
            SigInfo::fault(signal as i32, code, addr),
            format_args!(
                "{} at address {:#x} ({}) at rip {:#x}",
                verb, addr, what, frame.rip
            ),
        );
        return FaultOutcome::Signal;
    }
    FaultOutcome::KernelBug
}

/// A CPU exception (other than a page fault) in application code.
pub fn app_exception(frame: &mut TrapFrame) {
    // Linux's signal and si_code for each vector (si_addr is the faulting instruction,
    // except for #GP and #AC, where Linux reports 0).
    let (signal, code, addr) = match frame.vector {
        0 => (SIGFPE, FPE_INTDIV, frame.rip),
        16 | 19 => (SIGFPE, 0, frame.rip),
        1 => (SIGTRAP, TRAP_TRACE, frame.rip),
        3 => (SIGTRAP, SI_KERNEL, 0),
        6 => (SIGILL, ILL_ILLOPN, frame.rip),
        17 => (SIGBUS, BUS_ADRALN, 0),
        _ => (SIGSEGV, SI_KERNEL, 0),
    };
    force_fault(
        frame,
        SigInfo::fault(signal as i32, code, addr),
        format_args!(
            "{} (vector {}) at rip {:#x}, error code {:#x}",
            exception_name(frame.vector),
            frame.vector,
            frame.rip,
            frame.error_code
        ),
    );
}

const FPE_INTDIV: i32 = 1;
const TRAP_TRACE: i32 = 2;
const ILL_ILLOPN: i32 = 2;
const BUS_ADRALN: i32 = 1;
const SI_KERNEL: i32 = 0x80;
const SIGTRAP: u8 = 5;
const SIGILL: u8 = 4;
const SIGBUS: u8 = 7;
const SIGFPE: u8 = 8;
const SIGSEGV: u8 = 11;

/// Linux's name for a signal number (`"signal"` for numbers without one).
pub fn signal_name(sig: u8) -> &'static str {
    skiff_bootproto::signal_name(sig).unwrap_or("signal")
}

/// End the program as the signal's default action would, after a report on stderr.
pub fn terminate(frame: Option<&TrapFrame>, signal: u8, what: core::fmt::Arguments<'_>) -> ! {
    match crate::process::try_current() {
        // A child's end is its parent's news (`wait4`), as on Linux, not the console's.
        Some(p) if !p.is_init() => {
            console::debug!("process {}: {}: {}", p.pid, signal_name(signal), what)
        }
        _ => console::error!("{}: {}", signal_name(signal), what),
    }
    if let Some(frame) = frame {
        console::debug!(
        "registers: rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x} rsp {:#x}",
        frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp, frame.rsp
    );
    }
    crate::lifecycle::end_process(ExitReport::Signaled(signal))
}
