//! Running QEMU and connecting the guest to the user's terminal.
//!
//! QEMU's stdin and stdout are pipes owned by skiff; its serial line is its stdio. Four
//! threads cooperate and report to the supervising (main) thread through one channel:
//!
//! * the **console reader** decodes frames from QEMU's stdout and routes them
//!   ([`crate::console::FrameRouter`]); it reports the exit frame, a closed stdout, or
//!   the end of the console;
//! * the **stdin forwarder** copies our stdin into QEMU's stdin as `Stdin` frames and
//!   sends `StdinEof` at end of file (at once if our stdin is closed or unreadable);
//! * the **QEMU stderr reader** keeps QEMU's last messages (shown when the run fails)
//!   and prints them live with `--verbose`;
//! * the **signal watcher** reports SIGINT, SIGTERM and SIGHUP.
//!
//! The supervisor never joins a thread that might be blocked (on our stdin, or on a
//! stdout nobody reads): every wait is bounded by a deadline or tied to QEMU's lifetime,
//! and QEMU is killed on every path that ends the run early. QEMU runs in its own
//! process group (so a terminal's Ctrl-C reaches only skiff, which then stops it) and
//! dies with skiff if skiff is killed.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use skiff_bootproto::{frame_header, ExitReport, FrameDecoder, HostTag, Transport, MAGIC};

use crate::console::{ConsoleRecord, FrameRouter, RouteError};
use crate::forward::Relays;
use crate::net::PortMapping;
use crate::status::{self, outcome_of, STATUS_SKIFF_FAILED, STATUS_TIMED_OUT};

/// Largest stdin chunk sent in one frame.
pub const STDIN_CHUNK: usize = 4096;
/// How long QEMU gets to exit on its own after the exit report (or after closing its
/// console) before it is killed.
const QEMU_EXIT_GRACE: Duration = Duration::from_secs(2);
/// How often the supervisor wakes to check QEMU and the timeout.
const SUPERVISOR_TICK: Duration = Duration::from_millis(100);
/// How long to wait for QEMU's last stderr lines once it is gone.
const STDERR_DRAIN: Duration = Duration::from_secs(1);
/// QEMU stderr lines kept for diagnostics.
const QEMU_STDERR_LINES: usize = 50;
/// Pre-preamble console output kept for diagnostics (bytes).
const NOISE_KEPT: usize = 4096;
/// Pre-preamble output after which the decoder's buffer is trimmed (bytes).
const NOISE_LIMIT: usize = 1 << 20;

/// How to run one VM.
pub struct Session {
    pub qemu: PathBuf,
    /// Whether the user named the QEMU binary (changes the "not found" advice).
    pub qemu_named: bool,
    pub qemu_args: Vec<OsString>,
    /// The program as the user named it, for messages.
    pub app: String,
    pub verbose: bool,
    pub timing: bool,
    pub timeout: Option<Duration>,
    /// Published ports, announced with a `ready:` line once the guest listens on them.
    pub published: Vec<PortMapping>,
    /// The host side of the published TCP ports, opened as the guest listens.
    pub relays: Relays,
    /// Where the helper threads report; created (with the signal watcher) before any
    /// work starts, so that a Ctrl-C during packing is handled too.
    pub events: EventChannel,
}

/// The channel the helper threads report on, with SIGINT, SIGTERM and SIGHUP already
/// routed into it.
pub struct EventChannel {
    sender: Sender<Event>,
    inbox: Receiver<Event>,
}

