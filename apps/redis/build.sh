#!/usr/bin/env bash
# Builds redis from Debian's own source package as static musl binaries:
#
#   apps/redis/build/redis-server      the server the manifest runs
#   apps/redis/build/redis-cli         }  host-side tools; the test suite in the source
#   apps/redis/build/redis-benchmark   }  tree (runtest.sh) runs src/redis-cli too
#
# Steps (each skipped when its result already exists, so re-running is cheap):
#   1. install missing build tools with apt-get (musl-tools, dpkg-dev, make, gcc, binutils);
#   2. add a deb-src entry for this Debian release when apt has none, and apt-get update;
#   3. `apt-get source redis` into build/src/ (upstream redis with Debian's patches; the
#      bundled deps/ — Lua, hiredis, linenoise, hdr_histogram — are built from it too);
#   4. `make -C src` with musl-gcc and -static (settings below), then check every binary
#      has no PT_INTERP/DT_NEEDED, and copy them, stripped, to build/.
#
# Needs root (or sudo) for apt-get and network access to the Debian mirrors, only the
# first time. Prints the path of redis-server at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build"
programs=(redis-server redis-cli redis-benchmark)
# shellcheck disable=SC2034 # read by the helpers sourced below
log_prefix="redis/build.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/debian-source.sh
source "$here/../lib/debian-source.sh"

# Settings for `make`, and why:
#   CC=musl-gcc, LDFLAGS=-static   Skiff runs static executables only.
#   MALLOC=libc      musl's allocator instead of the bundled jemalloc: jemalloc wants its
#                    own configure run against musl, and at run time it reserves large
#                    virtual regions, purges pages with madvise and may start background
#                    threads; musl's malloc needs only brk/mmap/munmap. The price is some
#                    throughput, no active defragmentation (CONFIG SET activedefrag fails)
#                    and coarser fragmentation figures in INFO memory.
#   BUILD_TLS=no     TLS needs OpenSSL, and Debian has no static musl build of it.
#   USE_SYSTEMD=no   There is no systemd to notify in a unikernel; and left to its
#                    default, the Makefile asks pkg-config and would link the host's
#                    glibc libsystemd into a musl program.
#   OPTIMIZATION=-O2 Upstream's default (it is spelled out so the build log says it).
make_settings=(CC=musl-gcc LDFLAGS=-static MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no OPTIMIZATION=-O2)

all_built() {
    local program
    # runtest.sh runs the suite in the source tree: a build without it is not complete.
    compgen -G "$build/src/redis-*/src" >/dev/null || return 1
    for program in "${programs[@]}"; do
        [[ -x "$build/$program" ]] || return 1
    done
}

if all_built; then
    echo "$build/redis-server"
    exit 0
fi

# 1. Build tools.
need_tools musl-gcc:musl-tools dpkg-source:dpkg-dev make:make gcc:gcc readelf:binutils \
    strip:binutils xz:xz-utils

# 2 and 3. The source package.
tree="$(fetch_debian_source redis "$build/src")"
version="$( (cd "$tree" && dpkg-parsechangelog -S Version 2>/dev/null) || basename "$tree")"
log "source: Debian redis $version in $tree"

# 4. The static binaries.
log "compiling: make -C src ${make_settings[*]} ${programs[*]} (log: $build/make.log)"
# src/mkreleasehdr.sh stamps the binary with `git show-ref` of whatever repository
# surrounds the tree: that would be Skiff's own commit, so hide it (the stamp becomes
# upstream's 00000000, as in a tarball build).
GIT_DIR=/nonexistent GIT_CEILING_DIRECTORIES="$build" \
    make -C "$tree/src" -j"$(nproc)" "${make_settings[@]}" "${programs[@]}" >"$build/make.log" 2>&1 ||
    { tail -n 30 "$build/make.log" >&2; die "make failed (full log: $build/make.log)"; }
for program in "${programs[@]}"; do
    assert_static "$tree/src/$program"
    strip -o "$build/$program.tmp" "$tree/src/$program"
    mv -f "$build/$program.tmp" "$build/$program"
done
printf '%s\n' "$version" >"$build/VERSION"
"$build/redis-server" --version >&2 || die "the built redis-server does not run"
log "built Debian redis $version: redis-server $(stat -c %s "$build/redis-server") bytes, static"
echo "$build/redis-server"
