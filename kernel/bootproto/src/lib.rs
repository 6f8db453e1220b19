//! The contract between the host CLI and the guest kernel.
//!
//! This crate owns every byte format the two sides exchange, so that neither side can
//! drift from the other:
//!
//! * **Console framing.** The guest has one serial line. Application stdout, stderr,
//!   kernel log lines, timing reports and the final exit report are multiplexed on it as
//!   frames `[tag u8][len u16 LE][payload]`, after a [`MAGIC`] preamble (anything the
//!   firmware prints before it is discarded by the host). Host stdin travels the other
//!   way as frames with the same layout; the host sends nothing before it has seen the
//!   preamble, because the UART drops what arrives before the kernel programs it. The framing is binary-safe: payloads are raw.
//! * **Run configuration.** The CLI puts [`RUN_CONFIG_PATH`] into the initrd; it names
//!   the program, its argv, environment and working directory. It is a list of
//!   NUL-terminated `key=value` records so that arguments may hold any byte but NUL, as on
//!   Linux.
//! * **Exit report.** The last frame the kernel sends says how the application ended;
//!   the CLI turns it into its own exit status (see [`ExitReport::host_status`]).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Sent by the guest once, before its first frame. The host discards everything before it.
pub const MAGIC: &[u8; 8] = b"\xffSKIFF\x01\n";

/// Largest payload in one frame.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Bytes of frame header: tag and little-endian length.
pub const HEADER_LEN: usize = 3;

/// Frames from the guest to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GuestTag {
    /// Application standard output bytes.
    Stdout = 1,
    /// Application standard error bytes.
    Stderr = 2,
    /// A kernel log line: payload is one [`LogLevel`] byte then UTF-8 text.
    Log = 3,
    /// The application ended: payload is an encoded [`ExitReport`]. Always the last frame.
    Exit = 4,
    /// Boot timing: payload is an encoded [`BootTiming`].
    Timing = 5,
    /// The application started listening on a port of the guest's network (a TCP
    /// `listen` or a UDP `bind` on an address reachable from outside the guest):
    /// payload is an encoded [`Listening`]. The CLI uses it to report a published
    /// port as ready only once something answers behind it.
    Listening = 6,
    /// The guest's memory use, sent every `skiff.memreport` seconds: payload is an
    /// encoded [`MemoryReport`].
    Memory = 7,
}

impl GuestTag {
    pub fn from_u8(v: u8) -> Option<GuestTag> {
        Some(match v {
            1 => GuestTag::Stdout,
            2 => GuestTag::Stderr,
            3 => GuestTag::Log,
            4 => GuestTag::Exit,
            5 => GuestTag::Timing,
            6 => GuestTag::Listening,
            7 => GuestTag::Memory,
            _ => return None,
        })
    }
}

/// Frames from the host to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HostTag {
    /// Bytes for the application's standard input.
    Stdin = 1,
    /// Standard input reached end of file (payload empty).
    StdinEof = 2,
}

impl HostTag {
    pub fn from_u8(v: u8) -> Option<HostTag> {
        match v {
            1 => Some(HostTag::Stdin),
            2 => Some(HostTag::StdinEof),
            _ => None,
        }
    }
}

/// Severity of a kernel log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    /// Shown only with `--verbose`.
    Debug = 0,
    /// Shown only with `--verbose`.
    Info = 1,
    /// Something the user should know (an unimplemented syscall, a fallback): shown with
    /// `--verbose`, and by the CLI when the run fails.
    Warn = 2,
    /// Always shown: fault reports, kernel bugs.
    Error = 3,
}