impl EventChannel {
    /// Create the channel and start watching signals. From here on those signals no
    /// longer kill skiff directly: the supervisor stops the VM, the temporary initrd is
    /// removed, and skiff exits 128+N.
    pub fn with_signal_watch() -> Result<EventChannel, String> {
        let (sender, inbox) = mpsc::channel();
        watch_signals(sender.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        Ok(EventChannel { sender, inbox })
    }
}

/// What the helper threads report.
enum Event {
    Exit(ExitReport),
    /// QEMU's stdout ended (or failed) before an exit frame.
    ConsoleClosed,
    StdoutClosed,
    StdoutFailed(io::Error),
    Signal(i32),
}

/// Why the supervision loop ended.
enum End {
    Exit(ExitReport),
    ConsoleClosed,
    StdoutClosed,
    StdoutFailed(io::Error),
    Signal(i32),
    TimedOut(Duration),
}

/// What the console reader learned beyond the frames (for diagnostics).
#[derive(Default)]
struct ConsoleState {
    synced: bool,
    first_frame_at: Option<Instant>,
    /// Output before the preamble (firmware, or a kernel that never got going).
    noise: Vec<u8>,
    /// Bytes of an incomplete frame when the console ended.
    incomplete: usize,
}

/// Print a one-line message on stderr, prefixed `skiff: `.
pub fn say(message: &str) {
    let _ = writeln!(io::stderr().lock(), "skiff: {message}");
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Threads only store plain data under these locks; a poisoned one is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Session {
    /// Boot the VM, connect it, and return skiff's exit status.
    pub fn run(mut self) -> u8 {
        let events = self.events.sender.clone();
        let inbox = &self.events.inbox;
        // A signal that arrived while the initrd was being packed: do not boot at all.
        if let Ok(Event::Signal(signal)) = inbox.try_recv() {
            return status::status_for_signal(signal);
        }
        let started = Instant::now();
        let mut child = match self.spawn() {
            Ok(child) => child,
            Err(message) => {
                say(&message);
                return STATUS_SKIFF_FAILED;
            }
        };
        let relays = Arc::new(std::mem::take(&mut self.relays));
        if let Err(message) = relays.start() {
            say(&message);
            let _ = child.kill();
            let _ = child.wait();
            return STATUS_SKIFF_FAILED;
        }
        let record = Arc::new(Mutex::new(ConsoleRecord::default()));
        let console_state = Arc::new(Mutex::new(ConsoleState::default()));
        let qemu_stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (stderr_done_tx, stderr_done) = mpsc::channel::<()>();
        let (stdin_keeper_tx, _stdin_keeper) = mpsc::channel::<ChildStdin>();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();

        let (Some(qemu_in), Some(qemu_out), Some(qemu_err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three stdio streams were configured as pipes")
        };
        {
            let record = record.clone();
            let state = console_state.clone();
            let events = events.clone();
            let verbose = self.verbose;
            let relays = relays.clone();
            let router = FrameRouter::new(io::stdout(), io::stderr(), verbose, record)
                .with_published_ports(&self.published)
                .on_listening(move |listening| {
                    if listening.transport == Transport::Tcp {
                        relays.open(listening.port);
                    }
                });
            thread::spawn(move || read_console(qemu_out, router, state, events, ready_tx));
        }
        thread::spawn(move || forward_stdin(io::stdin(), qemu_in, stdin_keeper_tx, ready_rx));
        {
            let lines = qemu_stderr.clone();
            let verbose = self.verbose;
            thread::spawn(move || {
                read_qemu_stderr(qemu_err, verbose, lines);
                let _ = stderr_done_tx.send(());
            });
        }
        drop(events);

        let end = supervise(&mut child, inbox, started, self.timeout);
        let qemu_status = match &end {
            End::Exit(_) | End::ConsoleClosed => finish_qemu(&mut child, QEMU_EXIT_GRACE),
            _ => finish_qemu(&mut child, Duration::ZERO),
        };
        if self.timing {
            print_timing(&lock(&record), lock(&console_state).first_frame_at, started);
        }
        match end {
            End::Exit(report) => {
                let outcome = outcome_of(report, &self.app);
                if let Some(message) = &outcome.message {
                    say(message);
                }
                if outcome.show_kernel_log {
                    show_unshown_log(&lock(&record));
                }
                outcome.status
            }
            End::ConsoleClosed => {
                // Let QEMU's last words arrive before explaining.
                let _ = stderr_done.recv_timeout(STDERR_DRAIN);
                self.explain_missing_report(
                    qemu_status,
                    &lock(&record),
                    &lock(&console_state),
                    &lock(&qemu_stderr),
                );
                STATUS_SKIFF_FAILED
            }
            End::StdoutClosed => status::status_for_signal(status::SIGPIPE),
            End::StdoutFailed(e) => {
                say(&format!(
                    "writing the program's output failed: {e}; stopped the VM"
                ));
                STATUS_SKIFF_FAILED
            }
            End::Signal(signal) => status::status_for_signal(signal),
            End::TimedOut(after) => {
                say(&format!(
                    "timed out after {}; stopped the VM",
                    seconds(after)
                ));
                STATUS_TIMED_OUT
            }
        }
    }

    fn spawn(&self) -> Result<Child, String> {
        let mut command = Command::new(&self.qemu);
        command
            .args(&self.qemu_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C goes to skiff only, which then
            // stops QEMU and reports 130 (instead of QEMU dying mid-report).
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only calls
        // prctl(2), which is async-signal-safe and touches no memory of the parent. The
        // death signal is tied to the spawning thread, which is the main thread here and
        // lives as long as skiff does.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if !self.qemu_named => format!(
                "{} not found; install it with: apt-get install qemu-system-x86",
                self.qemu.display()
            ),
            io::ErrorKind::NotFound => format!("{}: QEMU not found", self.qemu.display()),
            io::ErrorKind::PermissionDenied => {
                format!(
                    "{}: cannot run QEMU: permission denied",
                    self.qemu.display()
                )
            }
            _ => format!("{}: cannot start QEMU: {e}", self.qemu.display()),
        })
    }

    /// The guest stopped without an exit report: say what we know, on stderr.
    fn explain_missing_report(
        &self,
        qemu_status: Option<ExitStatus>,
        record: &ConsoleRecord,
        console: &ConsoleState,
        qemu_stderr: &VecDeque<String>,
    ) {
        let how = match qemu_status {
            Some(status) => describe_qemu_status(status),
            None => "QEMU did not exit and was killed".to_string(),
        };
        say(&format!(
            "the VM stopped without reporting how {} ended ({how})",
            self.app
        ));
        if !console.synced {
            say("the kernel never started talking on the serial line (no Skiff preamble)");
            let noise = String::from_utf8_lossy(&console.noise);
            for line in noise.lines().filter(|l| !l.trim().is_empty()) {
                say(&format!("console: {line}"));
            }
        } else if console.incomplete > 0 {
            say(&format!(
                "the console ended inside a frame ({} bytes)",
                console.incomplete
            ));
        }
        show_unshown_log(record);
        if !self.verbose {
            for line in qemu_stderr {
                say(&format!("qemu: {line}"));
            }
        }
        if let Some(hint) = qemu_failure_hint(qemu_stderr) {
            say(hint);
        }
    }
}

/// Wait for the first event that ends the run.
fn supervise(
    child: &mut Child,
    inbox: &Receiver<Event>,
    started: Instant,
    timeout: Option<Duration>,
) -> End {
    let deadline = timeout.map(|t| started + t);
    let mut qemu_gone_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut wait = SUPERVISOR_TICK;
        if let (Some(deadline), Some(timeout)) = (deadline, timeout) {
            if now >= deadline {
                return End::TimedOut(timeout);
            }
            wait = wait.min(deadline - now);
        }
        match inbox.recv_timeout(wait) {
            Ok(Event::Exit(report)) => return End::Exit(report),
            Ok(Event::ConsoleClosed) | Err(RecvTimeoutError::Disconnected) => {
                return End::ConsoleClosed
            }
            Ok(Event::StdoutClosed) => return End::StdoutClosed,
            Ok(Event::StdoutFailed(e)) => return End::StdoutFailed(e),
            Ok(Event::Signal(signal)) => return End::Signal(signal),
            Err(RecvTimeoutError::Timeout) => match qemu_gone_at {
                // QEMU exited but its console has not closed (something inherited the
                // pipe): give the reader the grace period to deliver what is left.
                Some(gone) if now.duration_since(gone) > QEMU_EXIT_GRACE => {
                    return End::ConsoleClosed
                }
                Some(_) => {}
                None => {
                    if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                        qemu_gone_at = Some(now);
                    }
                }
            },
        }
    }
}

