//! Character devices: `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`,
//! `/dev/urandom`, and the console as a terminal (`/dev/tty`, `/dev/console` and the
//! three initial descriptors), including the terminal ioctls programs use to ask
//! "am I on a terminal, how wide is it".
//!
//! Device nodes in a filesystem carry only a device number; the VFS keeps a table from
//! device number to driver (a [`CharDevice`]), as Linux does, so `mknod` of a known
//! number works too.

use crate::env::{Console, ConsoleStream, Entropy};
use crate::epoll::{EPOLLIN, EPOLLOUT, EPOLLRDNORM, EPOLLWRNORM};
use crate::types::makedev;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};
use spin::Mutex;

pub const DEV_NULL: u64 = makedev(1, 3);
pub const DEV_ZERO: u64 = makedev(1, 5);
pub const DEV_FULL: u64 = makedev(1, 7);
pub const DEV_RANDOM: u64 = makedev(1, 8);
pub const DEV_URANDOM: u64 = makedev(1, 9);
pub const DEV_TTY: u64 = makedev(5, 0);
pub const DEV_CONSOLE: u64 = makedev(5, 1);

/// Terminal and generic ioctl numbers (x86_64).
pub const TCGETS: u32 = 0x5401;
pub const TCSETS: u32 = 0x5402;
pub const TCSETSW: u32 = 0x5403;
pub const TCSETSF: u32 = 0x5404;
pub const TIOCSCTTY: u32 = 0x540E;
pub const TIOCGPGRP: u32 = 0x540F;
pub const TIOCSPGRP: u32 = 0x5410;
pub const TIOCGWINSZ: u32 = 0x5413;
pub const TIOCSWINSZ: u32 = 0x5414;
pub const FIONREAD: u32 = 0x541B;
pub const FIONBIO: u32 = 0x5421;
pub const TIOCGSID: u32 = 0x5429;

/// Size of the kernel's `struct termios` that `TCGETS`/`TCSETS` copy (x86_64: four
/// u32 flags, `c_line`, 19 control characters). C libraries convert to their own,
/// larger, user-space struct.
pub const KERNEL_TERMIOS_SIZE: usize = 36;
/// Size of `struct winsize`.
pub const WINSIZE_SIZE: usize = 8;

/// How many input bytes `ioctl(cmd)` reads from the user's `arg` pointer, so the
/// syscall layer can copy them before calling [`crate::OpenFile::ioctl`].
pub fn ioctl_input_len(cmd: u32) -> usize {
    match cmd {
        TCSETS | TCSETSW | TCSETSF => KERNEL_TERMIOS_SIZE,
        TIOCSWINSZ => WINSIZE_SIZE,
        TIOCSPGRP | FIONBIO => 4,
        _ => 0,
    }
}

/// What an ioctl produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoctlOut {
    /// Return this value; nothing to copy out.
    Return(i64),
    /// Copy these bytes to the user's `arg` pointer and return 0.
    CopyOut(Vec<u8>),
}

/// When a device last had each kind of readiness event, as stamps from
/// [`event_stamp`], so edge-triggered epoll can tell that something new happened even
/// when the device was ready before and after (a second write into a non-empty pipe),
/// and can order registrations by when they became ready, as Linux's ready list does.
///
/// Linux wakes a file's pollers with a key (`EPOLLIN` for new data, `EPOLLOUT` for new
/// room) and epoll ignores a wakeup whose key shares no bit with what the registration
/// asked for; a hangup wakes everyone. Keeping the three stamps apart reproduces that
/// filter: an edge-triggered `EPOLLIN` registration on an eventfd does not fire again
/// when a read takes one unit from a semaphore that stays readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Data arrived (Linux wakes with `EPOLLIN`).
    pub input: u64,
    /// Room appeared (Linux wakes with `EPOLLOUT`).
    pub output: u64,
    /// An end closed (Linux wakes every poller, whatever it asked for).
    pub hangup: u64,
}

static EVENT_CLOCK: AtomicU64 = AtomicU64::new(1);

/// A readiness event stamp: larger than every stamp handed out before it, so stamps
/// of different devices say which event came first.
pub fn event_stamp() -> u64 {
    EVENT_CLOCK.fetch_add(1, Ordering::Relaxed)
}

