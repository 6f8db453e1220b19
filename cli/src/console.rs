//! Routing the guest's console frames to where they belong on the host.
//!
//! [`FrameRouter`] takes decoded [`skiff_bootproto`] frames: application stdout goes to
//! our stdout byte for byte (flushed per frame, so interactive programs work), stderr to
//! our stderr, kernel log lines to stderr as `skiff: kernel: ...` when they matter, and
//! the timing and exit reports are kept for the caller, and a published port the guest
//! starts listening on is announced on stderr (`skiff: ready: ...`, once per port). It
//! is generic over its writers so the routing rules are unit-tested without a VM.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use skiff_bootproto::{BootTiming, ExitReport, Frame, GuestTag, Listening, LogLevel, MemoryReport};

use crate::net::{transport_name, PortMapping, Readiness};

/// How many recent kernel log lines are kept to explain a failed run.
pub const RECENT_LOG_LINES: usize = 50;

/// One kernel log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub text: String,
    /// Whether it was already printed while the guest ran.
    pub shown: bool,
}

/// What the console told us, shared with the thread that supervises QEMU.
#[derive(Debug, Default)]
pub struct ConsoleRecord {
    /// The last [`RECENT_LOG_LINES`] kernel log lines.
    pub recent_log: VecDeque<LogLine>,
    /// The guest's boot timing report, if it sent one.
    pub timing: Option<BootTiming>,
    /// Ports the application has started listening on, in order.
    pub listening: Vec<Listening>,
}

/// Why routing stopped.
#[derive(Debug)]
pub enum RouteError {
    /// Our stdout is a closed pipe: the reader went away (exit quietly, like SIGPIPE).
    StdoutClosed,
    /// Writing to our stdout failed otherwise (disk full, I/O error).
    StdoutFailed(io::Error),
}

/// Routes frames from the guest.
pub struct FrameRouter<O: Write, E: Write> {
    stdout: O,
    stderr: E,
    verbose: bool,
    record: Arc<Mutex<ConsoleRecord>>,
    readiness: Readiness,
    /// Told of every port the guest starts listening on (opens the port relays).
    listening_hook: Option<Box<dyn FnMut(Listening) + Send>>,
}

impl<O: Write, E: Write> FrameRouter<O, E> {
    pub fn new(stdout: O, stderr: E, verbose: bool, record: Arc<Mutex<ConsoleRecord>>) -> Self {
        FrameRouter {
            stdout,
            stderr,
            verbose,
            record,
            readiness: Readiness::default(),
            listening_hook: None,
        }
    }

    /// Call `hook` whenever the guest starts listening on a port, before its ready line.
    pub fn on_listening(mut self, hook: impl FnMut(Listening) + Send + 'static) -> Self {
        self.listening_hook = Some(Box::new(hook));
        self
    }

    /// Announce these published ports when the guest starts listening on them.
    pub fn with_published_ports(mut self, ports: &[PortMapping]) -> Self {
        self.readiness = Readiness::new(ports);
        self
    }

    /// Handle one frame. Returns the exit report when the frame is the final one.
    pub fn route(&mut self, frame: &Frame) -> Result<Option<ExitReport>, RouteError> {
        match GuestTag::from_u8(frame.tag) {
            Some(GuestTag::Stdout) => {
                let written = self
                    .stdout
                    .write_all(&frame.payload)
                    .and_then(|()| self.stdout.flush());
                match written {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        return Err(RouteError::StdoutClosed)
                    }
                    Err(e) => return Err(RouteError::StdoutFailed(e)),
                }
            }
            Some(GuestTag::Stderr) => {
                // Nothing sensible can be done if our own stderr is gone; the run goes on.
                let _ = self
                    .stderr
                    .write_all(&frame.payload)
                    .and_then(|()| self.stderr.flush());
            }
            Some(GuestTag::Log) => self.log(&frame.payload),
            Some(GuestTag::Timing) => {
                let timing = BootTiming::decode(&frame.payload);
                if timing.is_none() {
                    self.note("ignoring a malformed timing report from the guest");
                }
                self.lock_record().timing = timing;
            }
            Some(GuestTag::Listening) => match Listening::decode(&frame.payload) {
                Some(listening) => self.listening(listening),
                None => self.note("ignoring a malformed listening report from the guest"),
            },
            Some(GuestTag::Memory) => match MemoryReport::decode(&frame.payload) {
                Some(report) => {
                    self.note(&memory_line(&report));
                    let _ = self.stderr.flush();
                }
                None => self.note("ignoring a malformed memory report from the guest"),
            },
            Some(GuestTag::Exit) => {
                return Ok(Some(ExitReport::decode(&frame.payload).unwrap_or_else(
                    || {
                        self.note(&format!(
                            "the guest sent a malformed exit report ({:02x?})",
                            frame.payload
                        ));
                        ExitReport::KernelFailure
                    },
                )))
            }
            None => {
                if self.verbose {
                    self.note(&format!(
                        "ignoring a console frame with unknown tag {}",
                        frame.tag
                    ));
                }
            }
        }
        Ok(None)
    }

    /// The application listens on a port: say so for each published port that now
    /// forwards to a listener (the line scripts wait for), and record it.
    fn listening(&mut self, listening: Listening) {
        if let Some(hook) = self.listening_hook.as_mut() {
            hook(listening);
        }
        let announcements = self.readiness.listening(listening);
        if announcements.is_empty() && self.verbose {
            self.note(&format!(
                "the guest listens on port {}/{}",
                listening.port,
                transport_name(listening.transport)
            ));
        }
        for line in &announcements {
            self.note(line);
        }
        let _ = self.stderr.flush();
        self.lock_record().listening.push(listening);
    }

    fn log(&mut self, payload: &[u8]) {
        let Some((&level, text)) = payload.split_first() else {
            return;
        };
        let level = LogLevel::from_u8(level);
        let show = self.verbose || level >= LogLevel::Error;
        let text = String::from_utf8_lossy(text);
        for line in text.trim_end_matches(['\n', '\r']).split('\n') {
            let line = line.trim_end_matches('\r');
            if show {
                let _ = writeln!(self.stderr, "skiff: kernel: {line}");
            }
            let mut record = self.lock_record();
            if record.recent_log.len() == RECENT_LOG_LINES {
                record.recent_log.pop_front();
            }
            record.recent_log.push_back(LogLine {
                level,
                text: line.to_string(),
                shown: show,
            });
        }
        let _ = self.stderr.flush();
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.stderr, "skiff: {text}");
    }

    fn lock_record(&self) -> std::sync::MutexGuard<'_, ConsoleRecord> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The `--mem-report` line (after "skiff: "), sizes in MiB with one decimal.