impl LogLevel {
    pub fn from_u8(v: u8) -> LogLevel {
        match v {
            0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

/// Append one frame to `out`. Payloads longer than [`MAX_PAYLOAD`] are split.
pub fn encode_frame(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    if payload.is_empty() {
        out.extend_from_slice(&[tag, 0, 0]);
        return;
    }
    for chunk in payload.chunks(MAX_PAYLOAD) {
        let len = chunk.len() as u16;
        out.push(tag);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// The header of one frame.
pub fn frame_header(tag: u8, len: u16) -> [u8; HEADER_LEN] {
    let l = len.to_le_bytes();
    [tag, l[0], l[1]]
}

/// Incremental frame decoder for a byte stream (used by both sides).
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    synced: bool,
    need_magic: bool,
}

/// One decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub payload: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder for a stream that starts with frames right away (host → guest).
    pub fn new() -> Self {
        FrameDecoder {
            buf: Vec::new(),
            synced: true,
            need_magic: false,
        }
    }

    /// A decoder that first discards everything up to and including [`MAGIC`]
    /// (guest → host: firmware may print before the kernel starts).
    pub fn after_magic() -> Self {
        FrameDecoder {
            buf: Vec::new(),
            synced: false,
            need_magic: true,
        }
    }

    /// Whether the magic preamble has been seen (always true for [`FrameDecoder::new`]).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Feed bytes in.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes discarded before the magic preamble are returned by this call once synced;
    /// before that, the buffer holds them. Returns the next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.need_magic && !self.synced {
            let pos = self.buf.windows(MAGIC.len()).position(|w| w == MAGIC)?;
            self.buf.drain(..pos + MAGIC.len());
            self.synced = true;
        }
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        let len = u16::from_le_bytes([self.buf[1], self.buf[2]]) as usize;
        if self.buf.len() < HEADER_LEN + len {
            return None;
        }
        let tag = self.buf[0];
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Some(Frame { tag, payload })
    }

    /// Bytes received but not yet part of a complete frame (or, before sync, the
    /// pre-magic noise). The host shows these when the guest dies unexpectedly.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

/// How the application ended, as reported by the kernel in the [`GuestTag::Exit`] frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReport {
    /// `exit`/`exit_group` with this status (low 8 bits, as `wait` sees it).
    Exited(u8),
    /// Killed by this signal number (default action of a fatal signal or a fault).
    Signaled(u8),
    /// The kernel could not start the program (bad ELF, unsupported feature): host 126.
    CannotExecute,
    /// The program file is missing in the image: host 127.
    NotFound,
    /// The kernel itself failed (panic, out of memory at boot): host 125.
    KernelFailure,
}

impl ExitReport {
    pub fn encode(self) -> [u8; 2] {
        match self {
            ExitReport::Exited(s) => [0, s],
            ExitReport::Signaled(n) => [1, n],
            ExitReport::CannotExecute => [2, 0],
            ExitReport::NotFound => [3, 0],
            ExitReport::KernelFailure => [4, 0],
        }
    }

    pub fn decode(b: &[u8]) -> Option<ExitReport> {
        if b.len() != 2 {
            return None;
        }
        Some(match b[0] {
            0 => ExitReport::Exited(b[1]),
            1 => ExitReport::Signaled(b[1]),
            2 => ExitReport::CannotExecute,
            3 => ExitReport::NotFound,
            4 => ExitReport::KernelFailure,
            _ => return None,
        })
    }

    /// The exit status `skiff run` exits with, following the shell's conventions.
    pub fn host_status(self) -> u8 {
        match self {
            ExitReport::Exited(s) => s,
            ExitReport::Signaled(n) => 128u8.wrapping_add(n),
            ExitReport::CannotExecute => 126,
            ExitReport::NotFound => 127,
            ExitReport::KernelFailure => 125,
        }
    }
}

/// The value written to QEMU's `isa-debug-exit` port after the exit frame. QEMU then
/// exits with `(value << 1) | 1`; the CLI trusts the exit frame, not this, for the
/// application's status, and uses it only to tell an orderly shutdown from a crash.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Orderly shutdown: QEMU exits with status 0x21 (33).
pub const DEBUG_EXIT_ORDERLY: u8 = 0x10;

/// Guest-measured boot timings, all in nanoseconds of the guest's monotonic clock,
/// counted from the first instruction of the kernel's 64-bit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootTiming {
    /// Kernel entry to the first instruction of the application.
    pub entry_to_app_ns: u64,
    /// Of that, the time spent unpacking the initrd.
    pub initrd_ns: u64,
}

