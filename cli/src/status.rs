//! `skiff run`'s exit statuses and the messages that go with them.
//!
//! The statuses follow the shell and `docker run`: the application's own status when it
//! exits; 128+N when signal N kills it; 126 when the program cannot be executed; 127 when
//! it does not exist; 125 when skiff or QEMU fails; 124 for `--timeout` (like
//! `timeout(1)`).

use skiff_bootproto::ExitReport;

/// skiff itself or QEMU failed (bad usage, missing kernel or QEMU, a guest that died
/// without reporting how the application ended).
pub const STATUS_SKIFF_FAILED: u8 = 125;
/// The program exists but cannot be run.
pub const STATUS_CANNOT_EXECUTE: u8 = 126;
/// The program does not exist.
pub const STATUS_NOT_FOUND: u8 = 127;
/// `--timeout` expired (the value `timeout(1)` uses).
pub const STATUS_TIMED_OUT: u8 = 124;

/// Linux signal numbers that may kill a process.
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGPIPE: i32 = 13;
pub const SIGTERM: i32 = 15;

/// The status of a process killed by `signal` (the shell's convention).
pub fn status_for_signal(signal: i32) -> u8 {
    (128 + signal.clamp(0, 127)) as u8
}

/// The name of a Linux x86_64 signal, e.g. `SIGSEGV` for 11.
pub fn signal_name(signal: u8) -> Option<&'static str> {
    skiff_bootproto::signal_name(signal)
}

/// What `skiff run` does with the guest's exit report: the status to exit with and the
/// one-line message (without the `skiff: ` prefix) to print on stderr, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: u8,
    pub message: Option<String>,
    /// Whether the kernel's recent log lines should be shown (the guest itself failed).
    pub show_kernel_log: bool,
}

/// Map the guest's exit report for the program `app` (as the user named it).
pub fn outcome_of(report: ExitReport, app: &str) -> Outcome {
    let status = report.host_status();
    let (message, show_kernel_log) = match report {
        ExitReport::Exited(_) => (None, false),
        // Like a shell, stay quiet about SIGPIPE: it is how pipelines end normally.
        ExitReport::Signaled(n) if i32::from(n) == SIGPIPE => (None, false),
        ExitReport::Signaled(n) => {
            let message = match signal_name(n) {
                Some(name) => format!("{app} killed by {name} (signal {n})"),
                None => format!("{app} killed by signal {n}"),
            };
            (Some(message), false)
        }
        ExitReport::CannotExecute => (
            Some(format!(
                "{app}: cannot execute (the guest kernel refused it)"
            )),
            true,
        ),
        ExitReport::NotFound => (Some(format!("{app}: no such file in the guest")), true),
        ExitReport::KernelFailure => (Some("the guest kernel failed".to_string()), true),
    };
    Outcome {
        status,
        message,
        show_kernel_log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_passes_status_through_quietly() {
        for code in [0, 1, 7, 255] {
            let outcome = outcome_of(ExitReport::Exited(code), "./app");
            assert_eq!(
                outcome,
                Outcome {
                    status: code,
                    message: None,
                    show_kernel_log: false
                }
            );
        }
    }

    #[test]
    fn signals_map_to_128_plus_n_with_a_name() {
        let outcome = outcome_of(ExitReport::Signaled(11), "./app");
        assert_eq!(outcome.status, 139);
        assert_eq!(
            outcome.message.as_deref(),
            Some("./app killed by SIGSEGV (signal 11)")
        );
        let abort = outcome_of(ExitReport::Signaled(6), "x");
        assert_eq!(
            (abort.status, abort.message.unwrap()),
            (134, "x killed by SIGABRT (signal 6)".into())
        );
        let realtime = outcome_of(ExitReport::Signaled(40), "x");
        assert_eq!(realtime.message.as_deref(), Some("x killed by signal 40"));
        let pipe = outcome_of(ExitReport::Signaled(13), "x");
        assert_eq!((pipe.status, pipe.message), (141, None));
    }

    #[test]
    fn guest_side_failures() {
        assert_eq!(
            outcome_of(ExitReport::CannotExecute, "x").status,
            STATUS_CANNOT_EXECUTE
        );
        assert_eq!(
            outcome_of(ExitReport::NotFound, "x").status,
            STATUS_NOT_FOUND
        );
        let kernel = outcome_of(ExitReport::KernelFailure, "x");
        assert_eq!(kernel.status, STATUS_SKIFF_FAILED);
        assert!(kernel.show_kernel_log);
    }

    #[test]
    fn host_signal_statuses() {
        assert_eq!(status_for_signal(SIGINT), 130);
        assert_eq!(status_for_signal(SIGTERM), 143);
        assert_eq!(status_for_signal(SIGHUP), 129);
        assert_eq!(status_for_signal(SIGPIPE), 141);
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(32), None);
    }
}
