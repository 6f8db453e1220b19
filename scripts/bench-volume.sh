#!/usr/bin/env bash
# Volume throughput benchmark (not a test: it prints numbers and never fails on them).
#
# Runs tests/programs/c/fs_bench.c (sequential write+fsync, sequential read, random
# 4 KiB reads, random 4 KiB writes+fsync; every read is verified) three ways in one
# invocation, and prints each metric with the guest's ratio to the native baseline:
#   native   the same static binary on the host, in a directory under $TMPDIR
#   volume   in a Skiff guest, on a FAT volume (virtio-blk, QEMU cache=writeback)
#   tmpfs    in a Skiff guest, on the in-memory root's /tmp
# Usage: scripts/bench-volume.sh [SIZE_MB] [microvm|q35]   (defaults: 32, microvm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size_mb="${1:-32}"
machine="${2:-microvm}"
if ! [[ "$size_mb" =~ ^[0-9]+$ ]] || [[ "$machine" != microvm && "$machine" != q35 ]]; then
    echo "usage: scripts/bench-volume.sh [SIZE_MB] [microvm|q35]" >&2
    exit 2
fi

scripts/setup.sh >/dev/null
cargo build --release --quiet
tests/programs/build.sh >/dev/null
skiff=target/release/skiff
bench=tests/programs/build/musl-static/fs_bench

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/native"
volume="$work/bench.img"
"$skiff" volume create --size "$((size_mb * 3 + 16))M" "$volume" >/dev/null

"$bench" "$work/native" "$size_mb" >"$work/native.txt"
"$skiff" run --machine "$machine" --memory 1G --timeout 600 --volume "$volume:/data" \
    "$bench" -- /data "$size_mb" >"$work/volume.txt"
"$skiff" run --machine "$machine" --memory 1G --timeout 600 \
    "$bench" -- /tmp "$size_mb" >"$work/tmpfs.txt"

echo "fs_bench, ${size_mb} MiB file, guest on $machine ($(uname -m), $(nproc) CPUs)"
printf '%-20s %12s %12s %12s %10s %10s\n' metric native volume tmpfs vol/nat tmpfs/nat
for metric in seq_write_MBps seq_read_MBps rand_read_4k_ops rand_write_4k_ops; do
    n="$(awk -v m="$metric" '$1 == m { print $2 }' "$work/native.txt")"
    v="$(awk -v m="$metric" '$1 == m { print $2 }' "$work/volume.txt")"
    t="$(awk -v m="$metric" '$1 == m { print $2 }' "$work/tmpfs.txt")"
    awk -v m="$metric" -v n="$n" -v v="$v" -v t="$t" 'BEGIN {
        printf "%-20s %12.1f %12.1f %12.1f %9.3fx %9.3fx\n", m, n, v, t, v / n, t / n }'
done
for run in native volume tmpfs; do
    grep -q '^verify: ok' "$work/$run.txt" || { echo "fs_bench did not verify its reads ($run)" >&2; exit 1; }
done
fsck.fat -n "$volume" >/dev/null && echo "fsck.fat -n: clean"
