//! Page protections (`PROT_*`), the kind of access a fault or a user-copy makes, and
//! what a failed fault means for the application.

use crate::abi::{
    BUS_ADRERR, PROT_EXEC, PROT_READ, PROT_SEM, PROT_WRITE, SEGV_ACCERR, SEGV_MAPERR, SIGBUS,
    SIGKILL, SIGSEGV,
};
use skiff_errno::{Errno, KResult};

/// What a mapping allows. `Prot::NONE` is `PROT_NONE`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Prot {
    /// `PROT_READ`.
    pub read: bool,
    /// `PROT_WRITE`.
    pub write: bool,
    /// `PROT_EXEC`.
    pub exec: bool,
}

impl Prot {
    /// `PROT_NONE`.
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    /// `PROT_READ`.
    pub const READ: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    /// `PROT_READ | PROT_WRITE`.
    pub const READ_WRITE: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };
    /// `PROT_READ | PROT_EXEC`.
    pub const READ_EXEC: Prot = Prot {
        read: true,
        write: false,
        exec: true,
    };
    /// `PROT_READ | PROT_WRITE | PROT_EXEC`.
    pub const ALL: Prot = Prot {
        read: true,
        write: true,
        exec: true,
    };

    /// Decodes `mmap`'s `prot`. Linux's `mmap` does not validate `prot`: bits other
    /// than read/write/exec are ignored (measured on Linux 6.18: `PROT_READ | 0x10`
    /// succeeds), so this cannot fail.
    pub const fn from_mmap_bits(bits: u64) -> Prot {
        Prot {
            read: bits & PROT_READ != 0,
            write: bits & PROT_WRITE != 0,
            exec: bits & PROT_EXEC != 0,
        }
    }

    /// Decodes `mprotect`'s `prot` once the grows-down/up bits are removed: anything
    /// besides read/write/exec/`PROT_SEM` is `EINVAL` (Linux's `arch_validate_prot`).
    pub fn from_mprotect_bits(bits: u64) -> KResult<Prot> {
        if bits & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(Prot::from_mmap_bits(bits))
    }

    /// The `PROT_*` bits.
    pub const fn to_linux(self) -> u64 {
        (if self.read { PROT_READ } else { 0 })
            | (if self.write { PROT_WRITE } else { 0 })
            | (if self.exec { PROT_EXEC } else { 0 })
    }

    /// Whether a mapping with this protection lets `access` through, by the x86 rule
    /// Linux applies in `access_error`: writes need `PROT_WRITE`, instruction fetches
    /// need `PROT_EXEC`, and a read succeeds on any accessible page (x86 cannot make a
    /// present page unreadable, so write-only and exec-only pages read fine).
    pub const fn allows(self, access: Access) -> bool {
        match access {
            Access::Read => self.read || self.write || self.exec,
            Access::Write => self.write,
            Access::Exec => self.exec,
        }
    }

    /// Whether any access at all is possible (not `PROT_NONE`).
    pub const fn is_accessible(self) -> bool {
        self.read || self.write || self.exec
    }
}

/// The kind of memory access that faulted or that a system call is about to make.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Exec,
}

/// Why a page fault could not be resolved; the kernel turns it into a signal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FaultKind {
    /// No mapping covers the address (`SIGSEGV`, `SEGV_MAPERR`).
    Unmapped,
    /// A mapping covers it but does not allow the access (`SIGSEGV`, `SEGV_ACCERR`).
    Protection,
    /// A file-backed page lies wholly past the end of the file, or reading the file
    /// failed (`SIGBUS`, `BUS_ADRERR`).
    Bus,
    /// No frame was available for the page. Linux's fault path invokes the OOM killer
    /// here; with a single application that means `SIGKILL`.
    OutOfMemory,
}

impl FaultKind {
    /// The signal number and `si_code` Linux delivers for this outcome.
    pub const fn signal_and_code(self) -> (u32, i32) {
        match self {
            FaultKind::Unmapped => (SIGSEGV, SEGV_MAPERR),
            FaultKind::Protection => (SIGSEGV, SEGV_ACCERR),
            FaultKind::Bus => (SIGBUS, BUS_ADRERR),
            FaultKind::OutOfMemory => (SIGKILL, 0),
        }
    }
}
