//! The one `Errno` type of Skiff.
//!
//! Every kernel subsystem returns `Result<T, Errno>` (or a narrow error enum that maps
//! into this one); the syscall dispatcher is the only place that negates it into the
//! raw `-errno` the application sees. The numbers are Linux x86_64's.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use core::fmt;

/// A Linux error number. `EWOULDBLOCK` is `EAGAIN`, `ENOTSUP` is `EOPNOTSUPP`, as on Linux.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Errno(u16);

/// Result type used throughout the kernel.
pub type KResult<T> = Result<T, Errno>;

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// No such file or directory.
    pub const ENOENT: Errno = Errno(2);
    /// No such process.
    pub const ESRCH: Errno = Errno(3);
    /// Interrupted system call.
    pub const EINTR: Errno = Errno(4);
    /// Input/output error.
    pub const EIO: Errno = Errno(5);
    /// No such device or address.
    pub const ENXIO: Errno = Errno(6);
    /// Argument list too long.
    pub const E2BIG: Errno = Errno(7);
    /// Exec format error.
    pub const ENOEXEC: Errno = Errno(8);
    /// Bad file descriptor.
    pub const EBADF: Errno = Errno(9);
    /// No child processes.
    pub const ECHILD: Errno = Errno(10);
    /// Resource temporarily unavailable.
    pub const EAGAIN: Errno = Errno(11);
    /// Cannot allocate memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Permission denied.
    pub const EACCES: Errno = Errno(13);
    /// Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// Block device required.
    pub const ENOTBLK: Errno = Errno(15);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// File exists.
    pub const EEXIST: Errno = Errno(17);
    /// Invalid cross-device link.
    pub const EXDEV: Errno = Errno(18);
    /// No such device.
    pub const ENODEV: Errno = Errno(19);
    /// Not a directory.
    pub const ENOTDIR: Errno = Errno(20);
    /// Is a directory.
    pub const EISDIR: Errno = Errno(21);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// Too many open files in system.
    pub const ENFILE: Errno = Errno(23);
    /// Too many open files.
    pub const EMFILE: Errno = Errno(24);
    /// Inappropriate ioctl for device.
    pub const ENOTTY: Errno = Errno(25);
    /// Text file busy.
    pub const ETXTBSY: Errno = Errno(26);
    /// File too large.
    pub const EFBIG: Errno = Errno(27);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(28);
    /// Illegal seek.
    pub const ESPIPE: Errno = Errno(29);
    /// Read-only file system.
    pub const EROFS: Errno = Errno(30);
    /// Too many links.
    pub const EMLINK: Errno = Errno(31);
    /// Broken pipe.
    pub const EPIPE: Errno = Errno(32);
    /// Numerical argument out of domain.
    pub const EDOM: Errno = Errno(33);
    /// Numerical result out of range.
    pub const ERANGE: Errno = Errno(34);
    /// Resource deadlock avoided.
    pub const EDEADLK: Errno = Errno(35);
    /// File name too long.
    pub const ENAMETOOLONG: Errno = Errno(36);
    /// No locks available.
    pub const ENOLCK: Errno = Errno(37);
    /// Function not implemented.
    pub const ENOSYS: Errno = Errno(38);
    /// Directory not empty.
    pub const ENOTEMPTY: Errno = Errno(39);
    /// Too many levels of symbolic links.
    pub const ELOOP: Errno = Errno(40);
    /// No message of desired type.
    pub const ENOMSG: Errno = Errno(42);
    /// Identifier removed.
    pub const EIDRM: Errno = Errno(43);
    /// Device not a stream.
    pub const ENOSTR: Errno = Errno(60);
    /// No data available.
    pub const ENODATA: Errno = Errno(61);
    /// Timer expired.
    pub const ETIME: Errno = Errno(62);
    /// Value too large for defined data type.
    pub const EOVERFLOW: Errno = Errno(75);
    /// File descriptor in bad state.
    pub const EBADFD: Errno = Errno(77);
    /// Invalid or incomplete multibyte or wide character.
    pub const EILSEQ: Errno = Errno(84);
    /// Interrupted system call should be restarted.
    pub const ERESTART: Errno = Errno(85);
    /// Socket operation on non-socket.
    pub const ENOTSOCK: Errno = Errno(88);
    /// Destination address required.
    pub const EDESTADDRREQ: Errno = Errno(89);
    /// Message too long.
    pub const EMSGSIZE: Errno = Errno(90);
    /// Protocol wrong type for socket.
    pub const EPROTOTYPE: Errno = Errno(91);
    /// Protocol not available.
    pub const ENOPROTOOPT: Errno = Errno(92);
    /// Protocol not supported.
    pub const EPROTONOSUPPORT: Errno = Errno(93);
    /// Socket type not supported.
    pub const ESOCKTNOSUPPORT: Errno = Errno(94);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// Protocol family not supported.
    pub const EPFNOSUPPORT: Errno = Errno(96);
    /// Address family not supported by protocol.
    pub const EAFNOSUPPORT: Errno = Errno(97);
    /// Address already in use.
    pub const EADDRINUSE: Errno = Errno(98);
    /// Cannot assign requested address.
    pub const EADDRNOTAVAIL: Errno = Errno(99);
    /// Network is down.
    pub const ENETDOWN: Errno = Errno(100);
    /// Network is unreachable.
    pub const ENETUNREACH: Errno = Errno(101);
    /// Network dropped connection on reset.
    pub const ENETRESET: Errno = Errno(102);
    /// Software caused connection abort.
    pub const ECONNABORTED: Errno = Errno(103);
    /// Connection reset by peer.
    pub const ECONNRESET: Errno = Errno(104);
    /// No buffer space available.
    pub const ENOBUFS: Errno = Errno(105);
    /// Transport endpoint is already connected.
    pub const EISCONN: Errno = Errno(106);
    /// Transport endpoint is not connected.
    pub const ENOTCONN: Errno = Errno(107);
    /// Cannot send after transport endpoint shutdown.
    pub const ESHUTDOWN: Errno = Errno(108);
    /// Connection timed out.
    pub const ETIMEDOUT: Errno = Errno(110);
    /// Connection refused.
    pub const ECONNREFUSED: Errno = Errno(111);
    /// Host is down.
    pub const EHOSTDOWN: Errno = Errno(112);
    /// No route to host.
    pub const EHOSTUNREACH: Errno = Errno(113);
    /// Operation already in progress.
    pub const EALREADY: Errno = Errno(114);
    /// Operation now in progress.
    pub const EINPROGRESS: Errno = Errno(115);
    /// Stale file handle.
    pub const ESTALE: Errno = Errno(116);
    /// Disk quota exceeded.
    pub const EDQUOT: Errno = Errno(122);
    /// Operation canceled.
    pub const ECANCELED: Errno = Errno(125);
    /// Owner died.
    pub const EOWNERDEAD: Errno = Errno(130);
    /// State not recoverable.
    pub const ENOTRECOVERABLE: Errno = Errno(131);
    /// Kernel-internal: a blocking call was interrupted by a signal; the syscall layer
    /// restarts it if the handler has `SA_RESTART` (or no handler runs) and otherwise
    /// reports `EINTR`. Never reaches the application.
    pub const ERESTARTSYS: Errno = Errno(512);
    /// Kernel-internal: like `ERESTARTSYS`, but `EINTR` whenever a handler runs, whatever
    /// its `SA_RESTART` (Linux's `ERESTARTNOHAND`: `pause`, `sigsuspend`, `poll`).
    pub const ERESTARTNOHAND: Errno = Errno(514);
    /// Alias of `EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// Alias of `EOPNOTSUPP`.
    pub const ENOTSUP: Errno = Errno::EOPNOTSUPP;
    /// Alias of `EDEADLK`.
    pub const EDEADLOCK: Errno = Errno::EDEADLK;

    /// The positive error number.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The error number from its positive value, if it is one Linux defines here.
    pub fn from_code(code: u16) -> Option<Errno> {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|_| Errno(code))
    }

    /// The symbolic name, such as `"ENOENT"`.
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self.0)
            .map_or("E?", |e| e.1)
    }

    /// The strerror-style description.
    pub fn description(self) -> &'static str {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self.0)
            .map_or("Unknown error", |e| e.2)
    }

    /// Whether this is one of the kernel-internal restart codes.
    pub const fn is_restart(self) -> bool {
        matches!(self.0, 512 | 514)
    }

    /// The value a syscall returns in `rax` for this error.
    pub const fn as_syscall_return(self) -> i64 {
        -(self.0 as i64)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.name())
    }
}