/// A character device driver.
pub trait CharDevice: Send + Sync {
    fn read(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize>;
    fn write(&self, buf: &[u8]) -> KResult<usize>;
    /// Memory-like devices accept `lseek` (it always lands on 0) and `pread`;
    /// terminals do not (`ESPIPE`).
    fn seekable(&self) -> bool {
        true
    }
    fn is_tty(&self) -> bool {
        false
    }
    fn ioctl(&self, _cmd: u32, _arg: &[u8]) -> KResult<IoctlOut> {
        Err(Errno::ENOTTY)
    }
    /// Whether a read would not block (data or end of file). Memory-like devices
    /// always are.
    fn read_ready(&self) -> bool {
        true
    }
    /// Whether a write would not block.
    fn write_ready(&self) -> bool {
        true
    }
    /// Bytes waiting to be read, for devices that queue (`FIONREAD` on pipes).
    fn buffered(&self) -> Option<usize> {
        None
    }
    /// What Linux's `poll` method of this file would report, as `EPOLL*` bits (the
    /// same values as `POLL*`). [`crate::OpenFile::poll_mask`] removes the input bits
    /// of files not open for reading and the output bits of files not open for writing.
    fn poll_mask(&self) -> u32 {
        let mut mask = 0;
        if self.read_ready() {
            mask |= EPOLLIN | EPOLLRDNORM;
        }
        if self.write_ready() {
            mask |= EPOLLOUT | EPOLLWRNORM;
        }
        mask
    }
    /// When the device last had each kind of readiness event (see [`Generation`]). A
    /// device that keeps no stamps reports zeros; epoll then sees an edge only when
    /// readiness appears.
    fn generation(&self) -> Generation {
        Generation::default()
    }
    /// Whether the file can be watched by epoll: Linux refuses (`EPERM`) files whose
    /// driver has no `poll` method, such as `/dev/null` and `/dev/zero`.
    fn pollable(&self) -> bool {
        true
    }
    /// The driver as `Any`, for the syscall layer to find the object behind a
    /// descriptor of a kind it must handle itself (an epoll instance).
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
    /// The socket behind this device, for the socket system calls (`ENOTSOCK`
    /// otherwise).
    fn as_socket(&self) -> Option<&dyn crate::socket::Socket> {
        None
    }
    /// What `/proc/self/fd` shows for a device with no name in the tree
    /// (`pipe:[ino]`, `anon_inode:[eventfd]`).
    fn link_name(&self) -> Option<Vec<u8>> {
        None
    }
}

/// `/dev/null`: reads hit end of file, writes vanish.
pub struct NullDevice;
impl CharDevice for NullDevice {
    // Linux's memory devices have no poll method: epoll_ctl gives EPERM.
    fn pollable(&self) -> bool {
        false
    }
    fn read(&self, _buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        Ok(0)
    }
    fn write(&self, buf: &[u8]) -> KResult<usize> {
        Ok(buf.len())
    }
}

/// `/dev/zero`: reads give zeros, writes vanish.
pub struct ZeroDevice;
impl CharDevice for ZeroDevice {
    // Linux's memory devices have no poll method: epoll_ctl gives EPERM.
    fn pollable(&self) -> bool {
        false
    }
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        buf.fill(0);
        Ok(buf.len())
    }
    fn write(&self, buf: &[u8]) -> KResult<usize> {
        Ok(buf.len())
    }
}

/// `/dev/full`: reads give zeros, writes fail with `ENOSPC`.
pub struct FullDevice;
impl CharDevice for FullDevice {
    // Linux's memory devices have no poll method: epoll_ctl gives EPERM.
    fn pollable(&self) -> bool {
        false
    }
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        buf.fill(0);
        Ok(buf.len())
    }
    fn write(&self, _buf: &[u8]) -> KResult<usize> {
        Err(Errno::ENOSPC)
    }
}

/// `/dev/random` and `/dev/urandom`: reads come from the entropy source; writes are
/// accepted and (as on Linux for unprivileged mixing) do not credit entropy.
pub struct RandomDevice {
    pub entropy: Arc<dyn Entropy>,
}
impl CharDevice for RandomDevice {
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        self.entropy.fill(buf);
        Ok(buf.len())
    }
    fn write(&self, buf: &[u8]) -> KResult<usize> {
        Ok(buf.len())
    }
}

/// Kernel `struct termios` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl Termios {
    /// Linux's `tty_std_termios`: ICRNL|IXON, OPOST|ONLCR, B38400|CS8|CREAD|HUPCL,
    /// ISIG|ICANON|ECHO|ECHOE|ECHOK|ECHOCTL|ECHOKE|IEXTEN, and `INIT_C_CC`.
    pub fn linux_default() -> Termios {
        Termios {
            iflag: 0o2400,
            oflag: 0o5,
            cflag: 0o2277,
            lflag: 0o105073,
            line: 0,
            cc: [
                3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0,
            ],
        }
    }

    pub fn to_bytes(&self) -> [u8; KERNEL_TERMIOS_SIZE] {
        let mut b = [0u8; KERNEL_TERMIOS_SIZE];
        b[0..4].copy_from_slice(&self.iflag.to_le_bytes());
        b[4..8].copy_from_slice(&self.oflag.to_le_bytes());
        b[8..12].copy_from_slice(&self.cflag.to_le_bytes());
        b[12..16].copy_from_slice(&self.lflag.to_le_bytes());
        b[16] = self.line;
        b[17..36].copy_from_slice(&self.cc);
        b
    }

    /// `EFAULT` when fewer than [`KERNEL_TERMIOS_SIZE`] bytes were supplied.
    pub fn from_bytes(b: &[u8]) -> KResult<Termios> {
        if b.len() < KERNEL_TERMIOS_SIZE {
            return Err(Errno::EFAULT);
        }
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut cc = [0u8; 19];
        cc.copy_from_slice(&b[17..36]);
        Ok(Termios {
            iflag: word(0),
            oflag: word(4),
            cflag: word(8),
            lflag: word(12),
            line: b[16],
            cc,
        })
    }
}