pub fn memory_line(report: &MemoryReport) -> String {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    format!(
        "memory: {:.1} MiB in use of {:.1} MiB (kernel heap {:.1} MiB allocated of {:.1} MiB)",
        mib(report.in_use),
        mib(report.total),
        mib(report.heap_allocated),
        mib(report.heap_size)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_bootproto::{encode_frame, FrameDecoder, Transport, MAGIC};

    fn frame(tag: GuestTag, payload: &[u8]) -> Frame {
        Frame {
            tag: tag as u8,
            payload: payload.to_vec(),
        }
    }

    fn log(level: LogLevel, text: &str) -> Frame {
        frame(
            GuestTag::Log,
            &[&[level as u8][..], text.as_bytes()].concat(),
        )
    }

    #[test]
    fn memory_reports_become_one_line_even_when_quiet() {
        let mut r = router(false);
        let report = MemoryReport {
            total: 509 << 20,
            in_use: (21 << 20) + (1 << 19),
            heap_size: 8 << 20,
            heap_allocated: 3 << 20,
        };
        r.route(&frame(GuestTag::Memory, &report.encode())).unwrap();
        r.route(&frame(GuestTag::Memory, b"short")).unwrap();
        assert_eq!(
            String::from_utf8(r.stderr.clone()).unwrap(),
            "skiff: memory: 21.5 MiB in use of 509.0 MiB (kernel heap 3.0 MiB allocated of 8.0 MiB)\n\
             skiff: ignoring a malformed memory report from the guest\n"
        );
    }

    fn router(verbose: bool) -> FrameRouter<Vec<u8>, Vec<u8>> {
        FrameRouter::new(Vec::new(), Vec::new(), verbose, Arc::default())
    }

    #[test]
    fn output_is_routed_byte_for_byte() {
        let mut r = router(false);
        assert!(r
            .route(&frame(GuestTag::Stdout, b"a\0\xff\n"))
            .unwrap()
            .is_none());
        assert!(r
            .route(&frame(GuestTag::Stderr, b"oops\n"))
            .unwrap()
            .is_none());
        assert!(r.route(&frame(GuestTag::Stdout, b"b")).unwrap().is_none());
        assert_eq!(r.stdout, b"a\0\xff\nb");
        assert_eq!(r.stderr, b"oops\n");
    }

    #[test]
    fn log_lines_are_filtered_by_level_and_kept() {
        let mut r = router(false);
        r.route(&log(LogLevel::Info, "booting")).unwrap();
        r.route(&log(LogLevel::Warn, "syscall 999 unimplemented"))
            .unwrap();
        r.route(&log(LogLevel::Error, "page fault at 0x0\nrip 0x401000\n"))
            .unwrap();
        assert_eq!(
            String::from_utf8(r.stderr.clone()).unwrap(),
            "skiff: kernel: page fault at 0x0\nskiff: kernel: rip 0x401000\n"
        );
        let record = r.record.lock().unwrap();
        let kept: Vec<_> = record
            .recent_log
            .iter()
            .map(|l| (l.text.as_str(), l.shown))
            .collect();
        assert_eq!(
            kept,
            [
                ("booting", false),
                ("syscall 999 unimplemented", false),
                ("page fault at 0x0", true),
                ("rip 0x401000", true)
            ]
        );
    }

    #[test]
    fn verbose_shows_every_log_line() {
        let mut r = router(true);
        r.route(&log(LogLevel::Debug, "mapped 3 segments")).unwrap();
        assert_eq!(r.stderr, b"skiff: kernel: mapped 3 segments\n");
    }

    #[test]
    fn recent_log_is_bounded() {
        let mut r = router(false);
        for i in 0..RECENT_LOG_LINES + 10 {
            r.route(&log(LogLevel::Info, &format!("line {i}"))).unwrap();
        }
        let record = r.record.lock().unwrap();
        assert_eq!(record.recent_log.len(), RECENT_LOG_LINES);
        assert_eq!(record.recent_log.front().unwrap().text, "line 10");
    }

    #[test]
    fn exit_and_timing_reports() {
        let mut r = router(false);
        let timing = BootTiming {
            entry_to_app_ns: 1_500_000,
            initrd_ns: 200_000,
        };
        r.route(&frame(GuestTag::Timing, &timing.encode())).unwrap();
        assert_eq!(r.record.lock().unwrap().timing, Some(timing));
        let exit = r
            .route(&frame(GuestTag::Exit, &ExitReport::Signaled(11).encode()))
            .unwrap();
        assert_eq!(exit, Some(ExitReport::Signaled(11)));
        let malformed = r.route(&frame(GuestTag::Exit, b"\x09")).unwrap();
        assert_eq!(malformed, Some(ExitReport::KernelFailure));
        assert!(String::from_utf8_lossy(&r.stderr).contains("malformed exit report"));
    }

    #[test]
    fn unknown_frames_are_ignored() {
        let mut r = router(false);
        assert!(r
            .route(&Frame {
                tag: 200,
                payload: b"x".to_vec()
            })
            .unwrap()
            .is_none());
        assert!(r
            .route(&Frame {
                tag: 8,
                payload: Vec::new()
            })
            .unwrap()
            .is_none());
        assert!(r.stdout.is_empty() && r.stderr.is_empty());
    }

    fn listening(transport: Transport, port: u16) -> Frame {
        frame(GuestTag::Listening, &Listening { transport, port }.encode())
    }

    #[test]
    fn published_ports_are_announced_once_when_listened_on() {
        let ports: Vec<PortMapping> = ["8080:80", "5353:53/udp"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let mut r = router(false).with_published_ports(&ports);
        r.route(&frame(GuestTag::Stderr, b"starting\n")).unwrap();
        r.route(&listening(Transport::Udp, 80)).unwrap();
        r.route(&listening(Transport::Tcp, 81)).unwrap();
        assert_eq!(r.stderr, b"starting\n", "nothing is ready yet");
        r.route(&listening(Transport::Tcp, 80)).unwrap();
        r.route(&listening(Transport::Tcp, 80)).unwrap();
        r.route(&listening(Transport::Udp, 53)).unwrap();
        assert_eq!(
            String::from_utf8(r.stderr.clone()).unwrap(),
            "starting\n\
             skiff: ready: 127.0.0.1:8080 -> guest port 80/tcp\n\
             skiff: ready: 127.0.0.1:5353 -> guest port 53/udp\n"
        );
        assert_eq!(r.record.lock().unwrap().listening.len(), 5);
        assert!(r.stdout.is_empty());
    }

    #[test]
    fn unpublished_and_malformed_listening_reports() {
        let mut r = router(false);
        r.route(&listening(Transport::Tcp, 80)).unwrap();
        assert!(r.stderr.is_empty());
        r.route(&frame(GuestTag::Listening, b"\x06\x50")).unwrap();
        assert!(String::from_utf8_lossy(&r.stderr).contains("malformed listening report"));
        let mut r = router(true);
        r.route(&listening(Transport::Tcp, 6379)).unwrap();
        assert_eq!(r.stderr, b"skiff: the guest listens on port 6379/tcp\n");
    }

    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn closed_stdout_is_reported() {
        let mut r = FrameRouter::new(ClosedPipe, Vec::new(), false, Arc::default());
        assert!(matches!(
            r.route(&frame(GuestTag::Stdout, b"x")),
            Err(RouteError::StdoutClosed)
        ));
    }

    #[test]
    fn decoded_wire_stream_routes_end_to_end() {
        let mut wire = b"firmware noise".to_vec();
        wire.extend_from_slice(MAGIC);
        encode_frame(&mut wire, GuestTag::Stdout as u8, b"hi");
        encode_frame(
            &mut wire,
            GuestTag::Exit as u8,
            &ExitReport::Exited(3).encode(),
        );
        let mut decoder = FrameDecoder::after_magic();
        decoder.push(&wire);
        let mut r = router(false);
        let mut exit = None;
        while let Some(f) = decoder.next_frame() {
            exit = exit.or(r.route(&f).unwrap());
        }
        assert_eq!(
            (r.stdout.as_slice(), exit),
            (&b"hi"[..], Some(ExitReport::Exited(3)))
        );
    }
}