/// Give QEMU up to `grace` to exit by itself, then kill it; reap it either way.
fn finish_qemu(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
    let _ = child.kill();
    // After SIGKILL the wait is bounded by the kernel tearing the process down.
    let _ = child.wait();
    None
}

/// Forward SIGINT, SIGTERM and SIGHUP as events (they no longer kill skiff directly, so
/// that the VM is always stopped and the temporary initrd removed).
fn watch_signals(events: Sender<Event>) -> io::Result<()> {
    use status::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    thread::spawn(move || {
        for signal in signals.forever() {
            if events.send(Event::Signal(signal)).is_err() {
                break;
            }
        }
    });
    Ok(())
}

fn read_console(
    mut qemu_out: impl Read,
    mut router: FrameRouter<io::Stdout, io::Stderr>,
    state: Arc<Mutex<ConsoleState>>,
    events: Sender<Event>,
    guest_ready: Sender<()>,
) {
    let mut guest_ready = Some(guest_ready);
    let mut decoder = FrameDecoder::after_magic();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut exited = false;
    loop {
        let n = match qemu_out.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if exited {
            // Nothing follows the exit frame; keep the pipe drained until QEMU exits.
            continue;
        }
        decoder.push(&buffer[..n]);
        let next = decoder.next_frame();
        if decoder.synced() {
            // The preamble means the guest's UART is set up: stdin may flow now.
            if let Some(ready) = guest_ready.take() {
                let _ = ready.send(());
            }
        }
        let mut next = next;
        while let Some(frame) = next.take().or_else(|| decoder.next_frame()) {
            {
                let mut state = lock(&state);
                state.synced = true;
                state.first_frame_at.get_or_insert_with(Instant::now);
            }
            let event = match router.route(&frame) {
                Ok(None) => continue,
                Ok(Some(report)) => {
                    exited = true;
                    Event::Exit(report)
                }
                Err(RouteError::StdoutClosed) => Event::StdoutClosed,
                Err(RouteError::StdoutFailed(e)) => Event::StdoutFailed(e),
            };
            let stop = !matches!(event, Event::Exit(_));
            let _ = events.send(event);
            if stop {
                return;
            }
            break;
        }
        // Checked after next_frame() had its chance to find the preamble in this chunk.
        if !decoder.synced() {
            decoder = bound_noise(decoder, &mut lock(&state).noise);
        }
    }
    let mut state = lock(&state);
    if !exited {
        state.synced |= decoder.synced();
        if decoder.synced() {
            state.incomplete = decoder.pending().len();
        } else {
            keep_tail(&mut state.noise, decoder.pending());
        }
        drop(state);
        let _ = events.send(Event::ConsoleClosed);
    }
}

