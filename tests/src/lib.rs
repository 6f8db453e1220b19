//! The harness behind Skiff's guest and differential tests.
//!
//! This crate owns how a test program is run, natively and inside Skiff, and how the two
//! outcomes are compared:
//!
//! * [`Run`] describes one invocation (program, args, environment, files, stdin). It can
//!   run natively ([`Run::native`]), with argv[0], environment and working directory
//!   arranged to match what the guest sees, or under `skiff run` ([`Run::guest`]), always
//!   with `--timeout` and a harness watchdog so no test can hang.
//! * [`Outcome`] is what came back; [`Outcome::status_code`] maps "killed by signal N"
//!   to 128+N, the code the CLI uses for the same event, so native and guest compare.
//! * [`guest`] finds the `skiff` binary and QEMU. A missing one is a test failure with a
//!   message saying what to do, unless `SKIFF_SKIP_GUEST=1` asks for host-only runs.
//! * [`programs`] finds the test programs built by `tests/programs/build.sh`, building
//!   them first (the script is idempotent) unless `SKIFF_TEST_PROGRAMS` names a
//!   prebuilt directory.
//! * [`background`] runs a server in the background (natively or in a guest) while a
//!   test talks to it; [`net`] publishes guest ports, waits for the CLI's ready line and
//!   holds the host-side clients (a concurrent echo load, UDP echo, HTTP fetches).
//!
//! Environment knobs: `SKIFF_BIN` (the CLI), `SKIFF_QEMU` (the QEMU binary the CLI will
//! use, checked for existence only), `SKIFF_SKIP_GUEST=1`, `SKIFF_TEST_PROGRAMS`,
//! `SKIFF_TEST_JOBS` (concurrent guests, default: number of CPUs).
#![deny(unsafe_code)]

pub mod background;
pub mod cases;
pub mod net;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The `--timeout` every guest run gets, in seconds.
pub const GUEST_TIMEOUT_SECS: u64 = 60;

/// Extra time the harness allows past `--timeout` before it kills the CLI itself (QEMU
/// start-up and shutdown are outside the CLI's guest timeout).
const WATCHDOG_GRACE: Duration = Duration::from_secs(30);

/// Time limit for a native run of a test program.
const NATIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit status the CLI uses when `--timeout` expires.
pub const TIMEOUT_STATUS: i32 = 124;

/// How much of each stream a failure message shows.
const STREAM_EXCERPT: usize = 3000;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Locating the CLI and QEMU
// ---------------------------------------------------------------------------------------

/// A usable `skiff` CLI, ready to run guests.
#[derive(Clone, Debug)]
pub struct Guest {
    /// Path of the `skiff` binary.
    pub skiff: PathBuf,
}

/// Whether the user asked for host-only test runs.
pub fn guest_skipped() -> bool {
    std::env::var_os("SKIFF_SKIP_GUEST").is_some_and(|v| v == "1")
}

/// The paths searched for the CLI, in order.
pub fn skiff_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(explicit) = std::env::var_os("SKIFF_BIN") {
        candidates.push(PathBuf::from(explicit));
        return candidates;
    }
    if let Some(target_dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let target_dir = PathBuf::from(target_dir);
        let target_dir = if target_dir.is_absolute() {
            target_dir
        } else {
            repo_root().join(target_dir)
        };
        candidates.push(target_dir.join("release/skiff"));
    }
    candidates.push(repo_root().join("target/release/skiff"));
    candidates
}

