//! Programs that run in the background while a test talks to them: a server natively
//! ([`Run::spawn_native`]) or in a guest ([`Run::spawn_guest`]).
//!
//! A [`Background`] process collects both output streams as they arrive and hands out
//! lines to wait for ([`Background::wait_for_line`]), so a test can start a server, wait
//! until it (or the CLI on its behalf) says it is ready, drive it from the host, and
//! then collect its [`Outcome`] with [`Background::wait`] or [`Background::stop`]. Every
//! wait has a deadline and a failure message of its own, and dropping a `Background`
//! that is still running kills its whole process group: a failed assertion never leaves
//! a QEMU behind.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{excerpt, kill_process_group, Guest, GuestSlot, GuestSlots, Outcome, Run, Termination};

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How long a stopped process may take to exit before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long the output streams may stay open after the process exited.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// A program running in the background. See the module documentation.
pub struct Background {
    child: Child,
    group: u32,
    description: String,
    started: Instant,
    /// Everything each stream produced so far.
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Complete lines, in arrival order per stream, not yet consumed by a wait.
    lines: mpsc::Receiver<(Stream, String)>,
    readers: Vec<thread::JoinHandle<()>>,
    /// Set once the process has been reaped.
    exit: Option<Termination>,
    _slot: Option<GuestSlot<'static>>,
}

impl Background {
    fn spawn(
        mut cmd: Command,
        description: String,
        slot: Option<GuestSlot<'static>>,
    ) -> Background {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        let group = child.id();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let readers = vec![
            spawn_reader(
                Box::new(child.stdout.take().expect("stdout is piped")),
                Stream::Stdout,
                Arc::clone(&stdout),
                tx.clone(),
            ),
            spawn_reader(
                Box::new(child.stderr.take().expect("stderr is piped")),
                Stream::Stderr,
                Arc::clone(&stderr),
                tx,
            ),
        ];
        Background {
            child,
            group,
            description,
            started: Instant::now(),
            stdout,
            stderr,
            lines,
            readers,
            exit: None,
            _slot: slot,
        }
    }

    /// What runs, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(Termination::from_status(status));
            }
        }
        self.exit.is_some()
    }

    /// Waits until a line on `stream` satisfies `wanted` and returns it. Lines before it
    /// are consumed. Fails, naming `what`, if the process exits first or `timeout`
    /// passes; the message shows both streams so far.
    pub fn wait_for_line(
        &mut self,
        stream: Stream,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok((s, line)) if s == stream && wanted(&line) => return Ok(line),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected)
                | Err(mpsc::RecvTimeoutError::Timeout)
                    if self.has_exited() =>
                {
                    // Lines written just before the exit may still be on their way.
                    let drain_deadline = Instant::now() + DRAIN_GRACE;
                    while self.readers.iter().any(|r| !r.is_finished())
                        && Instant::now() < drain_deadline
                    {
                        thread::sleep(Duration::from_millis(20));
                    }
                    while let Ok((s, line)) = self.lines.try_recv() {
                        if s == stream && wanted(&line) {
                            return Ok(line);
                        }
                    }
                    return Err(self.report(&format!(
                        "{} exited before {what} (termination {:?})",
                        self.description,
                        self.exit.expect("has_exited")
                    )));
                }
                Err(_) => {}
            }
            if Instant::now() > deadline {
                return Err(self.report(&format!(
                    "{what} did not happen within {timeout:?} of waiting \
                     ({:.1?} after {} started)",
                    self.started.elapsed(),
                    self.description
                )));
            }
        }
    }

    /// The complete lines on `stream` that no wait has consumed yet, without waiting;
    /// lines of the other stream are dropped.
    pub fn take_pending_lines(&mut self, stream: Stream) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok((s, line)) = self.lines.try_recv() {
            if s == stream {
                lines.push(line);
            }
        }
        lines
    }

    /// A failure message: `what`, then both streams so far.
    pub fn report(&self, what: &str) -> String {
        let stdout = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!(
            "{what}\n  program: {}\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}\n--- end ---",
            self.description,
            excerpt(&stdout),
            excerpt(&stderr)
        )
    }

    /// Waits up to `timeout` for the process to exit on its own; if it does not, kills
    /// its process group and reports [`Termination::HarnessTimeout`].
    pub fn wait(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        while !self.has_exited() {
            if Instant::now() > deadline {
                kill_process_group(self.group);
                let _ = self.child.wait();
                self.exit = Some(Termination::HarnessTimeout);
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.collect()
    }

    /// Asks the process to stop (SIGTERM; the CLI then shuts its VM down), waits a
    /// while, then kills its group if it is still there.
    pub fn stop(mut self) -> Outcome {
        if !self.has_exited() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.wait(STOP_GRACE)
    }

    /// Gathers the outcome of an exited process.
    fn collect(&mut self) -> Outcome {
        let mut termination = self.exit.expect("the process has exited");
        let elapsed = self.started.elapsed();
        // Something the process started may still hold the pipes open (a QEMU the CLI
        // left behind): give the readers a moment, then kill the group.
        let drain_deadline = Instant::now() + DRAIN_GRACE;
        while self.readers.iter().any(|r| !r.is_finished()) {
            if Instant::now() > drain_deadline {
                kill_process_group(self.group);
                termination = Termination::HarnessTimeout;
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        for reader in self.readers.drain(..) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let stdout = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Outcome {
            termination,
            stdout,
            stderr,
            elapsed,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if !self.has_exited() {
            kill_process_group(self.group);
            let _ = self.child.wait();
        }
    }
}

/// Copies `pipe` into `sink` and sends each complete line (without its newline) to
/// `lines`.
fn spawn_reader(
    pipe: Box<dyn Read + Send>,
    stream: Stream,
    sink: Arc<Mutex<Vec<u8>>>,
    lines: mpsc::Sender<(Stream, String)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&line);
                    if line.last() == Some(&b'\n') {
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                        // Nobody waiting any more is fine: the bytes are kept in `sink`.
                        let _ = lines.send((stream, text.trim_end_matches('\r').to_string()));
                    }
                }
            }
        }
    })
}

