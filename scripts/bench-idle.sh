#!/usr/bin/env bash
# Idle-CPU benchmark (not a test: it prints numbers and never fails on them).
#
# What does a guest that is only sleeping cost the host? Runs the static `sleep` test
# program (tests/programs/c/sleep.c: nanosleep for N seconds, default 5, or $1) under
# `skiff run`, and the same program natively as the baseline, each under
# /usr/bin/time. /usr/bin/time reports the CPU time of the whole process tree it waited
# for: the CLI plus the QEMU it spawns and waits for (a reaped child's CPU time is
# added to its parent's). It prints, for each run, user+sys CPU seconds, wall seconds
# and CPU as a percentage of one core.
#
# Guest runs of `sleep 0` are measured too (three; the median counts): they are the
# cost of booting and exiting. Subtracting it from the N-second run leaves what the N
# seconds of idling cost, printed as a percentage of one core; a kernel that halts the
# CPU when it has nothing to run keeps that near 0% (small negative values are run-to-run
# noise in the boot cost), one that spins shows ~100%.
#
# Fails only if a run itself fails (non-zero exit status or the wrong output).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-5}"
if ! [[ "$seconds" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "usage: scripts/bench-idle.sh [seconds]   (default 5)" >&2
    exit 2
fi

scripts/setup.sh >/dev/null
cargo build --release --quiet
tests/programs/build.sh >/dev/null
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-target}/release/skiff}"
program=tests/programs/build/gcc-static/sleep
timeout_secs=$(awk -v s="$seconds" 'BEGIN { printf "%d", s + 120 }')
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# measure LABEL COMMAND...: runs COMMAND under /usr/bin/time, checks that it succeeded
# and printed "slept: ok", and leaves "user sys wall" in $work/LABEL.
measure() {
    local label="$1"
    shift
    if ! /usr/bin/time -f '%U %S %e' -o "$work/$label" "$@" >"$work/$label.out" 2>"$work/$label.err"; then
        echo "bench-idle.sh: the $label run failed: $*" >&2
        cat "$work/$label.err" "$work/$label" >&2
        exit 1
    fi
    if ! grep -qx 'slept: ok' "$work/$label.out"; then
        echo "bench-idle.sh: the $label run did not print 'slept: ok': $*" >&2
        cat "$work/$label.out" "$work/$label.err" >&2
        exit 1
    fi
    # /usr/bin/time may add a status line before the numbers; keep the last line.
    tail -n 1 "$work/$label" >"$work/$label.numbers"
}

# report LABEL TITLE: one line with CPU, wall and percentage of one core.
report() {
    read -r user sys wall <"$work/$1.numbers"
    awk -v t="$2" -v u="$user" -v s="$sys" -v w="$wall" 'BEGIN {
        cpu = u + s
        pct = (w > 0) ? 100 * cpu / w : 0
        printf "  %-34s cpu %6.2f s (user %.2f, sys %.2f), wall %6.2f s, %5.1f%% of one core\n",
            t, cpu, u, s, w, pct }'
}

for i in 1 2 3; do
    measure "guest-0-$i" "$skiff" run --timeout "$timeout_secs" "$program" -- 0
done
# The boot-and-exit run with the median CPU time stands for all three.
median_zero=$(for i in 1 2 3; do
    awk -v i="$i" '{ printf "%.3f guest-0-%s\n", $1 + $2, i }' "$work/guest-0-$i.numbers"
done | sort -n | sed -n 2p | cut -d' ' -f2)
cp "$work/$median_zero.numbers" "$work/guest-0.numbers"
measure guest "$skiff" run --timeout "$timeout_secs" "$program" -- "$seconds"
measure native "$program" "$seconds"

echo "idle CPU: a static program sleeping ${seconds}s in nanosleep"
report guest "skiff run (CLI + QEMU):"
report guest-0 "skiff run, sleep 0 (boot + exit):"
report native "native (baseline):"
read -r gu gs gw <"$work/guest.numbers"
read -r zu zs zw <"$work/guest-0.numbers"
awk -v gu="$gu" -v gs="$gs" -v gw="$gw" -v zu="$zu" -v zs="$zs" -v zw="$zw" -v n="$seconds" 'BEGIN {
    idle_cpu = (gu + gs) - (zu + zs)
    idle_wall = gw - zw
    if (idle_wall <= 0) idle_wall = n
    printf "  idle share (guest minus sleep 0):  cpu %6.2f s over %.2f s of idling, %5.1f%% of one core\n",
        idle_cpu, idle_wall, 100 * idle_cpu / idle_wall }'
