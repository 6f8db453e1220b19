//! The test-program invocations shared by the native-baseline and differential tests.
//!
//! Each [`Case`] says how to invoke one program from `tests/programs` (arguments,
//! environment, stdin) and what a correct run looks like. The native-baseline tests hold
//! every native run to [`Case::check`], which proves the program and the harness sound
//! on Linux; the differential tests then require the guest to match the native run byte
//! for byte.

use crate::{all_byte_values_x4, pseudo_random_bytes, Outcome, Run};

/// One invocation of a test program and its expected native result.
pub struct Case {
    /// A name for messages, unique among cases.
    pub name: &'static str,
    /// The program's file name: under `build/<variant>/` for C cases, under
    /// `build/rust/` for Rust cases, `skiff-go-probe` for Go cases.
    pub program: &'static str,
    /// Adds arguments, environment and stdin to a run of the program.
    pub setup: fn(Run) -> Run,
    /// Checks a native outcome: the status and what must (not) be in stdout.
    pub check: fn(&Outcome) -> Result<(), String>,
}

impl Case {
    /// The run of this case for the binary at `path`.
    pub fn run(&self, path: impl Into<std::path::PathBuf>) -> Run {
        (self.setup)(Run::new(path))
    }
}

fn expect_status(outcome: &Outcome, status: i32) -> Result<(), String> {
    match outcome.status_code() {
        Some(s) if s == status => Ok(()),
        other => Err(format!("expected status {status}, got {other:?}")),
    }
}

/// Status 0, and no line saying a check failed (`...: no`) or a setup step died.
fn all_checks_pass(outcome: &Outcome) -> Result<(), String> {
    expect_status(outcome, 0)?;
    let text = outcome.stdout_text();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with(": no") || l.starts_with("FATAL") || l.contains("failed"))
        .collect();
    if !failed.is_empty() {
        return Err(format!("failed checks: {failed:?}"));
    }
    if text.is_empty() {
        return Err("no output".into());
    }
    Ok(())
}

/// Every line in `lines` occurs in stdout as a whole line.
fn has_lines(outcome: &Outcome, lines: &[&str]) -> Result<(), String> {
    let text = outcome.stdout_text();
    for line in lines {
        if !text.lines().any(|l| l == *line) {
            return Err(format!("missing line {line:?}"));
        }
    }
    Ok(())
}

/// How long the threading cases may take in the guest: on one emulated CPU under TCG
/// they are 10-50 times slower than natively, and the futex stress test has 64 threads.
const THREADED_GUEST_TIMEOUT_SECS: u64 = 180;

fn stdout_is(outcome: &Outcome, expected: &str) -> Result<(), String> {
    if outcome.stdout_text() == expected {
        Ok(())
    } else {
        Err(format!(
            "stdout {:?} is not {expected:?}",
            outcome.stdout_text()
        ))
    }
}

/// FNV-1a 64, as the `stdin` program computes it.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the `stdin` program prints for `input`.
pub fn stdin_report(input: &[u8]) -> String {
    let newlines = input.iter().filter(|&&b| b == b'\n').count();
    format!(
        "bytes: {}\nnewlines: {newlines}\nfnv1a64: {:016x}\n",
        input.len(),
        fnv1a64(input)
    )
}

/// 200 KiB of binary stdin: more than any pipe or console buffer holds at once.
pub fn large_stdin() -> Vec<u8> {
    pseudo_random_bytes(200 * 1024, 0x5eed)
}