impl BootTiming {
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.entry_to_app_ns.to_le_bytes());
        b[8..].copy_from_slice(&self.initrd_ns.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<BootTiming> {
        if b.len() < 16 {
            return None;
        }
        Some(BootTiming {
            entry_to_app_ns: u64::from_le_bytes(b[..8].try_into().ok()?),
            initrd_ns: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }
}

/// The guest's memory use at one moment (payload of [`GuestTag::Memory`]), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// RAM the kernel manages (after its own image and the boot structures).
    pub total: u64,
    /// Of that, taken from the frame allocator: application pages, page tables, file
    /// data, and the kernel heap's whole size.
    pub in_use: u64,
    /// The kernel heap's size (it grows from frames and keeps them).
    pub heap_size: u64,
    /// Of the heap, what is allocated now.
    pub heap_allocated: u64,
}

impl MemoryReport {
    pub const LEN: usize = 32;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        for (chunk, v) in b.chunks_exact_mut(8).zip([
            self.total,
            self.in_use,
            self.heap_size,
            self.heap_allocated,
        ]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<MemoryReport> {
        let field = |i: usize| {
            Some(u64::from_le_bytes(
                b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(MemoryReport {
            total: field(0)?,
            in_use: field(1)?,
            heap_size: field(2)?,
            heap_allocated: field(3)?,
        })
    }
}

/// Where the CLI puts the run configuration inside the initrd (no leading slash, as cpio
/// stores names). The kernel reads it and removes it before the application starts.
pub const RUN_CONFIG_PATH: &str = ".skiff/run";

/// What to run, as the CLI tells the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// Absolute guest path of the program.
    pub exe: Vec<u8>,
    /// argv, including argv[0].
    pub argv: Vec<Vec<u8>>,
    /// Environment entries, `KEY=VALUE`.
    pub envp: Vec<Vec<u8>>,
    /// Initial working directory (absolute).
    pub cwd: Vec<u8>,
    /// Persistent volumes to mount before the program starts.
    pub volumes: Vec<VolumeMount>,
}

/// One virtio-blk disk and where its FAT filesystem is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeMount {
    /// The disk's virtio-blk serial, [`volume_serial`]`(index)`.
    pub serial: Vec<u8>,
    /// Absolute guest path of the mount point (created if missing).
    pub mount_point: Vec<u8>,
}

/// The virtio-blk serial the CLI gives the `index`-th volume; the kernel finds each
/// volume's disk by it, whatever order the buses enumerate the disks in.
pub fn volume_serial(index: usize) -> String {
    alloc::format!("skiff-vol{index}")
}

/// Why a run configuration could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunConfigError {
    /// A record without the trailing NUL.
    Unterminated,
    /// A record whose key is not one of `exe`, `arg`, `env`, `cwd`.
    UnknownKey(String),
    /// A value that holds a NUL (cannot happen after decoding; reported by the encoder).
    EmbeddedNul,
    /// No `exe` record.
    MissingExe,
    /// A `volume` record that is not `SERIAL:/path`.
    BadVolume,
}

impl RunConfig {
    /// Serialize as NUL-terminated `key=value` records.
    pub fn encode(&self) -> Result<Vec<u8>, RunConfigError> {
        let mut out = Vec::new();
        let mut rec = |key: &str, val: &[u8]| -> Result<(), RunConfigError> {
            if val.contains(&0) {
                return Err(RunConfigError::EmbeddedNul);
            }
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(val);
            out.push(0);
            Ok(())
        };
        rec("exe", &self.exe)?;
        rec("cwd", &self.cwd)?;
        for a in &self.argv {
            rec("arg", a)?;
        }
        for e in &self.envp {
            rec("env", e)?;
        }
        for v in &self.volumes {
            if v.serial.contains(&b':') || v.serial.is_empty() {
                return Err(RunConfigError::BadVolume);
            }
            let mut val = v.serial.clone();
            val.push(b':');
            val.extend_from_slice(&v.mount_point);
            rec("volume", &val)?;
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<RunConfig, RunConfigError> {
        let mut cfg = RunConfig {
            cwd: b"/".to_vec(),
            ..Default::default()
        };
        let mut have_exe = false;
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(RunConfigError::Unterminated)?;
            let rec = &rest[..end];
            rest = &rest[end + 1..];
            let eq = rec.iter().position(|&b| b == b'=').unwrap_or(rec.len());
            let (key, val) = (&rec[..eq], rec.get(eq + 1..).unwrap_or(&[]));
            match key {
                b"exe" => {
                    cfg.exe = val.to_vec();
                    have_exe = true;
                }
                b"arg" => cfg.argv.push(val.to_vec()),
                b"env" => cfg.envp.push(val.to_vec()),
                b"cwd" => cfg.cwd = val.to_vec(),
                b"volume" => {
                    let colon = val
                        .iter()
                        .position(|&b| b == b':')
                        .ok_or(RunConfigError::BadVolume)?;
                    let (serial, mount_point) = (&val[..colon], &val[colon + 1..]);
                    if serial.is_empty() || mount_point.first() != Some(&b'/') {
                        return Err(RunConfigError::BadVolume);
                    }
                    cfg.volumes.push(VolumeMount {
                        serial: serial.to_vec(),
                        mount_point: mount_point.to_vec(),
                    });
                }
                other => {
                    return Err(RunConfigError::UnknownKey(
                        String::from_utf8_lossy(other).into(),
                    ))
                }
            }
        }
        if !have_exe {
            return Err(RunConfigError::MissingExe);
        }
        Ok(cfg)
    }
}

/// The name of a Linux x86_64 signal, e.g. `SIGSEGV` for 11.
pub fn signal_name(signal: u8) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// Transport protocol of a [`Listening`] port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Transport {
    Tcp = 6,
    Udp = 17,
}

/// A port the guest listens on (payload of [`GuestTag::Listening`]): protocol byte
/// (Linux's IPPROTO number) then the port, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listening {
    pub transport: Transport,
    pub port: u16,
}

impl Listening {
    pub fn encode(&self) -> [u8; 3] {
        let p = self.port.to_le_bytes();
        [self.transport as u8, p[0], p[1]]
    }

    pub fn decode(b: &[u8]) -> Option<Listening> {
        let transport = match b.first()? {
            6 => Transport::Tcp,
            17 => Transport::Udp,
            _ => return None,
        };
        if b.len() != 3 {
            return None;
        }
        Some(Listening {
            transport,
            port: u16::from_le_bytes([b[1], b[2]]),
        })
    }
}

/// Kernel command-line options the CLI may pass (`-append`), as `key=value` words.
pub mod cmdline {
    /// `skiff.verbose=1` sends Debug/Info log lines too.
    pub const VERBOSE: &str = "skiff.verbose";
    /// `skiff.timing=1` makes the kernel send a [`super::GuestTag::Timing`] frame.
    pub const TIMING: &str = "skiff.timing";
    /// `skiff.memreport=SECS` makes the kernel send a [`super::GuestTag::Memory`] frame
    /// every SECS seconds (1 to 3600).
    pub const MEMORY_REPORT: &str = "skiff.memreport";
    /// `skiff.ip=A.B.C.D/PREFIX`: the guest's IPv4 address on its first network
    /// interface. Default (no `skiff.ip`, no `skiff.dhcp`): QEMU user networking's
    /// `10.0.2.15/24`.
    pub const NET_IP: &str = "skiff.ip";
    /// `skiff.gw=A.B.C.D`: the default gateway (default with user networking:
    /// `10.0.2.2`; none when `skiff.ip` is given without it).
    pub const NET_GATEWAY: &str = "skiff.gw";
    /// `skiff.dhcp=1`: configure the first interface by DHCP instead.
    pub const NET_DHCP: &str = "skiff.dhcp";

    /// The value of `key` in a space-separated command line, if present.
    pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
        cmdline.split_ascii_whitespace().find_map(|w| {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            (k == key).then_some(v)
        })
    }

    /// Whether a boolean option is on (`key`, `key=1`, `key=on`, `key=yes`, `key=true`).
    pub fn flag(cmdline: &str, key: &str) -> bool {
        matches!(get(cmdline, key), Some("" | "1" | "on" | "yes" | "true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_reports_round_trip() {
        let l = Listening {
            transport: Transport::Udp,
            port: 5353,
        };
        assert_eq!(Listening::decode(&l.encode()), Some(l));
        assert_eq!(Listening::decode(&[1, 0, 0]), None);
        assert_eq!(Listening::decode(&[6, 0]), None);
    }

    #[test]
    fn memory_report_round_trips() {
        let m = MemoryReport {
            total: 512 << 20,
            in_use: 20 << 20,
            heap_size: 8 << 20,
            heap_allocated: 3 << 20 | 5,
        };
        assert_eq!(MemoryReport::decode(&m.encode()), Some(m));
        assert_eq!(MemoryReport::decode(&m.encode()[..31]), None);
    }

    #[test]
    fn frames_round_trip_after_noise() {
        let mut wire = b"SeaBIOS noise\r\n".to_vec();
        wire.extend_from_slice(MAGIC);
        encode_frame(&mut wire, GuestTag::Stdout as u8, b"hello\n\0\xff");
        encode_frame(
            &mut wire,
            GuestTag::Exit as u8,
            &ExitReport::Exited(7).encode(),
        );
        let mut d = FrameDecoder::after_magic();
        // Feed byte by byte to exercise partial frames.
        let mut frames = Vec::new();
        for b in wire {
            d.push(&[b]);
            while let Some(f) = d.next_frame() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload, b"hello\n\0\xff");
        assert_eq!(
            ExitReport::decode(&frames[1].payload),
            Some(ExitReport::Exited(7))
        );
    }

    #[test]
    fn long_payload_is_split() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, 1, &vec![7u8; MAX_PAYLOAD + 10]);
        let mut d = FrameDecoder::new();
        d.push(&wire);
        assert_eq!(d.next_frame().unwrap().payload.len(), MAX_PAYLOAD);
        assert_eq!(d.next_frame().unwrap().payload.len(), 10);
        assert!(d.next_frame().is_none());
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(ExitReport::Signaled(11).host_status(), 139);
        assert_eq!(ExitReport::CannotExecute.host_status(), 126);
        assert_eq!(ExitReport::NotFound.host_status(), 127);
        assert_eq!(ExitReport::Exited(7).host_status(), 7);
    }

    #[test]
    fn run_config_round_trip() {
        let cfg = RunConfig {
            exe: b"/bin/busybox".to_vec(),
            argv: vec![
                b"busybox".to_vec(),
                b"echo".to_vec(),
                b"a=b c".to_vec(),
                vec![],
            ],
            envp: vec![b"PATH=/bin".to_vec()],
            cwd: b"/".to_vec(),
            volumes: vec![VolumeMount {
                serial: volume_serial(0).into_bytes(),
                mount_point: b"/data".to_vec(),
            }],
        };
        let enc = cfg.encode().unwrap();
        assert_eq!(RunConfig::decode(&enc).unwrap(), cfg);
        assert_eq!(
            RunConfig::decode(b"arg=x\0"),
            Err(RunConfigError::MissingExe)
        );
        assert_eq!(
            RunConfig::decode(b"exe=/x"),
            Err(RunConfigError::Unterminated)
        );
        let bad = RunConfig {
            exe: b"a\0b".to_vec(),
            ..Default::default()
        };
        assert_eq!(bad.encode(), Err(RunConfigError::EmbeddedNul));
        assert_eq!(
            RunConfig::decode(b"exe=/x\0volume=skiff-vol0\0"),
            Err(RunConfigError::BadVolume)
        );
        assert_eq!(
            RunConfig::decode(b"exe=/x\0volume=skiff-vol0:data\0"),
            Err(RunConfigError::BadVolume)
        );
    }

    #[test]
    fn cmdline_options() {
        let c = "console=x skiff.verbose=1 skiff.timing";
        assert!(cmdline::flag(c, cmdline::VERBOSE));
        assert!(cmdline::flag(c, cmdline::TIMING));
        assert!(!cmdline::flag("skiff.verbose=0", cmdline::VERBOSE));
        assert_eq!(cmdline::get(c, "console"), Some("x"));
    }
}