static TABLE: &[(u16, &str, &str)] = &[
    (1, "EPERM", "Operation not permitted"),
    (2, "ENOENT", "No such file or directory"),
    (3, "ESRCH", "No such process"),
    (4, "EINTR", "Interrupted system call"),
    (5, "EIO", "Input/output error"),
    (6, "ENXIO", "No such device or address"),
    (7, "E2BIG", "Argument list too long"),
    (8, "ENOEXEC", "Exec format error"),
    (9, "EBADF", "Bad file descriptor"),
    (10, "ECHILD", "No child processes"),
    (11, "EAGAIN", "Resource temporarily unavailable"),
    (12, "ENOMEM", "Cannot allocate memory"),
    (13, "EACCES", "Permission denied"),
    (14, "EFAULT", "Bad address"),
    (15, "ENOTBLK", "Block device required"),
    (16, "EBUSY", "Device or resource busy"),
    (17, "EEXIST", "File exists"),
    (18, "EXDEV", "Invalid cross-device link"),
    (19, "ENODEV", "No such device"),
    (20, "ENOTDIR", "Not a directory"),
    (21, "EISDIR", "Is a directory"),
    (22, "EINVAL", "Invalid argument"),
    (23, "ENFILE", "Too many open files in system"),
    (24, "EMFILE", "Too many open files"),
    (25, "ENOTTY", "Inappropriate ioctl for device"),
    (26, "ETXTBSY", "Text file busy"),
    (27, "EFBIG", "File too large"),
    (28, "ENOSPC", "No space left on device"),
    (29, "ESPIPE", "Illegal seek"),
    (30, "EROFS", "Read-only file system"),
    (31, "EMLINK", "Too many links"),
    (32, "EPIPE", "Broken pipe"),
    (33, "EDOM", "Numerical argument out of domain"),
    (34, "ERANGE", "Numerical result out of range"),
    (35, "EDEADLK", "Resource deadlock avoided"),
    (36, "ENAMETOOLONG", "File name too long"),
    (37, "ENOLCK", "No locks available"),
    (38, "ENOSYS", "Function not implemented"),
    (39, "ENOTEMPTY", "Directory not empty"),
    (40, "ELOOP", "Too many levels of symbolic links"),
    (42, "ENOMSG", "No message of desired type"),
    (43, "EIDRM", "Identifier removed"),
    (60, "ENOSTR", "Device not a stream"),
    (61, "ENODATA", "No data available"),
    (62, "ETIME", "Timer expired"),
    (75, "EOVERFLOW", "Value too large for defined data type"),
    (77, "EBADFD", "File descriptor in bad state"),
    (
        84,
        "EILSEQ",
        "Invalid or incomplete multibyte or wide character",
    ),
    (
        85,
        "ERESTART",
        "Interrupted system call should be restarted",
    ),
    (88, "ENOTSOCK", "Socket operation on non-socket"),
    (89, "EDESTADDRREQ", "Destination address required"),
    (90, "EMSGSIZE", "Message too long"),
    (91, "EPROTOTYPE", "Protocol wrong type for socket"),
    (92, "ENOPROTOOPT", "Protocol not available"),
    (93, "EPROTONOSUPPORT", "Protocol not supported"),
    (94, "ESOCKTNOSUPPORT", "Socket type not supported"),
    (95, "EOPNOTSUPP", "Operation not supported"),
    (96, "EPFNOSUPPORT", "Protocol family not supported"),
    (
        97,
        "EAFNOSUPPORT",
        "Address family not supported by protocol",
    ),
    (98, "EADDRINUSE", "Address already in use"),
    (99, "EADDRNOTAVAIL", "Cannot assign requested address"),
    (100, "ENETDOWN", "Network is down"),
    (101, "ENETUNREACH", "Network is unreachable"),
    (102, "ENETRESET", "Network dropped connection on reset"),
    (103, "ECONNABORTED", "Software caused connection abort"),
    (104, "ECONNRESET", "Connection reset by peer"),
    (105, "ENOBUFS", "No buffer space available"),
    (106, "EISCONN", "Transport endpoint is already connected"),
    (107, "ENOTCONN", "Transport endpoint is not connected"),
    (
        108,
        "ESHUTDOWN",
        "Cannot send after transport endpoint shutdown",
    ),
    (110, "ETIMEDOUT", "Connection timed out"),
    (111, "ECONNREFUSED", "Connection refused"),
    (112, "EHOSTDOWN", "Host is down"),
    (113, "EHOSTUNREACH", "No route to host"),
    (114, "EALREADY", "Operation already in progress"),
    (115, "EINPROGRESS", "Operation now in progress"),
    (116, "ESTALE", "Stale file handle"),
    (122, "EDQUOT", "Disk quota exceeded"),
    (125, "ECANCELED", "Operation canceled"),
    (130, "EOWNERDEAD", "Owner died"),
    (131, "ENOTRECOVERABLE", "State not recoverable"),
    (512, "ERESTARTSYS", "Interrupted system call (restartable)"),
    (
        514,
        "ERESTARTNOHAND",
        "Interrupted system call (restart if no handler)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_linux() {
        assert_eq!(Errno::ENOENT.code(), 2);
        assert_eq!(Errno::EFAULT.code(), 14);
        assert_eq!(Errno::ENOSYS.code(), 38);
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
        assert_eq!(Errno::ENOTSUP.code(), 95);
        assert_eq!(Errno::ECONNREFUSED.code(), 111);
    }

    #[test]
    fn names_and_round_trip() {
        assert_eq!(Errno::EINVAL.name(), "EINVAL");
        assert_eq!(Errno::from_code(22), Some(Errno::EINVAL));
        assert_eq!(Errno::from_code(41), None);
        assert_eq!(Errno::EBADF.as_syscall_return(), -9);
        for (code, _, _) in TABLE {
            assert_eq!(Errno::from_code(*code).unwrap().code(), *code);
        }
    }
}