/// Finds an executable called `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The CLI and QEMU, or `None` when `SKIFF_SKIP_GUEST=1` (the caller then skips its
/// guest part and says so). Panics with instructions when either is missing: a test
/// run that silently skips the guest would report success for nothing.
pub fn guest() -> Option<Guest> {
    if guest_skipped() {
        eprintln!("note: SKIFF_SKIP_GUEST=1, skipping the guest part of this test");
        return None;
    }
    let candidates = skiff_candidates();
    let Some(skiff) = candidates.iter().find(|c| c.is_file()).cloned() else {
        let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        panic!(
            "the skiff CLI was not found (tried: {}).\n\
             Build it with `cargo build --release` (or set SKIFF_BIN), \
             or set SKIFF_SKIP_GUEST=1 to run host-only tests.",
            tried.join(", ")
        );
    };
    let qemu = match std::env::var_os("SKIFF_QEMU") {
        Some(explicit) => Some(PathBuf::from(explicit)).filter(|p| p.is_file()),
        None => find_on_path("qemu-system-x86_64"),
    };
    if qemu.is_none() {
        panic!(
            "qemu-system-x86_64 was not found on PATH (or at SKIFF_QEMU).\n\
             Install it with scripts/setup.sh, or set SKIFF_SKIP_GUEST=1 to run host-only tests."
        );
    }
    Some(Guest { skiff })
}

// ---------------------------------------------------------------------------------------
// Locating the test programs
// ---------------------------------------------------------------------------------------

/// The built test programs.
#[derive(Clone, Debug)]
pub struct Programs {
    /// `tests/programs/build` (or `SKIFF_TEST_PROGRAMS`).
    pub dir: PathBuf,
    /// The C variants that were built (`build/variants`), e.g. `gcc-static`.
    pub variants: Vec<String>,
}

impl Programs {
    /// The C program `name` built as `variant`.
    pub fn c(&self, variant: &str, name: &str) -> PathBuf {
        self.dir.join(variant).join(name)
    }

    /// The static-pie Rust probe.
    pub fn rust(&self) -> PathBuf {
        self.rust_program("skiff-rust-probe")
    }

    /// The Rust threading program (`rust/src/bin/skiff-rust-threads.rs`).
    pub fn rust_threads(&self) -> PathBuf {
        self.rust_program("skiff-rust-threads")
    }

    /// The Rust program called `name` (a binary of `tests/programs/rust`).
    pub fn rust_program(&self, name: &str) -> PathBuf {
        self.dir.join("rust").join(name)
    }

    /// The static Go probe. `build.sh` skips it when `go` is not installed; this panics
    /// then, saying how to get it, because a Go test that skipped silently would report
    /// success for nothing.
    pub fn go(&self) -> PathBuf {
        self.go_program("skiff-go-probe")
    }

    /// The static Go program called `name` (under `build/go/`), with the same panic as
    /// [`Programs::go`] when `go` was missing at build time.
    pub fn go_program(&self, name: &str) -> PathBuf {
        let path = self.dir.join("go").join(name);
        assert!(
            path.is_file(),
            "{} was not built: `go` is missing. Install it with scripts/setup.sh \
             (Debian package golang-go), then run tests/programs/build.sh.",
            path.display()
        );
        path
    }

    /// One static program, for tests that only need "some static ELF".
    pub fn any_static(&self, name: &str) -> PathBuf {
        let variant = self
            .variants
            .iter()
            .find(|v| v.as_str() == "gcc-static")
            .or_else(|| self.variants.first())
            .expect("at least one C variant is built");
        self.c(variant, name)
    }
}

/// The test programs, built on first use in this process (`build.sh` is idempotent and
/// cheap when nothing changed). Panics with the build log if the build fails.
pub fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let dir = match std::env::var_os("SKIFF_TEST_PROGRAMS") {
            Some(prebuilt) => PathBuf::from(prebuilt),
            None => {
                let script = repo_root().join("tests/programs/build.sh");
                let output = Command::new("bash")
                    .arg(&script)
                    .env_remove("CARGO_ENCODED_RUSTFLAGS")
                    .output()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
                if !output.status.success() {
                    panic!(
                        "building the test programs failed ({}): {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        script.display(),
                        output.status,
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                repo_root().join("tests/programs/build")
            }
        };
        let variants_file = dir.join("variants");
        let variants: Vec<String> = std::fs::read_to_string(&variants_file)
            .unwrap_or_else(|e| {
                panic!(
                    "{} is unreadable ({e}); run tests/programs/build.sh",
                    variants_file.display()
                )
            })
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        assert!(
            !variants.is_empty(),
            "{} lists no variants",
            variants_file.display()
        );
        Programs { dir, variants }
    })
}