/// Before the preamble the decoder buffers everything; keep that bounded (a guest that
/// prints forever without a preamble must not exhaust memory) while never cutting a
/// preamble that may be arriving.
fn bound_noise(decoder: FrameDecoder, noise: &mut Vec<u8>) -> FrameDecoder {
    let pending = decoder.pending();
    if pending.len() <= NOISE_LIMIT {
        return decoder;
    }
    keep_tail(noise, pending);
    let mut fresh = FrameDecoder::after_magic();
    fresh.push(&pending[pending.len() - (MAGIC.len() - 1)..]);
    fresh
}

fn keep_tail(kept: &mut Vec<u8>, more: &[u8]) {
    kept.extend_from_slice(more);
    if kept.len() > NOISE_KEPT {
        kept.drain(..kept.len() - NOISE_KEPT);
    }
}

/// Copy `input` into QEMU's stdin as frames, then send end-of-file. Nothing is sent
/// before the guest's preamble (`guest_ready`): bytes that reach the UART before the
/// kernel programs it are lost when it enables the FIFO. The pipe to QEMU is handed to
/// `keeper` afterwards so that it stays open until skiff is done (QEMU must not see its
/// own stdin close while the guest runs).
fn forward_stdin(
    mut input: impl Read,
    mut qemu_in: ChildStdin,
    keeper: Sender<ChildStdin>,
    guest_ready: mpsc::Receiver<()>,
) {
    if guest_ready.recv().is_err() {
        return; // The guest never started; nothing will read stdin.
    }
    let mut chunk = vec![0u8; STDIN_CHUNK];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if write_frame(&mut qemu_in, HostTag::Stdin, &chunk[..n]).is_err() {
                    return; // QEMU is gone.
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A closed or unreadable stdin (EBADF, EISDIR, EIO) is end of input.
            Err(_) => break,
        }
    }
    if write_frame(&mut qemu_in, HostTag::StdinEof, &[]).is_ok() {
        let _ = keeper.send(qemu_in);
    }
}