/// The cases for the C programs (every variant runs every case).
pub fn c_cases() -> Vec<Case> {
    vec![
        Case {
            name: "hello",
            program: "hello",
            setup: |r| {
                r.args(["first", "two words", "", "ünïcödé"])
                    .env("SKIFF_HELLO", "world")
            },
            check: |o| {
                all_checks_pass(o)?;
                let text = o.stdout_text();
                if !text.contains("argv[0]: [/bin/hello]\n")
                    || !text.contains("argv[2]: [two words]\n")
                    || !text.contains("argv[3]: []\n")
                {
                    return Err("argv lines are wrong".into());
                }
                Ok(())
            },
        },
        Case {
            name: "fileio",
            program: "fileio",
            setup: |r| r,
            check: |o| {
                all_checks_pass(o)?;
                let text = o.stdout_text();
                for line in [
                    "open O_CREAT|O_EXCL again: EEXIST",
                    "read 5 at 7: 5 [skiff]",
                    "size after grow: 4096",
                    "close 50 again: EBADF",
                    "unlink directory: EISDIR",
                    "rmdir workdir: ok",
                ] {
                    if !text.lines().any(|l| l == line) {
                        return Err(format!("missing line {line:?}"));
                    }
                }
                Ok(())
            },
        },
        Case {
            name: "openat2",
            program: "openat2",
            setup: |r| r,
            check: |o| {
                all_checks_pass(o)?;
                let text = o.stdout_text();
                for line in [
                    "plain: OK",
                    "unknown_flag: EINVAL",
                    "long_nonzero_tail: E2BIG",
                    "bad_pointer: EFAULT",
                    "no_symlinks_link: ELOOP",
                    "beneath_dotdot: EXDEV",
                    "beneath_symlink_escape: EXDEV",
                    "in_root_absolute: OK",
                    "no_xdev_proc: EXDEV",
                ] {
                    if !text.lines().any(|l| l == line) {
                        return Err(format!("missing line {line:?}"));
                    }
                }
                Ok(())
            },
        },
        Case {
            name: "dirs",
            program: "dirs",
            setup: |r| r,
            check: |o| {
                all_checks_pass(o)?;
                let text = o.stdout_text();
                for line in [
                    "mkdir sub again: EEXIST",
                    "rmdir non-empty: ENOTEMPTY",
                    "rmdir missing: ENOENT",
                    "readlink: 5 [a.txt]",
                    "cwd after chdir: <work>/sub/inner",
                    "listing of work: 7 entries",
                    "rmdir work: ok",
                ] {
                    if !text.lines().any(|l| l == line) {
                        return Err(format!("missing line {line:?}"));
                    }
                }
                Ok(())
            },
        },
        Case {
            name: "mem",
            program: "mem",
            setup: |r| r,
            check: all_checks_pass,
        },
        Case {
            name: "time",
            program: "time",
            setup: |r| r,
            check: all_checks_pass,
        },
        Case {
            name: "stdin-empty",
            program: "stdin",
            setup: |r| r,
            check: |o| {
                expect_status(o, 0)?;
                stdout_is(o, &stdin_report(b""))
            },
        },
        Case {
            name: "stdin-text",
            program: "stdin",
            setup: |r| r.stdin("one\ntwo\nthree\n"),
            check: |o| {
                expect_status(o, 0)?;
                stdout_is(o, &stdin_report(b"one\ntwo\nthree\n"))
            },
        },
        Case {
            name: "stdin-large-binary",
            program: "stdin",
            setup: |r| r.stdin(large_stdin()),
            check: |o| {
                expect_status(o, 0)?;
                stdout_is(o, &stdin_report(&large_stdin()))
            },
        },
        Case {
            name: "exitcode-0",
            program: "exitcode",
            setup: |r| r.arg("0"),
            check: |o| expect_status(o, 0),
        },
        Case {
            name: "exitcode-42",
            program: "exitcode",
            setup: |r| r.arg("42"),
            check: |o| {
                expect_status(o, 42)?;
                stdout_is(o, "exiting with 42\n")
            },
        },
        Case {
            name: "exitcode-255",
            program: "exitcode",
            setup: |r| r.arg("255"),
            check: |o| expect_status(o, 255),
        },
        Case {
            // Linux keeps only the low 8 bits of the status.
            name: "exitcode-256",
            program: "exitcode",
            setup: |r| r.arg("256"),
            check: |o| expect_status(o, 0),
        },
        Case {
            name: "segv",
            program: "segv",
            setup: |r| r,
            check: |o| {
                expect_status(o, 139)?;
                stdout_is(o, "about to store through NULL\n")
            },
        },
        Case {
            name: "efault",
            program: "efault",
            setup: |r| r,
            check: |o| {
                all_checks_pass(o)?;
                let text = o.stdout_text();
                let probes: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        l.contains(" at ")
                            || l.contains(" to ")
                            || l.contains(" from ")
                            || l.contains(" into ")
                    })
                    .filter(|l| !l.starts_with("write zero bytes"))
                    .collect();
                if probes.len() != 30 {
                    return Err(format!(
                        "expected 30 bad-pointer probes, saw {}",
                        probes.len()
                    ));
                }
                if let Some(bad) = probes.iter().find(|l| !l.ends_with(": EFAULT")) {
                    return Err(format!("not EFAULT: {bad:?}"));
                }
                if !text.ends_with("still running after every bad pointer\n") {
                    return Err("did not reach the end".into());
                }
                Ok(())
            },
        },
        Case {
            name: "uname",
            program: "uname",
            setup: |r| r,
            check: |o| {
                expect_status(o, 0)?;
                stdout_is(o, "uname: ok\nsysname: Linux\nrelease nonempty: yes\n")
            },
        },
        Case {
            name: "env",
            program: "env",
            setup: |r| {
                r.env("SKIFF_PLAIN", "plain")
                    .env("SKIFF_SPACES", "with  two spaces")
                    .env("SKIFF_EQUALS", "a=b=c")
                    .env("SKIFF_EMPTY", "")
            },
            check: |o| {
                expect_status(o, 0)?;
                stdout_is(
                    o,
                    "SKIFF_PLAIN=[plain]\nSKIFF_SPACES=[with  two spaces]\nSKIFF_EQUALS=[a=b=c]\n\
                     SKIFF_EMPTY=[]\nSKIFF_UNSET is unset\n",
                )
            },
        },
        Case {
            name: "bytes",
            program: "bytes",
            setup: |r| r,
            check: |o| {
                expect_status(o, 0)?;
                if o.stdout == all_byte_values_x4() {
                    Ok(())
                } else {
                    Err(format!("{} bytes, not the 1024 expected", o.stdout.len()))
                }
            },
        },
        Case {
            name: "threads",
            program: "threads",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "mutex counter: 160000 (expected 160000)",
                        "condvar queue items: 15000, checksum 30037507500 (expected 30037507500)",
                        "barrier serial threads: 200 (expected 200)",
                        "tls sum of per-thread values: 3600 (expected 3600)",
                        "join sum of squares 0..9: 285",
                        "pthread_once init runs: 1",
                        "gettid distinct per thread: yes",
                        "threads: done",
                    ],
                )
            },
        },
        Case {
            name: "signals",
            program: "signals",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "raise si_code: SI_TKILL",
                        "kill si_code: SI_USER",
                        "pthread_kill si_code: SI_TKILL",
                        "ud2 si_code: ILL_ILLOPN",
                        "SA_NODEFER: calls 2, max depth 2",
                        "default: calls 2, max depth 1",
                        "write to PROT_NONE page si_code: SEGV_ACCERR",
                        "read of NULL si_code: SEGV_MAPERR",
                        "divide by zero si_code: FPE_INTDIV",
                        "read interrupted by alarm(1): EINTR",
                        "nanosleep 2s interrupted: EINTR",
                        "sigtimedwait si_code: SI_USER",
                        "timer si_code: SI_TIMER",
                        "signals: done",
                    ],
                )
            },
        },
        Case {
            name: "processes",
            program: "processes",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "fork returned 0 in the child: yes",
                        "child getppid() equals the parent's getpid(): yes",
                        "parent global after the child wrote: 1111",
                        "_exit(42): exited 42",
                        "SIGTERM during pause(): killed by SIGTERM",
                        "abort(): killed by SIGABRT",
                        "pipe child read 100000 bytes, sum 12749680 (expected 12749680)",
                        "parent offset after the child's write: 3",
                        "waitpid(-1, WNOHANG) with a live child: 0",
                        "waitpid(-1) with no children: ECHILD",
                        "SIGCHLD si_code: CLD_EXITED",
                        "SIGCHLD si_status: 33",
                        "wait(NULL) with SIGCHLD ignored: ECHILD",
                        "waitid si_code: CLD_EXITED",
                        "waitid si_status: 17",
                        "vfork child exit: 7",
                        "children reaped: 20, status sum 190 (expected 190)",
                        "grandchild chain exit: 6",
                        "parent getpgid(child) is the child's pid: yes",
                        "processes: done",
                    ],
                )
            },
        },
        Case {
            name: "exec",
            program: "exec",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "child argv[0]: exec-child",
                        "child argv[3]: two words",
                        "child SKIFF_EXEC_TEST: 42",
                        "child-args program: exited 11",
                        "exec'd program's getpid() equals fork's return: yes",
                        "F_DUPFD_CLOEXEC fd after exec: EBADF",
                        "plain pipe fd after exec: flags 0",
                        "parent read from the pipe: written through the kept fd",
                        "SIGUSR1 (caught before exec) after exec: SIG_DFL",
                        "SIGUSR2 (ignored before exec) after exec: SIG_IGN",
                        "SIGHUP still blocked after exec: yes",
                        "execve of a missing file: ENOENT",
                        "execve of a directory: EACCES",
                        "execve of a mode 0644 file: EACCES",
                        "execve of a mode 0755 non-ELF file: ENOEXEC",
                        "execve with argv = (char **)1: EFAULT",
                        "execve with path = (char *)1: EFAULT",
                        "script argv[2]: skiff-exec-script.sh",
                        "script: exited 12",
                        "execveat(AT_FDCWD, path, 0): exited 13",
                        "execveat(fd, \"\", AT_EMPTY_PATH): exited 14",
                        "vfork + execve child: exited 16",
                        "threads after exec from the main thread: 1",
                        "exec from another thread: exited 18",
                        "exec'd child raising SIGTERM: SIGTERM",
                        "exec: done",
                    ],
                )
            },
        },
        Case {
            name: "futex-stress",
            program: "futex_stress",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "futex mutex: 64 threads x 2000 = 128000 (expected 128000)",
                        "ping-pong moves: 2000 + 2000 (expected 2000 each)",
                        "FUTEX_WAIT relative 30ms: ETIMEDOUT",
                        "FUTEX_WAIT_BITSET absolute CLOCK_MONOTONIC: ETIMEDOUT",
                        "FUTEX_CMP_REQUEUE woke 1, moved the rest: returned 8",
                        "FUTEX_WAKE A woke: 0, B woke: 7",
                        "FUTEX_WAKE_OP woke: 2 (expected 2), f2 now 1",
                        "futex_stress: done",
                    ],
                )
            },
        },
        Case {
            name: "poll-hangup",
            program: "poll_hangup",
            setup: |r| r,
            check: |o| {
                expect_status(o, 0)?;
                has_lines(
                    o,
                    &[
                        "drained, writer gone: revents=0x10",
                        "writer gone, no events asked: revents=0x10",
                        "reader gone, write end: revents=0xc",
                        "select on a hung-up read end: 1 ready, in set: 1",
                    ],
                )
            },
        },
        Case {
            name: "epoll-eventfd",
            program: "epoll_eventfd",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "semaphore read 2: EAGAIN value 0",
                        "after write: 1 [data=10 IN]",
                        "writer closed, drained: 1 [data=12 HUP]",
                        "no new edge: 0",
                        "write into a non-empty pipe: 1 [data=20 IN]",
                        "emptying a full pipe is an EPOLLOUT edge: yes",
                        "rearmed: 1 [data=31 IN]",
                        "epoll_pwait unblocking SIGALRM: EINTR",
                        "epoll_eventfd: done",
                    ],
                )
            },
        },
        Case {
            name: "timerfd-signalfd",
            program: "timerfd_signalfd",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "timerfd: flags 0x802 mode 600 link anon_inode:[timerfd]",
                        "one-shot blocking read: 1",
                        "absolute past ticks: 11",
                        "epoll timer: 1 data 7 events 0x1",
                        "  record: signo 12 code SI_TKILL pid self int 0",
                        "  record: signo 10 code SI_USER pid self int 0",
                        "read three: 3 order 10 12 15",
                        "timer record: signo 12 code SI_TIMER pid 0 int 77",
                        "worker read: 12",
                        "epoll signal: 1 data 5 events 0x1",
                        "timerfd_signalfd: done",
                    ],
                )
            },
        },
        Case {
            name: "unix-sockets",
            program: "unix_sockets",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "srv: socket 1 mode 755",
                        "connect 2: EAGAIN",
                        "accepted peer address len 2",
                        "autobind name: len 8 leading NUL 1 five hex digits 1",
                        "256 KiB non-blocking write: 219264",
                        "one-byte writes that fit: 278",
                        "queued before EAGAIN: 11 (EAGAIN)",
                        "survivor, peer closed with unread data: IN RDNORM OUT WRNORM WRBAND RDHUP HUP ERR",
                        "recv: 1 bytes [A] 1 fds",
                        "  credentials: pid self uid 0 gid 0",
                        "epoll peer shutdown: 1 events 0x2001",
                        "blocking seqpacket read: 4",
                        "unix_sockets: done",
                    ],
                )
            },
        },
    ]
    .into_iter()
    .chain(network_c_cases())
    .collect()
}