// ---------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// The harness watchdog killed it: it overran every deadline.
    HarnessTimeout,
}

impl Termination {
    fn from_status(status: ExitStatus) -> Termination {
        match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited(code),
            (None, Some(signal)) => Termination::Signaled(signal),
            (None, None) => Termination::Exited(-1),
        }
    }

    /// The status a shell (and the `skiff` CLI) reports: the exit status, or 128+N for
    /// a fatal signal N. `None` when the harness had to kill the process.
    pub fn status_code(self) -> Option<i32> {
        match self {
            Termination::Exited(code) => Some(code),
            Termination::Signaled(signal) => Some(128 + signal),
            Termination::HarnessTimeout => None,
        }
    }
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub termination: Termination,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// See [`Termination::status_code`].
    pub fn status_code(&self) -> Option<i32> {
        self.termination.status_code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= STREAM_EXCERPT {
        return text.into_owned();
    }
    let mut cut = STREAM_EXCERPT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[... {} more bytes]", &text[..cut], text.len() - cut)
}

/// The first line where `a` and `b` differ, as a short human-readable note.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let a_lines: Vec<&[u8]> = a.split(|&c| c == b'\n').collect();
    let b_lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    for i in 0..a_lines.len().max(b_lines.len()) {
        let left = a_lines.get(i);
        let right = b_lines.get(i);
        if left != right {
            let show = |l: Option<&&[u8]>| match l {
                Some(l) => format!("{:?}", String::from_utf8_lossy(l)),
                None => "<no such line>".to_string(),
            };
            return Some(format!(
                "first difference at line {}: native {} vs guest {}",
                i + 1,
                show(left),
                show(right)
            ));
        }
    }
    Some(format!(
        "same lines but different bytes ({} vs {} bytes)",
        a.len(),
        b.len()
    ))
}

// ---------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------

/// One invocation of a program, runnable natively or in the guest with the same view
/// of the world.
#[derive(Clone, Debug)]
pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    /// Files for the guest: host path (absolute), guest path (absolute).
    files: Vec<(PathBuf, String)>,
    stdin: Vec<u8>,
    native_cwd: PathBuf,
    native_env: Vec<(String, String)>,
    guest_timeout_secs: u64,
    extra_cli_args: Vec<OsString>,
}

