#!/usr/bin/env bash
# Boot-to-exit benchmark (not a test: it prints numbers and never fails on them).
#
# Builds the static `hello` test program, runs it N times (default 10, or $1) under
# `skiff run --timing` and N times natively, and prints the median, minimum and maximum
# wall time of each, their ratio, and the guest's own kernel-entry-to-first-app-
# instruction time as the CLI reports it with --timing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs="${1:-10}"
scripts/setup.sh >/dev/null
cargo build --release --quiet
tests/programs/build.sh >/dev/null
skiff="${SKIFF_BIN:-target/release/skiff}"
hello=tests/programs/build/gcc-static/hello
stderr_log="$(mktemp)"
trap 'rm -f "$stderr_log"' EXIT

now_ns() { date +%s%N; }

# Prints "median min max" (in ns) of the numbers on stdin.
summarize() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 0 0"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%d %d %d\n", m, v[1], v[NR] }'
}

ms() { awk -v ns="$1" 'BEGIN { printf "%.2f ms", ns / 1e6 }'; }

guest_times=()
entry_to_app=()
for ((i = 0; i < runs; i++)); do
    start=$(now_ns)
    if ! "$skiff" run --timing --timeout 60 "$hello" >/dev/null 2>"$stderr_log"; then
        echo "bench.sh: skiff run failed (run $((i + 1))):" >&2
        cat "$stderr_log" >&2
        exit 1
    fi
    guest_times+=($(($(now_ns) - start)))
    # Lenient parse: the first line mentioning entry_to_app / "entry to app", first
    # number on it, with an optional unit (ns, us/µs, ms, s; ns if none).
    line=$(grep -i -m1 -E 'entry[_ -]to[_ -](first[_ -])?app' "$stderr_log" || true)
    if [[ -n "$line" ]]; then
        value=$(printf '%s\n' "$line" | awk '{
            if (!match(tolower($0), /entry[_ -]to[_ -](first[_ -])?app/)) exit
            rest = substr($0, RSTART + RLENGTH)
            unit = ""
            if (match(rest, /^_(ns|us|ms)/)) unit = substr(rest, 2, 2)
            if (!match(rest, /[0-9]+(\.[0-9]+)?[ ]*(ns|us|µs|ms|s)?/)) exit
            t = substr(rest, RSTART, RLENGTH); n = t + 0
            if (unit == "") { unit = t; gsub(/[0-9. ]/, "", unit) }
            f = (unit == "s") ? 1e9 : (unit == "ms") ? 1e6 : (unit == "us" || unit == "µs") ? 1e3 : 1
            printf "%d\n", n * f }')
        [[ -n "$value" ]] && entry_to_app+=("$value")
    fi
done

native_times=()
for ((i = 0; i < runs; i++)); do
    start=$(now_ns)
    "$hello" >/dev/null
    native_times+=($(($(now_ns) - start)))
done

read -r g_med g_min g_max < <(printf '%s\n' "${guest_times[@]}" | summarize)
read -r n_med n_min n_max < <(printf '%s\n' "${native_times[@]}" | summarize)

echo "hello, $runs runs each"
echo "  skiff run (whole QEMU process): median $(ms "$g_med"), min $(ms "$g_min"), max $(ms "$g_max")"
echo "  native:                         median $(ms "$n_med"), min $(ms "$n_min"), max $(ms "$n_max")"
awk -v g="$g_med" -v n="$n_med" 'BEGIN { if (n > 0) printf "  ratio skiff/native (median):    %.1fx\n", g / n }'
if ((${#entry_to_app[@]} > 0)); then
    read -r e_med e_min e_max < <(printf '%s\n' "${entry_to_app[@]}" | summarize)
    echo "  guest kernel entry -> first app instruction: median $(ms "$e_med"), min $(ms "$e_min"), max $(ms "$e_max") (${#entry_to_app[@]} reports)"
else
    echo "  guest kernel entry -> first app instruction: not reported (no entry_to_app line in --timing output)"
fi