/// Write one host→guest frame (payloads here are at most [`STDIN_CHUNK`] bytes).
pub fn write_frame(out: &mut impl Write, tag: HostTag, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame payload too large"))?;
    let mut frame = Vec::with_capacity(payload.len() + 3);
    frame.extend_from_slice(&frame_header(tag as u8, len));
    frame.extend_from_slice(payload);
    out.write_all(&frame)?;
    out.flush()
}

fn read_qemu_stderr(qemu_err: impl Read, verbose: bool, lines: Arc<Mutex<VecDeque<String>>>) {
    for line in BufReader::new(qemu_err).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if verbose {
            say(&format!("qemu: {line}"));
        }
        let mut lines = lock(&lines);
        if lines.len() == QEMU_STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// Kernel log lines that were kept but not printed (Warn and below without --verbose):
/// when the run fails they are the best explanation there is.
fn show_unshown_log(record: &ConsoleRecord) {
    for line in record.recent_log.iter().filter(|l| !l.shown) {
        say(&format!("kernel: {}", line.text));
    }
}

/// Explanations of QEMU's own error messages where they are cryptic: the words that
/// identify the message (all must appear in one line), and what to tell the user.
const QEMU_HINTS: &[(&[&str], &str)] = &[
    // A volume image another process has locked: another VM ("write" lock) or a skiff
    // volume command ("lock byte").
    (&["Failed to get \"write\" lock"], VOLUME_IN_USE),
    (&["Failed to lock byte"], VOLUME_IN_USE),
    // skiff checked the host port just before; something took it in between.
    (
        &["Could not set up host forwarding rule"],
        "a published host port was taken by another program after skiff checked it; \
         run again, or publish on another host port",
    ),
    (
        &[
            "could not configure /dev/net/tun",
            "Device or resource busy",
        ],
        "the tap device is in use by another VM; each VM needs a tap device of its own",
    ),
    (
        &[
            "could not configure /dev/net/tun",
            "Operation not permitted",
        ],
        "this user may not attach to the tap device; create it for this user: \
         ip tuntap add dev NAME mode tap user $USER",
    ),
];

const VOLUME_IN_USE: &str = "a volume image is in use by another VM or skiff command (QEMU \
    could not lock it); a volume can be used by one VM at a time: stop the other user or \
    give this run another volume file";

/// An explanation of QEMU's error messages in `lines`, if one of them is cryptic.
pub fn qemu_failure_hint<'a>(lines: impl IntoIterator<Item = &'a String>) -> Option<&'static str> {
    lines.into_iter().find_map(|line| {
        QEMU_HINTS
            .iter()
            .find(|(needles, _)| needles.iter().all(|needle| line.contains(needle)))
            .map(|(_, hint)| *hint)
    })
}