impl Run {
    /// Runs `program` with no arguments, an empty environment and empty stdin.
    pub fn new(program: impl Into<PathBuf>) -> Run {
        Run {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            files: Vec::new(),
            stdin: Vec::new(),
            native_cwd: PathBuf::from("/"),
            native_env: Vec::new(),
            guest_timeout_secs: GUEST_TIMEOUT_SECS,
            extra_cli_args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// An environment variable for both runs (`-e KEY=VAL` in the guest).
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// An environment variable whose value differs between the runs (for example a
    /// work directory): `native` natively, `guest` in the guest. The program must not
    /// print it.
    pub fn env_split(mut self, key: &str, native: &str, guest: &str) -> Run {
        self.native_env.push((key.to_string(), native.to_string()));
        self.env.push((key.to_string(), guest.to_string()));
        self
    }

    /// Makes `host` appear at `guest_path` in the guest (`--file HOST:GUEST`).
    pub fn file(mut self, host: impl Into<PathBuf>, guest_path: &str) -> Run {
        self.files.push((host.into(), guest_path.to_string()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Run {
        self.stdin = bytes.into();
        self
    }

    /// The working directory of the native run (the guest's is always `/`).
    pub fn native_cwd(mut self, dir: impl Into<PathBuf>) -> Run {
        self.native_cwd = dir.into();
        self
    }

    /// The guest's `--timeout`.
    pub fn guest_timeout_secs(mut self, secs: u64) -> Run {
        self.guest_timeout_secs = secs;
        self
    }

    /// More `skiff run` options, placed before the program.
    pub fn cli_arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.extra_cli_args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// argv[0] as the guest sets it: `/bin/<basename>`.
    pub fn guest_argv0(&self) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("/bin/{name}")
    }

    /// The program and its arguments, for messages.
    pub fn describe(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            let _ = write!(text, " {:?}", arg.to_string_lossy());
        }
        for (key, value) in &self.env {
            let _ = write!(text, " [env {key}={value:?}]");
        }
        if !self.stdin.is_empty() {
            let _ = write!(text, " [stdin {} bytes]", self.stdin.len());
        }
        text
    }

    /// The full `skiff` command line, for messages.
    pub fn guest_command_line(&self, guest: &Guest) -> String {
        let cmd = self.guest_command(guest);
        let mut text = cmd.get_program().to_string_lossy().into_owned();
        for arg in cmd.get_args() {
            let _ = write!(text, " {:?}", arg.to_string_lossy());
        }
        text
    }

    /// Runs the program natively: argv[0] is `/bin/<name>` as in the guest, the
    /// environment holds exactly the variables given, the working directory is `/`
    /// unless [`Run::native_cwd`] says otherwise.
    pub fn native(&self) -> Outcome {
        run_with_watchdog(self.native_command(), &self.stdin, NATIVE_TIMEOUT).unwrap_or_else(|e| {
            panic!("cannot run {} natively: {e}", self.describe());
        })
    }

    fn native_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg0(self.guest_argv0())
            .args(&self.args)
            .env_clear()
            .current_dir(&self.native_cwd);
        for (key, value) in &self.env {
            if !self.native_env.iter().any(|(k, _)| k == key) {
                cmd.env(key, value);
            }
        }
        for (key, value) in &self.native_env {
            cmd.env(key, value);
        }
        cmd
    }

    fn guest_command(&self, guest: &Guest) -> Command {
        let mut cmd = Command::new(&guest.skiff);
        cmd.arg("run")
            .arg("--timeout")
            .arg(self.guest_timeout_secs.to_string());
        for (key, value) in &self.env {
            cmd.arg("-e").arg(format!("{key}={value}"));
        }
        for (host, guest_path) in &self.files {
            let mut spec = host.as_os_str().to_os_string();
            spec.push(":");
            spec.push(guest_path);
            cmd.arg("--file").arg(spec);
        }
        cmd.args(&self.extra_cli_args);
        cmd.arg(&self.program).arg("--").args(&self.args);
        cmd
    }

    /// Runs the program under `skiff run --timeout N`, at most `SKIFF_TEST_JOBS` guests
    /// at a time. The harness kills the CLI if it overruns its own timeout by
    /// [`WATCHDOG_GRACE`].
    pub fn guest(&self, guest: &Guest) -> Outcome {
        let _slot = GuestSlots::global().acquire();
        let limit = Duration::from_secs(self.guest_timeout_secs) + WATCHDOG_GRACE;
        run_with_watchdog(self.guest_command(guest), &self.stdin, limit).unwrap_or_else(|e| {
            panic!(
                "cannot start the skiff CLI ({}): {e}",
                self.guest_command_line(guest)
            )
        })
    }

    /// A failure message naming the program, args, exit code and both streams.
    pub fn failure(&self, side: &str, what: &str, outcome: &Outcome) -> String {
        format!(
            "{what}\n  program: {}\n  side: {side}\n  termination: {:?} (status {:?}) after {:.2?}\n\
             --- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.describe(),
            outcome.termination,
            outcome.status_code(),
            outcome.elapsed,
            excerpt(&outcome.stdout),
            excerpt(&outcome.stderr),
        )
    }

    /// Checks that the guest finished on its own (neither the CLI's `--timeout` nor the
    /// harness watchdog fired) and returns its status.
    pub fn expect_finished(&self, outcome: &Outcome) -> Result<i32, String> {
        match outcome.termination {
            Termination::HarnessTimeout => Err(self.failure(
                "guest",
                "the skiff CLI overran its own --timeout and was killed by the harness",
                outcome,
            )),
            Termination::Exited(TIMEOUT_STATUS) => Err(self.failure(
                "guest",
                &format!("the guest hit --timeout {}", self.guest_timeout_secs),
                outcome,
            )),
            other => other
                .status_code()
                .ok_or_else(|| self.failure("guest", "no status", outcome)),
        }
    }

    /// Runs natively and in the guest; returns an error describing every difference in
    /// exit status or stdout (stderr is not compared: the guest may add kernel
    /// messages there when a run fails).
    pub fn compare(&self, guest: &Guest) -> Result<(Outcome, Outcome), String> {
        let native = self.native();
        if native.termination == Termination::HarnessTimeout {
            return Err(self.failure("native", "the native run did not finish", &native));
        }
        let guest_outcome = self.guest(guest);
        self.expect_finished(&guest_outcome)?;
        let mut problems = Vec::new();
        if native.status_code() != guest_outcome.status_code() {
            problems.push(format!(
                "exit status differs: native {:?} vs guest {:?}",
                native.status_code(),
                guest_outcome.status_code()
            ));
        }
        if let Some(diff) = first_difference(&native.stdout, &guest_outcome.stdout) {
            problems.push(format!("stdout differs: {diff}"));
        }
        if problems.is_empty() {
            return Ok((native, guest_outcome));
        }
        Err(format!(
            "{}\n  command: {}\n  native: status {:?}, stdout:\n{}\n{}",
            problems.join("; "),
            self.guest_command_line(guest),
            native.status_code(),
            excerpt(&native.stdout),
            self.failure("guest", "guest run", &guest_outcome)
        ))
    }
}

/// Spawns `cmd` in its own process group with piped streams, feeds `stdin`, collects
/// both outputs, and kills the whole group if it runs past `limit` (the group kill also
/// reaches a QEMU the CLI may have left behind, which would otherwise hold the pipes
/// open and block the readers forever).
fn run_with_watchdog(mut cmd: Command, stdin: &[u8], limit: Duration) -> std::io::Result<Outcome> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child: Child = cmd.spawn()?;
    let group = child.id();
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    // A program that exits without reading its input closes the pipe: ignore EPIPE.
    let writer = thread::spawn(move || {
        let _ = child_stdin.write_all(&input);
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let spawn_reader = |mut pipe: Box<dyn Read + Send>, done: mpsc::Sender<()>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = done.send(());
            buf
        })
    };
    let out_reader = spawn_reader(
        Box::new(child.stdout.take().expect("stdout is piped")),
        done_tx.clone(),
    );
    let err_reader = spawn_reader(
        Box::new(child.stderr.take().expect("stderr is piped")),
        done_tx,
    );
    let mut termination = loop {
        if let Some(status) = child.try_wait()? {
            break Termination::from_status(status);
        }
        if start.elapsed() > limit {
            kill_process_group(group);
            let _ = child.wait();
            break Termination::HarnessTimeout;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    // Both streams should reach end of file as soon as the process is gone. If not,
    // something it started still holds them: kill the group, and count it as a hang.
    for _ in 0..2 {
        if done_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            kill_process_group(group);
            termination = Termination::HarnessTimeout;
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        }
    }
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        termination,
        stdout,
        stderr,
        elapsed,
    })
}