impl Run {
    /// Starts the program natively in the background, set up as [`Run::native`] would
    /// (stdin is empty).
    pub fn spawn_native(&self) -> Background {
        Background::spawn(
            self.native_command(),
            format!("{} (native)", self.describe()),
            None,
        )
    }

    /// Starts the program under `skiff run` in the background, holding one of the
    /// concurrent-guest slots until it is done. The CLI's own `--timeout` still applies.
    pub fn spawn_guest(&self, guest: &Guest) -> Background {
        let slot = GuestSlots::global().acquire();
        Background::spawn(
            self.guest_command(guest),
            self.guest_command_line(guest),
            Some(slot),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::find_on_path;
    use std::path::Path;

    fn sh(script: &str) -> Run {
        Run::new(find_on_path("sh").expect("sh on PATH")).args(["-c", script])
    }

    #[test]
    fn lines_are_found_on_the_right_stream() {
        let mut p = sh("echo one; echo two >&2; echo three").spawn_native();
        let line = p
            .wait_for_line(Stream::Stdout, "three", Duration::from_secs(10), |l| {
                l.starts_with("thr")
            })
            .unwrap();
        assert_eq!(line, "three");
        let outcome = p.wait(Duration::from_secs(10));
        assert_eq!(outcome.status_code(), Some(0));
        assert_eq!(outcome.stdout_text(), "one\nthree\n");
        assert_eq!(outcome.stderr_text(), "two\n");
    }

    #[test]
    fn an_early_exit_is_reported_as_such() {
        let mut p = sh("echo starting; exit 3").spawn_native();
        let err = p
            .wait_for_line(
                Stream::Stderr,
                "the ready line",
                Duration::from_secs(10),
                |l| l == "ready",
            )
            .unwrap_err();
        assert!(err.contains("exited before the ready line"), "{err}");
        assert!(
            err.contains("Exited(3)") && err.contains("starting"),
            "{err}"
        );
    }

    #[test]
    fn a_silent_process_times_out_and_is_killed_on_drop() {
        let mut p = sh("echo $$; exec sleep 60").spawn_native();
        let pid = p
            .wait_for_line(Stream::Stdout, "the pid", Duration::from_secs(10), |_| true)
            .unwrap();
        let err = p
            .wait_for_line(
                Stream::Stdout,
                "more output",
                Duration::from_millis(200),
                |_| true,
            )
            .unwrap_err();
        assert!(err.contains("more output did not happen within"), "{err}");
        drop(p);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived the drop"
        );
    }

    #[test]
    fn wait_kills_an_overrunning_process() {
        let p = sh("exec sleep 60").spawn_native();
        let outcome = p.wait(Duration::from_millis(200));
        assert_eq!(outcome.termination, Termination::HarnessTimeout);
    }

    #[test]
    fn stop_terminates_politely() {
        let p = sh("trap 'echo bye; exit 5' TERM; echo up; while :; do sleep 0.05; done")
            .spawn_native();
        let mut p = p;
        p.wait_for_line(Stream::Stdout, "up", Duration::from_secs(10), |l| l == "up")
            .unwrap();
        let outcome = p.stop();
        assert_eq!(outcome.status_code(), Some(5), "{outcome:?}");
        assert!(outcome.stdout_text().ends_with("bye\n"));
    }
}
