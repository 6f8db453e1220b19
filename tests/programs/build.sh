#!/usr/bin/env bash
# Builds Skiff's test programs into tests/programs/build/.
#
#   build/<variant>/<program>        C programs from c/*.c, one directory per variant:
#     musl-static       musl-gcc -static
#     musl-static-pie   musl static-pie (see below)
#     gcc-static        gcc -static            (glibc)
#     gcc-static-pie    gcc -static-pie        (glibc)
#   build/rust/skiff-rust-probe      rust/ built with -C target-feature=+crt-static
#   build/rust/skiff-rust-threads    rust/src/bin/skiff-rust-threads.rs, built the same way
#   build/rust/skiff-rust-net        rust/src/bin/skiff-rust-net.rs, built the same way
#   build/go/skiff-go-probe          go/ built with CGO_ENABLED=0 (static), when `go` exists
#   build/go/skiff-go-net            go/netprobe/ (net/http over loopback), built the same way
#   build/variants                   the C variants actually built, one per line
#
# Idempotent: a program is rebuilt only when its source, a header in c/ or this script
# is newer than the binary. Fails loudly (non-zero exit, message on stderr) when a compiler
# is missing or a build fails. Go is optional here: without `go` (Debian's golang-go,
# which scripts/setup.sh installs) the Go programs are skipped with a note, and the tests
# that need it fail saying so. The Go build keeps its cache and GOPATH under build/, so
# nothing is written to $HOME, and never downloads anything (GOTOOLCHAIN=local,
# GOPROXY=off; the module has no dependencies).
#
# musl static-pie: Debian's musl-gcc specs file ignores -static-pie (it links Scrt1.o and
# asks for /lib/ld-musl-x86_64.so.1, i.e. a dynamic PIE). We first try the plain flag and
# check the result with readelf; if it still has a PT_INTERP we link by hand with musl's
# rcrt1.o (the self-relocating start file musl ships for exactly this) and check again.
# If that also fails the variant is skipped with a note and left out of build/variants.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/build"
script="$here/build.sh"
cflags=(-O2 -Wall -Wextra -fno-strict-aliasing -pthread)
musl_lib=/usr/lib/x86_64-linux-musl

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2 (scripts/setup.sh installs it)"
}

need gcc "the C compiler (Debian package gcc)"
need musl-gcc "musl's gcc wrapper (Debian package musl-tools)"
need readelf "binutils' readelf, used to verify static binaries (Debian package binutils)"
need cargo "the Rust toolchain (rustup)"

mkdir -p "$out"
# Keep build products out of git without touching the repository's top-level .gitignore.
printf '*\n!.gitignore\n' >"$out/.gitignore"