/// Sends SIGKILL to every process in group `group` (the harness's own child's group).
fn kill_process_group(group: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{group}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A counting semaphore limiting concurrent guests: under TCG each QEMU wants a CPU.
struct GuestSlots {
    free: Mutex<usize>,
    released: Condvar,
}

struct GuestSlot<'a>(&'a GuestSlots);

impl GuestSlots {
    fn global() -> &'static GuestSlots {
        static SLOTS: OnceLock<GuestSlots> = OnceLock::new();
        SLOTS.get_or_init(|| {
            let jobs = std::env::var("SKIFF_TEST_JOBS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
            GuestSlots {
                free: Mutex::new(jobs),
                released: Condvar::new(),
            }
        })
    }

    fn acquire(&self) -> GuestSlot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        GuestSlot(self)
    }
}

impl Drop for GuestSlot<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.released.notify_one();
    }
}

// ---------------------------------------------------------------------------------------
// Scratch directories and crafted inputs
// ---------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh, empty directory whose name contains `label`.
    pub fn new(label: &str) -> ScratchDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("skiff-test-{label}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return ScratchDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `relative` (creating parent directories) and returns the
    /// absolute path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A minimal but well-formed 32-bit x86 ELF executable: the 52-byte ELF32 header plus
/// one 32-byte PT_LOAD program header and a few bytes of code (`exit(0)` through
/// `int 0x80`). Skiff runs only x86_64 programs, so this must be refused with 126.
pub fn elf32_executable() -> Vec<u8> {
    const EHDR_SIZE: u32 = 52;
    const PHDR_SIZE: u32 = 32;
    const BASE: u32 = 0x0804_8000;
    // mov eax, 1; xor ebx, ebx; int 0x80
    let code: [u8; 9] = [0xb8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xdb, 0xcd, 0x80];
    let entry = BASE + EHDR_SIZE + PHDR_SIZE;
    let file_size = EHDR_SIZE + PHDR_SIZE + code.len() as u32;

    let mut elf = Vec::new();
    // e_ident: magic, ELFCLASS32, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV, padding.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&3u16.to_le_bytes()); // e_machine: EM_386
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&entry.to_le_bytes()); // e_entry
    elf.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(elf.len(), EHDR_SIZE as usize);
    // Program header: PT_LOAD of the whole file at BASE, readable and executable.
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&0u32.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&file_size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&file_size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R | X
    elf.extend_from_slice(&0x1000u32.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    elf
}

/// Whether an ELF64 little-endian file has a PT_INTERP program header (i.e. needs a
/// dynamic loader). `None` if `bytes` is not a well-formed ELF64 file.
pub fn elf64_has_interpreter(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u16_at = |off: usize| {
        Some(u16::from_le_bytes(
            bytes.get(off..off + 2)?.try_into().ok()?,
        ))
    };
    let u64_at = |off: usize| {
        Some(u64::from_le_bytes(
            bytes.get(off..off + 8)?.try_into().ok()?,
        ))
    };
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let phentsize = usize::from(u16_at(54)?);
    let phnum = usize::from(u16_at(56)?);
    if phentsize < 56 {
        return None;
    }
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// The bytes the `bytes` test program writes: 0..=255, four times.
pub fn all_byte_values_x4() -> Vec<u8> {
    (0..1024u32).map(|i| (i % 256) as u8).collect()
}

/// Deterministic pseudo-random bytes (xorshift), for large stdin inputs.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Run `apps/<name>/build.sh` (idempotent: it only builds what is missing) and fail the
/// test with its stderr if it fails.
pub fn build_app(name: &str) {
    let script = repo_root().join("apps").join(name).join("build.sh");
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run apps/{name}/build.sh: {e}"));
    assert!(
        out.status.success(),
        "apps/{name}/build.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_128_plus_n() {
        assert_eq!(Termination::Signaled(11).status_code(), Some(139));
        assert_eq!(Termination::Exited(7).status_code(), Some(7));
        assert_eq!(Termination::HarnessTimeout.status_code(), None);
    }

    #[test]
    fn elf32_header_is_well_formed() {
        let elf = elf32_executable();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 1, "ELFCLASS32");
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 3, "EM_386");
        assert_eq!(u16::from_le_bytes([elf[40], elf[41]]), 52, "e_ehsize");
        let entry = u32::from_le_bytes(elf[24..28].try_into().unwrap());
        assert_eq!(entry, 0x0804_8000 + 52 + 32);
        let filesz = u32::from_le_bytes(elf[68..72].try_into().unwrap());
        assert_eq!(filesz as usize, elf.len());
    }

    #[test]
    fn interpreter_detection() {
        // This test binary itself is dynamically linked on a default Linux toolchain
        // unless built with crt-static; /bin/sh on Debian is dynamic.
        let sh =
            std::fs::read(std::fs::canonicalize(find_on_path("sh").unwrap()).unwrap()).unwrap();
        assert_eq!(elf64_has_interpreter(&sh), Some(true));
        assert_eq!(elf64_has_interpreter(&elf32_executable()), None);
        assert_eq!(elf64_has_interpreter(b"#!/bin/sh\n"), None);
        let mut truncated = sh.clone();
        truncated.truncate(100);
        assert_eq!(elf64_has_interpreter(&truncated), None);
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference(b"a\nb\n", b"a\nb\n"), None);
        let diff = first_difference(b"a\nb\nc\n", b"a\nx\nc\n").unwrap();
        assert!(diff.contains("line 2"), "{diff}");
        let diff = first_difference(b"a\n", b"a\nextra\n").unwrap();
        assert!(diff.contains("line 2") && diff.contains("extra"), "{diff}");
    }

    #[test]
    fn native_run_matches_guest_view() {
        // /bin/sh prints $0 and cwd, showing argv[0], env and cwd handling.
        let sh = find_on_path("sh").expect("sh on PATH");
        let outcome = Run::new(&sh)
            .args(["-c", "echo \"$0|$(pwd)|$FOO|${HOME-unset}\"; exit 3"])
            .env("FOO", "bar")
            .native();
        assert_eq!(outcome.termination, Termination::Exited(3));
        assert_eq!(outcome.stdout_text(), "/bin/sh|/|bar|unset\n");
    }

    #[test]
    fn native_run_feeds_stdin_and_catches_signals() {
        let sh = find_on_path("sh").expect("sh on PATH");
        let outcome = Run::new(&sh)
            .args(["-c", "read line; echo \"got $line\"; kill -SEGV $$"])
            .stdin("hello\n")
            .native();
        assert_eq!(outcome.stdout_text(), "got hello\n");
        assert_eq!(outcome.status_code(), Some(139));
    }

    #[test]
    fn watchdog_kills_runaways() {
        let sleep = find_on_path("sleep").expect("sleep on PATH");
        let mut cmd = Command::new(sleep);
        cmd.arg("30");
        let outcome = run_with_watchdog(cmd, b"", Duration::from_millis(200)).unwrap();
        assert_eq!(outcome.termination, Termination::HarnessTimeout);
        assert!(outcome.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn guest_command_line_follows_the_cli_contract() {
        let run = Run::new("/x/prog")
            .arg("a b")
            .env("K", "V")
            .file("/host/f", "/data/f")
            .guest_timeout_secs(9);
        let guest = Guest {
            skiff: PathBuf::from("/bin/skiff"),
        };
        let cmd = run.guest_command(&guest);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "run",
                "--timeout",
                "9",
                "-e",
                "K=V",
                "--file",
                "/host/f:/data/f",
                "/x/prog",
                "--",
                "a b"
            ]
        );
        assert_eq!(run.guest_argv0(), "/bin/prog");
    }

    #[test]
    fn pseudo_random_bytes_are_deterministic_and_varied() {
        let a = pseudo_random_bytes(4096, 7);
        assert_eq!(a, pseudo_random_bytes(4096, 7));
        let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
        assert!(distinct.len() > 200);
    }
}