/// The one terminal of the machine: the host console plus the terminal state that
/// every descriptor on it shares (termios, window size override, foreground group).
pub struct Terminal {
    console: Arc<dyn Console>,
    /// Whether the host side is a terminal; if not, the initial descriptors behave like
    /// pipes (not ttys).
    console_is_tty: bool,
    termios: Mutex<Termios>,
    foreground_pgrp: Mutex<i32>,
    window_override: Mutex<Option<[u8; WINSIZE_SIZE]>>,
}

impl Terminal {
    pub fn new(console: Arc<dyn Console>, console_is_tty: bool) -> Arc<Terminal> {
        Arc::new(Terminal {
            console,
            console_is_tty,
            termios: Mutex::new(Termios::linux_default()),
            foreground_pgrp: Mutex::new(1),
            window_override: Mutex::new(None),
        })
    }

    pub fn console_is_tty(&self) -> bool {
        self.console_is_tty
    }

    pub fn console(&self) -> &Arc<dyn Console> {
        &self.console
    }

    pub fn termios(&self) -> Termios {
        *self.termios.lock()
    }

    /// Terminal ioctls shared by every descriptor on the terminal.
    pub fn ioctl(&self, cmd: u32, arg: &[u8]) -> KResult<IoctlOut> {
        let int_arg = || -> KResult<i32> {
            arg.get(0..4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(Errno::EFAULT)
        };
        match cmd {
            TCGETS => Ok(IoctlOut::CopyOut(self.termios.lock().to_bytes().to_vec())),
            // No line discipline runs in the guest (the host terminal echoes and edits
            // lines), so the settings are stored for TCGETS and otherwise have no effect;
            // there is no output queue to drain (TCSETSW) or input queue to flush (TCSETSF).
            TCSETS | TCSETSW | TCSETSF => {
                *self.termios.lock() = Termios::from_bytes(arg)?;
                Ok(IoctlOut::Return(0))
            }
            TIOCGWINSZ => {
                if let Some(ws) = *self.window_override.lock() {
                    return Ok(IoctlOut::CopyOut(ws.to_vec()));
                }
                let (rows, cols) = self.console.window_size();
                let mut ws = [0u8; WINSIZE_SIZE];
                ws[0..2].copy_from_slice(&rows.to_le_bytes());
                ws[2..4].copy_from_slice(&cols.to_le_bytes());
                Ok(IoctlOut::CopyOut(ws.to_vec()))
            }
            TIOCSWINSZ => {
                let ws: [u8; WINSIZE_SIZE] = arg
                    .get(..WINSIZE_SIZE)
                    .ok_or(Errno::EFAULT)?
                    .try_into()
                    .map_err(|_| Errno::EFAULT)?;
                *self.window_override.lock() = Some(ws);
                Ok(IoctlOut::Return(0))
            }
            TIOCGPGRP | TIOCGSID => Ok(IoctlOut::CopyOut(
                self.foreground_pgrp.lock().to_le_bytes().to_vec(),
            )),
            TIOCSPGRP => {
                let pgrp = int_arg()?;
                if pgrp < 0 {
                    return Err(Errno::EINVAL);
                }
                *self.foreground_pgrp.lock() = pgrp;
                Ok(IoctlOut::Return(0))
            }
            // The single process already owns its only terminal.
            TIOCSCTTY => Ok(IoctlOut::Return(0)),
            // FIONREAD would need the console to report buffered input, which the
            // `Console` interface does not expose; like other unknown requests it is ENOTTY.
            _ => Err(Errno::ENOTTY),
        }
    }
}

/// The console seen through `/dev/tty` or `/dev/console`, or through one of the three
/// initial descriptors: reads take host stdin, writes go to `stream`.
pub struct ConsoleDevice {
    pub terminal: Arc<Terminal>,
    pub stream: ConsoleStream,
    /// Whether this endpoint answers terminal ioctls (isatty).
    pub is_tty: bool,
}

impl CharDevice for ConsoleDevice {
    fn read(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        self.terminal.console.read(buf, nonblock)
    }
    fn read_ready(&self) -> bool {
        self.terminal.console.read_ready()
    }
    fn write(&self, buf: &[u8]) -> KResult<usize> {
        self.terminal.console.write(self.stream, buf)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn is_tty(&self) -> bool {
        self.is_tty
    }
    fn ioctl(&self, cmd: u32, arg: &[u8]) -> KResult<IoctlOut> {
        if !self.is_tty {
            return Err(Errno::ENOTTY);
        }
        self.terminal.ioctl(cmd, arg)
    }
}