programs=()
for src in "$here"/c/*.c; do
    programs+=("$(basename "$src" .c)")
done

# Returns success when $1 is missing or older than any of the remaining arguments.
stale() {
    local target="$1"
    shift
    [[ -e "$target" ]] || return 0
    local dep
    for dep in "$@"; do
        [[ "$dep" -nt "$target" ]] && return 0
    done
    return 1
}

# Fails unless $1 is a static ELF: no PT_INTERP, no dynamic libraries needed.
assert_static() {
    local bin="$1"
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        return 1
    fi
    if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
        return 1
    fi
    return 0
}

build_c() {
    local variant="$1" program="$2"
    local src="$here/c/$program.c" bin="$out/$variant/$program"
    stale "$bin" "$src" "$here"/c/*.h "$script" || return 0
    mkdir -p "$out/$variant"
    local tmp="$bin.tmp"
    case "$variant" in
    musl-static) musl-gcc "${cflags[@]}" -static "$src" -o "$tmp" ;;
    gcc-static) gcc "${cflags[@]}" -static "$src" -o "$tmp" ;;
    gcc-static-pie) gcc "${cflags[@]}" -fPIE -static-pie "$src" -o "$tmp" ;;
    musl-static-pie) build_musl_static_pie "$src" "$tmp" ;;
    *) die "unknown variant $variant" ;;
    esac
    assert_static "$tmp" || die "$variant/$program is not static (readelf shows PT_INTERP or NEEDED)"
    mv -f "$tmp" "$bin"
    echo "built $variant/$program"
}

build_musl_static_pie() {
    local src="$1" dest="$2"
    if musl-gcc "${cflags[@]}" -fPIE -static-pie "$src" -o "$dest" 2>/dev/null && assert_static "$dest"; then
        return 0
    fi
    local obj="$dest.o"
    musl-gcc "${cflags[@]}" -fPIE -c "$src" -o "$obj"
    gcc -nostdlib -static-pie -o "$dest" \
        "$musl_lib/rcrt1.o" "$musl_lib/crti.o" "$(gcc -print-file-name=crtbeginS.o)" \
        "$obj" -L"$musl_lib" -lc "$(gcc -print-libgcc-file-name)" \
        "$(gcc -print-file-name=crtendS.o)" "$musl_lib/crtn.o"
    rm -f "$obj"
}

# Decide once whether musl static-pie works on this machine.
variants=(musl-static gcc-static gcc-static-pie)
probe_dir="$(mktemp -d)"
trap 'rm -rf "$probe_dir"' EXIT
printf 'int main(void){return 0;}\n' >"$probe_dir/probe.c"
if [[ -e "$musl_lib/rcrt1.o" ]] || musl-gcc -static-pie "$probe_dir/probe.c" -o "$probe_dir/p" 2>/dev/null; then
    if build_musl_static_pie "$probe_dir/probe.c" "$probe_dir/probe" 2>/dev/null &&
        assert_static "$probe_dir/probe" && "$probe_dir/probe"; then
        variants=(musl-static musl-static-pie gcc-static gcc-static-pie)
    else
        echo "build.sh: note: musl static-pie does not link or run here; skipping that variant" >&2
    fi
else
    echo "build.sh: note: musl has no rcrt1.o here; skipping the musl-static-pie variant" >&2
fi

for variant in "${variants[@]}"; do
    for program in "${programs[@]}"; do
        build_c "$variant" "$program"
    done
done
printf '%s\n' "${variants[@]}" >"$out/variants.tmp"
mv -f "$out/variants.tmp" "$out/variants"

# Rust: static-pie through the host target with crt-static. Its own target dir keeps it
# apart from the workspace build; cargo itself decides whether anything is stale.
rust_target="$out/rust-target"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
    --manifest-path "$here/rust/Cargo.toml" --target-dir "$rust_target" \
    --target x86_64-unknown-linux-gnu
mkdir -p "$out/rust"
for rust_program in skiff-rust-probe skiff-rust-threads skiff-rust-net; do
    rust_bin="$rust_target/x86_64-unknown-linux-gnu/release/$rust_program"
    assert_static "$rust_bin" || die "rust/$rust_program is not static (is crt-static honoured?)"
    if stale "$out/rust/$rust_program" "$rust_bin"; then
        cp -f "$rust_bin" "$out/rust/$rust_program"
        echo "built rust/$rust_program"
    fi
done

# Go: static binaries by construction with CGO_ENABLED=0; checked all the same.
# build_go PACKAGE BINARY SOURCES...: builds the package (relative to go/) into build/go/.
build_go() {
    local package="$1" name="$2"
    shift 2
    local go_bin="$out/go/$name"
    stale "$go_bin" "$@" "$here/go/go.mod" "$script" || return 0
    mkdir -p "$out/go"
    (
        cd "$here/go"
        env GOCACHE="$out/go-cache" GOPATH="$out/go-path" GOENV=off GOFLAGS= \
            GOTOOLCHAIN=local GOPROXY=off GO111MODULE=on CGO_ENABLED=0 \
            GOOS=linux GOARCH=amd64 \
            go build -trimpath -ldflags=-buildid= -o "$go_bin.tmp" "$package"
    ) || die "building go/$name failed"
    assert_static "$go_bin.tmp" || die "go/$name is not static"
    mv -f "$go_bin.tmp" "$go_bin"
    echo "built go/$name"
}
if command -v go >/dev/null 2>&1; then
    build_go . skiff-go-probe "$here"/go/*.go
    build_go ./netprobe skiff-go-net "$here"/go/netprobe/*.go
else
    rm -f "$out/go/skiff-go-probe" "$out/go/skiff-go-net"
    echo "build.sh: note: 'go' not found (Debian package golang-go; scripts/setup.sh installs it); skipping the Go programs" >&2
fi
echo "test programs are up to date in $out"