/// How long the network cases may take in the guest: they move tens of MiB through the
/// loopback interface and wait out a few socket timeouts, on one emulated CPU.
const NETWORK_GUEST_TIMEOUT_SECS: u64 = 180;

/// The cases for the C network programs (part of [`c_cases`]).
fn network_c_cases() -> Vec<Case> {
    vec![
        Case {
            name: "net-tcp",
            program: "net_tcp",
            setup: |r| r.guest_timeout_secs(NETWORK_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "poll of a fresh socket: OUT|HUP",
                        "poll of a listener with a pending connection: IN",
                        "accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC: OK",
                        "peek: 5 [hello]",
                        "server poll after the client's FIN: IN|OUT|RDHUP",
                        "write after SHUT_WR: EPIPE",
                        "SIGPIPE delivered: 1",
                        "SIGPIPE after MSG_NOSIGNAL: 1",
                        "read after a close with unread data: ECONNRESET",
                        "read after an abortive close: ECONNRESET",
                        "blocking connect to a port nobody listens on: ECONNREFUSED",
                        "bind to a listening port: EADDRINUSE",
                        "bind to a port in TIME_WAIT with SO_REUSEADDR: OK",
                        "connect: EINPROGRESS",
                        "accept returns connections in connect order: yes",
                        "TCP_NODELAY read back: 1",
                        "SO_KEEPALIVE read back: 1",
                        "read with nothing to read: EAGAIN",
                        "4 clients echoed 6291456 bytes in total",
                        "reader got 16777216 bytes, mismatches 0",
                        "8 clients echoed 819200 bytes in total",
                        "net_tcp: done",
                    ],
                )
            },
        },
        Case {
            name: "net-udp",
            program: "net_udp",
            setup: |r| r.guest_timeout_secs(NETWORK_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "send without a destination: EDESTADDRREQ",
                        "recvfrom: 3 [one]",
                        "FIONREAD with 7 then 3 bytes queued: 7",
                        "recv MSG_TRUNC into 10 bytes: 100 [abcdefghij]",
                        "recvmsg into 10 bytes: 10",
                        "MSG_TRUNC is set in msg_flags: yes",
                        "an empty datagram keeps its place: 0 []",
                        "a got: 6 [from b]",
                        "nothing from c was queued: EAGAIN",
                        "sendmmsg: 3, lengths 5 2 6",
                        "recvmmsg: 3",
                        "received 65507 bytes, mismatches 0",
                        "sendto of 65508 bytes: EMSGSIZE",
                        "the blocked receiver got: 7 [wake up]",
                        "net_udp: done",
                    ],
                )
            },
        },
        Case {
            name: "net-readiness",
            program: "net_readiness",
            setup: |r| r.guest_timeout_secs(NETWORK_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "readable: 6",
                        "ppoll unblocking a pending signal: EINTR",
                        "ppoll with ready descriptors and a pending signal: 4, handler ran: 0",
                        "the signal is still pending: yes",
                        "select readable: 8",
                        "pselect unblocking a pending signal: EINTR",
                        "level, readable: 4 [pipe-r IN] [eventfd IN] [conn IN] [listener IN]",
                        "edge, no new arrival: 0",
                        "edge, more data without draining: 2 [pipe-r IN] [conn IN]",
                        "oneshot, disarmed: 0",
                        "after the peer's SHUT_WR: 1 [conn IN OUT RDHUP]",
                        "6 clients echoed 1572864 bytes in total",
                        "net_readiness: done",
                    ],
                )
            },
        },
    ]
}

