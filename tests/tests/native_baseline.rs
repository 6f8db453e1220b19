//! Native baseline: every test program, in every build variant, run natively on this
//! host, must pass its own checks and print the same bytes in every variant.
//!
//! This needs no guest. It proves the programs and the harness sound, so that a
//! differential failure points at Skiff rather than at the test.

use skiff_tests::cases::{c_cases, go_cases, rust_cases};
use skiff_tests::programs;

#[test]
fn c_programs_pass_natively_in_every_variant() {
    let programs = programs();
    let mut failures = Vec::new();
    for case in c_cases() {
        let mut reference: Option<(String, Vec<u8>)> = None;
        for variant in &programs.variants {
            let run = case.run(programs.c(variant, case.program));
            let outcome = run.native();
            if let Err(why) = (case.check)(&outcome) {
                failures.push(run.failure(
                    "native",
                    &format!("case {} ({variant}): {why}", case.name),
                    &outcome,
                ));
                continue;
            }
            // The time program's output is booleans only, so it too must agree.
            match &reference {
                None => reference = Some((variant.clone(), outcome.stdout.clone())),
                Some((first, stdout)) if *stdout != outcome.stdout => failures.push(format!(
                    "case {}: {variant} prints differently from {first}: {}",
                    case.name,
                    skiff_tests::first_difference(stdout, &outcome.stdout).unwrap_or_default()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn rust_programs_pass_natively() {
    let programs = programs();
    let mut failures = Vec::new();
    for case in rust_cases() {
        let run = case.run(programs.rust_program(case.program));
        let outcome = run.native();
        if let Err(why) = (case.check)(&outcome) {
            failures.push(run.failure("native", &format!("case {}: {why}", case.name), &outcome));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn go_programs_pass_natively() {
    let programs = programs();
    let mut failures = Vec::new();
    for case in go_cases() {
        let run = case.run(programs.go_program(case.program));
        let outcome = run.native();
        if let Err(why) = (case.check)(&outcome) {
            failures.push(run.failure("native", &format!("case {}: {why}", case.name), &outcome));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_program_is_static() {
    // A dynamically linked test binary would make every guest result meaningless.
    let programs = programs();
    let mut paths: Vec<_> = programs
        .variants
        .iter()
        .map(|variant| programs.c(variant, "hello"))
        .collect();
    paths.push(programs.rust());
    paths.push(programs.rust_threads());
    paths.push(programs.rust_program("skiff-rust-net"));
    paths.push(programs.go());
    paths.push(programs.go_program("skiff-go-net"));
    for name in ["net_tcp", "net_echo_server", "net_http_server"] {
        paths.push(programs.any_static(name));
    }
    for path in paths {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            skiff_tests::elf64_has_interpreter(&bytes),
            Some(false),
            "{} is not a static ELF64 executable",
            path.display()
        );
    }
}