/// QEMU's exit status in words. With `isa-debug-exit`, status `(v << 1) | 1` means the
/// guest wrote `v`; 0 under `-no-reboot` means the guest reset or triple-faulted.
pub fn describe_qemu_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(0), _) => "QEMU exited with status 0: the guest reset or triple-faulted".into(),
        (Some(1), _) => "QEMU exited with status 1: QEMU itself failed".into(),
        (Some(code), _) if code & 1 == 1 => format!(
            "QEMU exited with status {code}: the guest wrote {:#x} to the debug-exit port",
            code >> 1
        ),
        (Some(code), _) => format!("QEMU exited with status {code}"),
        (None, Some(signal)) => format!(
            "QEMU was killed by {}",
            status::signal_name(signal as u8)
                .map_or_else(|| format!("signal {signal}"), String::from)
        ),
        (None, None) => "QEMU ended".into(),
    }
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs}s")
    } else {
        format!("{secs:.3}s")
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

/// The `--timing` report: one `key=value` line on stderr, for benchmark scripts.
fn print_timing(record: &ConsoleRecord, first_frame_at: Option<Instant>, started: Instant) {
    let mut fields = Vec::new();
    match record.timing {
        Some(t) => {
            fields.push(format!(
                "entry_to_app_ms={}",
                millis(Duration::from_nanos(t.entry_to_app_ns))
            ));
            fields.push(format!(
                "initrd_ms={}",
                millis(Duration::from_nanos(t.initrd_ns))
            ));
        }
        None => fields.push("guest_timing=unreported".into()),
    }
    if let Some(first) = first_frame_at {
        fields.push(format!(
            "qemu_to_first_frame_ms={}",
            millis(first - started)
        ));
    }
    fields.push(format!("total_ms={}", millis(started.elapsed())));
    say(&format!("timing: {}", fields.join(" ")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_bootproto::FrameDecoder;
    use std::process::Command;

    fn status_of(script: &str) -> ExitStatus {
        Command::new("sh").arg("-c").arg(script).status().unwrap()
    }

    #[test]
    fn qemu_statuses_are_explained() {
        assert!(describe_qemu_status(status_of("exit 0")).contains("triple-faulted"));
        assert!(describe_qemu_status(status_of("exit 1")).contains("QEMU itself failed"));
        assert!(describe_qemu_status(status_of("exit 33")).contains("wrote 0x10"));
        assert!(describe_qemu_status(status_of("exit 4")).ends_with("status 4"));
        assert!(describe_qemu_status(status_of("kill -9 $$")).contains("SIGKILL"));
    }

    #[test]
    fn volume_lock_failures_are_explained() {
        let lines = |text: &[&str]| text.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let locked = lines(&[
            "qemu-system-x86_64: -device virtio-blk-device,drive=vol0,serial=skiff-vol0: Failed to get \"write\" lock",
            "Is another process using the image [data.img]?",
        ]);
        assert!(qemu_failure_hint(&locked)
            .unwrap()
            .contains("one VM at a time"));
        let byte = lines(&["qemu-system-x86_64: -drive id=vol0: Failed to lock byte 100"]);
        assert!(qemu_failure_hint(&byte).is_some());
        assert!(qemu_failure_hint(&lines(&["qemu: fatal: triple fault"])).is_none());
    }

    #[test]
    fn network_failures_are_explained() {
        let hint = |line: &str| qemu_failure_hint(&[line.to_string()]);
        let forward = hint(
            "qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80: Could not \
             set up host forwarding rule 'tcp:127.0.0.1:8080-:80'",
        );
        assert!(forward.unwrap().contains("taken by another program"));
        let busy = hint(
            "qemu-system-x86_64: -netdev tap,id=n0,ifname=tap0,script=no,downscript=no: could \
             not configure /dev/net/tun (tap0): Device or resource busy",
        );
        assert!(busy.unwrap().contains("in use by another VM"));
        let denied = hint("could not configure /dev/net/tun (tap0): Operation not permitted");
        assert!(denied.unwrap().contains("user $USER"));
        assert_eq!(
            hint("could not configure /dev/net/tun (tap0): No such device"),
            None
        );
    }

    #[test]
    fn stdin_frames_are_chunked() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        for chunk in data.chunks(STDIN_CHUNK) {
            write_frame(&mut wire, HostTag::Stdin, chunk).unwrap();
        }
        write_frame(&mut wire, HostTag::StdinEof, &[]).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&wire);
        let mut received = Vec::new();
        let mut sizes = Vec::new();
        while let Some(frame) = decoder.next_frame() {
            sizes.push((frame.tag, frame.payload.len()));
            received.extend_from_slice(&frame.payload);
        }
        assert_eq!(sizes, [(1, 4096), (1, 4096), (1, 1808), (2, 0)]);
        assert_eq!(received, data);
    }

    #[test]
    fn noise_before_the_preamble_is_bounded_without_losing_a_split_preamble() {
        let mut noise = Vec::new();
        let mut decoder = FrameDecoder::after_magic();
        decoder.push(&vec![b'x'; NOISE_LIMIT + 10]);
        decoder.push(&MAGIC[..3]);
        decoder = bound_noise(decoder, &mut noise);
        assert!(decoder.pending().len() < 16);
        assert_eq!(noise.len(), NOISE_KEPT);
        decoder.push(&MAGIC[3..]);
        decoder.push(&[1, 1, 0, b'!']);
        let frame = decoder.next_frame().unwrap();
        assert_eq!((frame.tag, frame.payload), (1, b"!".to_vec()));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.500s");
        assert_eq!(millis(Duration::from_micros(1234)), "1.234");
    }
}
