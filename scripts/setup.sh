#!/usr/bin/env bash
# Installs what building and testing Skiff needs on Debian 12 (run as root, or with
# sudo available). Idempotent: when every tool is already present it changes nothing,
# and it runs `apt-get update` at most once, only when something must be installed.
#
#   qemu-system-x86_64   qemu-system-x86   the VMM the CLI boots the kernel in (TCG)
#   musl-gcc             musl-tools        static C test programs against musl
#   gcc, readelf         gcc, binutils     static C test programs against glibc
#   /bin/busybox         busybox-static    guest tests and the demo (must be static)
#   cpio                 cpio              inspecting initrds
#   go                   golang-go         the Go test program (tests/programs/go)
#   /usr/bin/time        time              CPU-time accounting in scripts/bench-idle.sh
#   fsck.fat             dosfstools        checking volumes the guest wrote (volume tests)
#   tclsh                tcl               redis's test suite (apps/redis/runtest.sh)
#   curl                 curl              fetching nginx's pages (scripts/bench-net.sh)
#   wrk                  wrk               HTTP load for scripts/bench-net.sh
#   ss                   iproute2          finding free ports in scripts/bench-net.sh
#   cargo                (rustup)          not installable with apt: reported if missing
set -euo pipefail

missing_packages=()

need_command() {
    local command="$1" package="$2"
    if ! command -v "$command" >/dev/null 2>&1; then
        missing_packages+=("$package")
    fi
}

need_command qemu-system-x86_64 qemu-system-x86
need_command musl-gcc musl-tools
need_command gcc gcc
need_command readelf binutils
need_command cpio cpio
need_command make make
need_command go golang-go
need_command fsck.fat dosfstools
need_command tclsh tcl
need_command curl curl
need_command wrk wrk
need_command ss iproute2
# bash's `time` keyword shadows the command name, so look for the binary itself.
if [[ ! -x /usr/bin/time ]]; then
    missing_packages+=(time)
fi

# Debian's plain `busybox` package is dynamically linked; the guest tests need the
# static build from busybox-static (which replaces it).
if [[ ! -x /bin/busybox ]] || readelf -lW /bin/busybox 2>/dev/null | grep -q INTERP ||
    ! readelf -h /bin/busybox >/dev/null 2>&1; then
    missing_packages+=(busybox-static)
fi

if ((${#missing_packages[@]} > 0)); then
    echo "setup.sh: installing: ${missing_packages[*]}"
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "setup.sh: error: need root (or sudo) to install ${missing_packages[*]}" >&2
        exit 1
    fi
    "${as_root[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends \
        "${missing_packages[@]}"
else
    echo "setup.sh: all system tools present"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: error: cargo not found; install Rust 1.95 or newer with rustup (https://rustup.rs)" >&2
    exit 1
fi
