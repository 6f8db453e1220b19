//! Repeat runs of the threading programs: a kernel whose threads, futexes or timers
//! leave state behind (or race at start-up or exit) tends to hang or fail on a later
//! run, not the first. Each run must finish on its own, exit 0 and print exactly what
//! the native run printed.

use skiff_tests::cases::{c_cases, Case};
use skiff_tests::{first_difference, guest, programs, Termination};

const REPEATS: usize = 3;

fn case(name: &str) -> Case {
    c_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no test case named {name}"))
}

/// Runs case `name` natively once (it must pass its checks), then `REPEATS` times in a
/// row in the guest, comparing each guest run with the native one.
fn repeated(name: &str) {
    let programs = programs();
    let case = case(name);
    let run = case.run(programs.any_static(case.program));
    let native = run.native();
    assert_ne!(
        native.termination,
        Termination::HarnessTimeout,
        "{}",
        run.failure("native", "the native run did not finish", &native)
    );
    if let Err(why) = (case.check)(&native) {
        panic!("{}", run.failure("native", &why, &native));
    }
    let Some(guest) = guest() else { return };
    for attempt in 1..=REPEATS {
        let outcome = run.guest(&guest);
        let status = run
            .expect_finished(&outcome)
            .unwrap_or_else(|report| panic!("run {attempt} of {REPEATS}: {report}"));
        assert_eq!(
            status,
            0,
            "{}",
            run.failure(
                "guest",
                &format!("run {attempt} of {REPEATS} failed"),
                &outcome
            )
        );
        if let Some(diff) = first_difference(&native.stdout, &outcome.stdout) {
            panic!(
                "{}",
                run.failure(
                    "guest",
                    &format!("run {attempt} of {REPEATS}: stdout differs: {diff}"),
                    &outcome
                )
            );
        }
    }
}

#[test]
fn futex_stress_three_runs_in_a_row() {
    repeated("futex-stress");
}
