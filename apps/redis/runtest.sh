#!/usr/bin/env bash
# Runs the part of redis's own test suite that works against an external server (one
# that the suite cannot restart, reconfigure at start-up, replicate, fork or debug) on the
# server at HOST:PORT, and reports pass/fail:
#
#   apps/redis/runtest.sh HOST PORT
#
# The suite is the one in Debian's redis source tree that apps/redis/build.sh unpacked
# (same version as the server), run by its `./runtest --host HOST --port PORT`: one
# client, which FLUSHALLs and uses databases 9 and 10. Never point it at a server
# holding data you want to keep.
#
# What runs, and why (chosen by running every unit natively against the static build
# and against the same build in a Linux guest under QEMU TCG, which is as slow as Skiff):
#   * units below: the data types, keyspace, protocol, transactions, scripting and
#     functions, pub/sub, client tracking, introspection and redis-cli against the server.
#     Left out: units that are all `external:skip` (replication, AOF/RDB, cluster, ...),
#     units that are slow under emulation (geo, hyperloglog, zset, scan, sort, list-2,
#     list-3: fuzzers and big-data loops), and unit/type/list, which also has tests
#     that race under a slow server ("BRPOPLPUSH with multiple blocked clients" pushes
#     on one connection before the blocking commands of two others have arrived, and
#     then waits forever).
#   * tags denied: needs:repl (a second server), needs:debug (DEBUG is off in
#     redis.conf's default, as it should be in production), needs:local-process (reads
#     the server's pid and files), needs:save and needs:config-maxmemory (fine natively,
#     but they exercise persistence and eviction, not the server's networking, and take
#     long under emulation). Tests tagged external:skip are skipped by the suite itself.
#   * tests skipped by name: fuzzers and stress loops (tens of thousands of round
#     trips: minutes each under emulation) and the DBSIZE check that counts what one of
#     them stored; the EXAT/PXAT options of SET and GETEX, which compare the client's
#     Unix time with the server's to the millisecond (a VM's clock, set from the RTC at
#     boot, is up to a second off the host's); and "RESTORE fail with invalid payload
#     size", which fails natively too (Debian's security patches change the error it
#     expects); and "CONFIG SET rollback on apply error", which occupies a port on the
#     client's host and expects the server to fail to listen there, true only when both
#     share a host (a VM's server moves to that port and the run loses it).
#
# Environment: RUNTEST_TIMEOUT (seconds for the whole run, default 900).
# Exit status: 0 when every test passed, 1 when any failed or the run did not finish,
# 2 for bad usage or a missing build.
set -uo pipefail