/// The cases for the Rust programs.
pub fn rust_cases() -> Vec<Case> {
    vec![
        Case {
            name: "rust-probe",
            program: "skiff-rust-probe",
            setup: |r| r.arg("0").arg("second arg").env("SKIFF_RUST", "yes please"),
            check: |o| {
                all_checks_pass(o)?;
                let text = o.stdout_text();
                for line in [
                    "arg[0]: [/bin/skiff-rust-probe]",
                    "env SKIFF_RUST=[yes please]",
                    "current_dir: /",
                    "sub holds: a.txt (file), deeper (dir), z.txt (file)",
                    "work dir removed",
                ] {
                    if !text.lines().any(|l| l == line) {
                        return Err(format!("missing line {line:?}"));
                    }
                }
                Ok(())
            },
        },
        Case {
            name: "rust-probe-exit-3",
            program: "skiff-rust-probe",
            setup: |r| r.arg("3"),
            check: |o| expect_status(o, 3),
        },
        Case {
            name: "rust-threads",
            program: "skiff-rust-threads",
            setup: |r| r.guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "join results total: 31996000",
                        "mutex counter: 80000",
                        "channel: 4000 messages, sum 62002000",
                        "scoped sum: 50005000",
                        "rust threads: done",
                    ],
                )
            },
        },
        Case {
            name: "rust-net",
            program: "skiff-rust-net",
            setup: |r| r.guest_timeout_secs(NETWORK_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "4 clients got back 4194304 bytes",
                        "connect to a closed port: Some(ConnectionRefused)",
                        "read with nothing to read: WouldBlock",
                        "write after shutdown(Write): BrokenPipe",
                        "read after a close with unread data: ConnectionReset",
                        "accept with nothing pending: WouldBlock",
                        "writing until full ends with: WouldBlock",
                        "b got: \"connected\"",
                        "a got: \"from b\"",
                        "rust net: done",
                    ],
                )
            },
        },
    ]
}

