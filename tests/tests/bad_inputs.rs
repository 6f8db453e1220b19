//! Programs Skiff must refuse or report cleanly, and the CLI's own contract: 126 for a
//! file it cannot execute, 127 for a missing one, each with a one-line reason on stderr
//! and without waiting for the timeout; 139 plus a fault report for a NULL store; 124 on
//! `--timeout`; stdout that carries every byte value unchanged.

use skiff_tests::{
    all_byte_values_x4, elf32_executable, elf64_has_interpreter, find_on_path, guest, programs,
    Guest, Outcome, Run, ScratchDir, Termination, TIMEOUT_STATUS,
};

/// Runs `program` in the guest and checks it is refused with `status` and a one-line
/// reason on stderr, well before the timeout.
fn expect_refused(guest: &Guest, program: &std::path::Path, status: i32) {
    let run = Run::new(program);
    let outcome = run.guest(guest);
    let code = run
        .expect_finished(&outcome)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code,
        status,
        "{}",
        run.failure("guest", &format!("expected exit status {status}"), &outcome)
    );
    let stderr = outcome.stderr_text();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{}",
        run.failure(
            "guest",
            "expected exactly one line of reason on stderr",
            &outcome
        )
    );
    assert!(
        outcome.stdout.is_empty(),
        "{}",
        run.failure(
            "guest",
            "a refused program must print nothing on stdout",
            &outcome
        )
    );
}

#[test]
fn dynamically_linked_elf_is_refused_with_126() {
    let Some(guest) = guest() else { return };
    let dynamic = ["true", "env", "ls"]
        .iter()
        .filter_map(|name| find_on_path(name))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .find(|p| {
            std::fs::read(p)
                .ok()
                .and_then(|b| elf64_has_interpreter(&b))
                .unwrap_or(false)
        })
        .expect("no dynamically linked /bin/true, env or ls on this host to test with");
    expect_refused(&guest, &dynamic, 126);
}

#[test]
fn truncated_elf_is_refused_with_126() {
    let Some(guest) = guest() else { return };
    let whole = std::fs::read(programs().any_static("hello")).expect("read hello");
    let scratch = ScratchDir::new("truncated");
    let truncated = scratch.write("truncated-hello", &whole[..100]);
    expect_refused(&guest, &truncated, 126);
}

#[test]
fn text_file_is_refused_with_126() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("text");
    let text = scratch.write("notes.txt", "this is not a program\n");
    expect_refused(&guest, &text, 126);
}

#[test]
fn empty_file_is_refused_with_126() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("empty");
    let empty = scratch.write("empty", "");
    expect_refused(&guest, &empty, 126);
}

#[test]
fn elf32_is_refused_with_126() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("elf32");
    let elf32 = scratch.write("i386-exit0", elf32_executable());
    expect_refused(&guest, &elf32, 126);
}

#[test]
fn directory_is_refused_with_126() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("dir");
    std::fs::create_dir(scratch.path().join("a-directory")).expect("mkdir");
    expect_refused(&guest, &scratch.path().join("a-directory"), 126);
}

#[test]
fn missing_file_is_reported_with_127() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("missing");
    expect_refused(&guest, &scratch.path().join("no-such-program"), 127);
}

#[test]
fn null_store_dies_with_139_and_a_fault_report() {
    let Some(guest) = guest() else { return };
    for variant in &programs().variants {
        let run = Run::new(programs().c(variant, "segv"));
        let outcome = run.guest(&guest);
        let code = run
            .expect_finished(&outcome)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            code,
            139,
            "{}",
            run.failure("guest", "expected 139 (SIGSEGV)", &outcome)
        );
        assert_eq!(
            outcome.stdout_text(),
            "about to store through NULL\n",
            "{}",
            run.failure(
                "guest",
                "output before the fault must arrive, nothing after",
                &outcome
            )
        );
        let report = outcome.stderr_text().to_lowercase();
        assert!(
            report.contains("fault") || report.contains("sigsegv"),
            "{}",
            run.failure("guest", "stderr must carry a fault report", &outcome)
        );
    }
}

#[test]
fn stdout_is_binary_safe() {
    let Some(guest) = guest() else { return };
    for variant in &programs().variants {
        let run = Run::new(programs().c(variant, "bytes"));
        let outcome: Outcome = run.guest(&guest);
        let code = run
            .expect_finished(&outcome)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            code,
            0,
            "{}",
            run.failure("guest", "expected exit 0", &outcome)
        );
        assert!(
            outcome.stdout == all_byte_values_x4(),
            "{}",
            run.failure(
                "guest",
                &format!(
                    "stdout must be the 1024 bytes 0..=255 x4; got {} bytes: {}",
                    outcome.stdout.len(),
                    skiff_tests::first_difference(&all_byte_values_x4(), &outcome.stdout)
                        .unwrap_or_default()
                ),
                &outcome
            )
        );
    }
}

#[test]
fn timeout_is_enforced_with_124() {
    let Some(guest) = guest() else { return };
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: run scripts/setup.sh"
    );
    let run = Run::new(busybox)
        .args(["sleep", "600"])
        .guest_timeout_secs(3);
    let outcome = run.guest(&guest);
    assert_ne!(
        outcome.termination,
        Termination::HarnessTimeout,
        "{}",
        run.failure("guest", "the CLI ignored --timeout 3", &outcome)
    );
    assert_eq!(
        outcome.status_code(),
        Some(TIMEOUT_STATUS),
        "{}",
        run.failure("guest", "--timeout must end the run with 124", &outcome)
    );
}
