//! Differential tests: each test program, in every build variant, runs natively and in
//! Skiff; exit status and stdout must match byte for byte.
//!
//! Stderr is not compared: Skiff may add kernel messages there when a run fails (for
//! example the fault report of `segv`), which is documented CLI behaviour. A native run
//! killed by signal N is compared as status 128+N, the CLI's code for the same event.

use skiff_tests::cases::{c_cases, go_cases, rust_cases, Case};
use skiff_tests::{guest, programs};

/// Runs the case called `name` natively and in the guest for every variant and fails
/// with every mismatch at once.
fn differential(name: &str) {
    let programs = programs();
    let Some(guest) = guest() else { return };
    let mut binaries = Vec::new();
    let case: Case = if let Some(case) = c_cases().into_iter().find(|c| c.name == name) {
        for variant in &programs.variants {
            binaries.push((variant.clone(), programs.c(variant, case.program)));
        }
        case
    } else if let Some(case) = rust_cases().into_iter().find(|c| c.name == name) {
        binaries.push(("rust".to_string(), programs.rust_program(case.program)));
        case
    } else {
        let case = go_cases()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no test case named {name}"));
        binaries.push(("go".to_string(), programs.go_program(case.program)));
        case
    };
    let mut failures = Vec::new();
    for (variant, binary) in binaries {
        let run = case.run(binary);
        match run.compare(&guest) {
            Ok((native, _)) => {
                // Guard against a vacuous match: the native run must itself be right.
                if let Err(why) = (case.check)(&native) {
                    failures.push(run.failure("native", &format!("[{variant}] {why}"), &native));
                }
            }
            Err(report) => failures.push(format!("[{variant}] case {name}: {report}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the runs differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

macro_rules! differential_tests {
    ($($test:ident => $case:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                differential($case);
            }
        )*
    };
}

differential_tests! {
    hello => "hello",
    fileio => "fileio",
    dirs => "dirs",
    openat2 => "openat2",
    mem => "mem",
    time => "time",
    stdin_empty => "stdin-empty",
    stdin_text => "stdin-text",
    stdin_large_binary => "stdin-large-binary",
    exitcode_0 => "exitcode-0",
    exitcode_42 => "exitcode-42",
    exitcode_255 => "exitcode-255",
    exitcode_256 => "exitcode-256",
    segv => "segv",
    efault => "efault",
    uname => "uname",
    env => "env",
    bytes => "bytes",
    threads => "threads",
    signals => "signals",
    processes => "processes",
    exec => "exec",
    futex_stress => "futex-stress",
    epoll_eventfd => "epoll-eventfd",
    poll_hangup => "poll-hangup",
    timerfd_signalfd => "timerfd-signalfd",
    unix_sockets => "unix-sockets",
    rust_probe => "rust-probe",
    rust_probe_exit_3 => "rust-probe-exit-3",
    rust_threads => "rust-threads",
    go_probe => "go-probe",
    net_tcp => "net-tcp",
    net_udp => "net-udp",
    net_readiness => "net-readiness",
    rust_net => "rust-net",
    go_net => "go-net",
}

#[test]
fn every_case_has_a_differential_test() {
    // Adding a case without listing it above would silently leave it untested here.
    let source = include_str!("differential.rs");
    for case in c_cases()
        .iter()
        .chain(rust_cases().iter())
        .chain(go_cases().iter())
    {
        let listed = format!("=> \"{}\"", case.name);
        assert!(
            source.contains(&listed),
            "case {} is not in differential_tests!",
            case.name
        );
    }
}