/// The cases for the Go programs.
pub fn go_cases() -> Vec<Case> {
    vec![
        go_probe_case(),
        Case {
            name: "go-net",
            program: "skiff-go-net",
            setup: |r| r.guest_timeout_secs(NETWORK_GUEST_TIMEOUT_SECS),
            check: |o| {
                all_checks_pass(o)?;
                has_lines(
                    o,
                    &[
                        "GET /hello: 200 \"hello, GET /hello\\n\"",
                        "GET /big: 200, 3158073 bytes, read error: <nil>",
                        "POST /echo: 200, 700000 bytes, sha256 519dbf5120315b90",
                        "GET /missing: 404",
                        "concurrent POSTs echoed intact: 32 of 32",
                        "Serve returned ErrServerClosed: true",
                        "echoed 1048576 bytes, error <nil>",
                        "go net: done",
                    ],
                )
            },
        },
    ]
}

fn go_probe_case() -> Case {
    Case {
        name: "go-probe",
        program: "skiff-go-probe",
        setup: |r| {
            r.args(["first", "two words"])
                .env("SKIFF_GO", "gopher")
                .guest_timeout_secs(THREADED_GUEST_TIMEOUT_SECS)
        },
        check: |o| {
            all_checks_pass(o)?;
            has_lines(
                o,
                &[
                    "arg[0]: [/bin/skiff-go-probe]",
                    "arg[2]: [two words]",
                    "env SKIFF_GO=[gopher]",
                    "1000 goroutines sent a total of 500500",
                    "pipe: read 262144 bytes",
                    "a goroutine ran while a loop without calls held the only P: yes",
                    "go: done",
                ],
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn case_names_are_unique() {
        let mut names: Vec<&str> = c_cases()
            .iter()
            .chain(rust_cases().iter())
            .chain(go_cases().iter())
            .map(|c| c.name)
            .collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
    }
}