if (($# != 2)); then
    echo "usage: apps/redis/runtest.sh HOST PORT" >&2
    exit 2
fi
host="$1"
port="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
timeout_s="${RUNTEST_TIMEOUT:-900}"

tree="$(find "$here/build/src" -mindepth 1 -maxdepth 1 -type d -name 'redis-*' 2>/dev/null | head -n1)"
if [[ -z "$tree" || ! -x "$tree/src/redis-cli" ]]; then
    echo "runtest.sh: no built redis tree under $here/build/src; run apps/redis/build.sh first" >&2
    exit 2
fi
if ! command -v tclsh8.6 >/dev/null 2>&1 && ! command -v tclsh8.5 >/dev/null 2>&1; then
    echo "runtest.sh: the test suite needs tclsh 8.5 or 8.6 (apt-get install tcl)" >&2
    exit 2
fi

units=(
    unit/protocol
    unit/keyspace
    unit/info-command
    unit/quit
    unit/type/incr
    unit/type/string
    unit/type/hash
    unit/type/set
    unit/type/zset
    unit/type/stream-cgroups
    unit/sort
    unit/other
    unit/expire
    unit/multi
    unit/pubsub
    unit/scripting
    unit/functions
    unit/introspection
    unit/bitops
    unit/bitfield
    unit/tracking
    unit/pause
    unit/lazyfree
    unit/slowlog
    integration/redis-cli
)
denied_tags="-needs:repl -needs:debug -needs:local-process -needs:save -needs:config-maxmemory"
skipped_tests=(
    '/[Ff]uzz'
    '/[Ss]tress'
    'Very big payload random access'
    'SET 10000 numeric keys and access all them in reverse order'
    'DBSIZE should be 10000 now'
    '/(EX|PX)AT option'
    'RESTORE fail with invalid payload size'
    'CONFIG SET rollback on apply error'
)

args=(--host "$host" --port "$port" --tags "$denied_tags" --timeout 600)
for unit in "${units[@]}"; do args+=(--single "$unit"); done
for test in "${skipped_tests[@]}"; do args+=(--skiptest "$test"); done

# The suite expects a fresh server for each unit; against an external one, some units
# change settings outside any test and never put them back (unit/type/set raises
# proto-max-bulk-len and client-query-buffer-limit to 10 GB, after which the next run's
# protocol tests make the server attempt a 2 GB allocation and abort in a small VM;
# others change encodings' thresholds). So every setting is recorded before the run and
# each one that changed is set back afterwards. A run that was killed cannot do that:
# restart the server before the next one.
cli=("$tree/src/redis-cli" -h "$host" -p "$port")
settings_before="$(mktemp)"
settings_after="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$log" "$settings_before" "$settings_after"' EXIT
if ! timeout 30 "${cli[@]}" --raw config get '*' >"$settings_before" || [[ ! -s "$settings_before" ]]; then
    echo "runtest.sh: cannot reach redis at $host:$port (CONFIG GET failed)" >&2
    echo "redis runtest: 0 passed, 1 failed"
    exit 1
fi
restore_settings() {
    timeout 30 "${cli[@]}" --raw config get '*' >"$settings_after" || return 1
    local name value changed=0
    while IFS= read -r name && IFS= read -r value; do
        if [[ "$(awk -v n="$name" 'NR % 2 == 1 && $0 == n { getline; print; exit }' "$settings_after")" != "$value" ]]; then
            timeout 30 "${cli[@]}" config set "$name" "$value" >/dev/null || return 1
            changed=$((changed + 1))
        fi
    done <"$settings_before"
    echo "runtest.sh: set $changed setting(s) the suite changed back"
}

echo "runtest.sh: redis $(basename "$tree") test suite against $host:$port (${#units[@]} units, timeout ${timeout_s}s)"
start=$(date +%s)
# The suite's colours are dropped so the counts below can match lines; its output still
# streams through.
(cd "$tree" && timeout --kill-after=10 "$timeout_s" ./runtest "${args[@]}") 2>&1 |
    sed -u 's/\x1b\[[0-9;]*m//g' | tee "$log"
status=${PIPESTATUS[0]}
elapsed=$(($(date +%s) - start))
restore_settings || echo "runtest.sh: could not set the server's settings back; restart it"

passed=$(grep -c '^\[ok\]' "$log")
failed=$(grep -c '^\[err\]\|^\[exception\]\|^\[timeout\]' "$log")
ignored=$(grep -c '^\[ignore\]\|^\[skip\]' "$log")
echo
if ((status == 124 || status == 137)); then
    echo "runtest.sh: FAILED: the run did not finish within ${timeout_s}s (RUNTEST_TIMEOUT)"
    failed=$((failed + 1))
elif ((status != 0 && failed == 0)); then
    echo "runtest.sh: FAILED: ./runtest exited with status $status"
    failed=1
fi
if ((failed > 0)); then
    grep -A2 '^\[err\]\|^\[exception\]\|^\[timeout\]' "$log" | sed 's/^/  /'
fi
echo "runtest.sh: ${elapsed}s, $ignored not applicable to an external server"
echo "redis runtest: $passed passed, $failed failed"
((failed == 0 && status == 0))
