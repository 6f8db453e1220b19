#!/usr/bin/env bash
# Builds nginx from Debian's own source package as a static musl binary, and the test
# site's generated files:
#
#   apps/nginx/build/nginx                       the server the manifest runs
#   apps/nginx/site/{1k,64k,1m}.txt              1 KiB, 64 KiB and 1 MiB test files
#
# Steps (each skipped when its result already exists, so re-running is cheap):
#   1. install missing build tools with apt-get (musl-tools, dpkg-dev, make, gcc, binutils);
#   2. add a deb-src entry for this Debian release when apt has none, and apt-get update;
#   3. `apt-get source nginx` into build/src/ (upstream nginx with Debian's patches);
#   4. `./configure` with musl-gcc and -static and only the modules that need no library
#      (list below), `make`, check the result has no PT_INTERP/DT_NEEDED, strip it to
#      build/nginx and check it accepts nginx.conf (`nginx -t`).
#
# Needs root (or sudo) for apt-get and network access to the Debian mirrors, only the
# first time. Prints the path of the binary at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build"
bin="$build/nginx"
# shellcheck disable=SC2034 # read by the helpers sourced below
log_prefix="nginx/build.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/debian-source.sh
source "$here/../lib/debian-source.sh"

# The site's larger files are generated rather than committed. Their bytes are fixed
# (numbered lines of text cut to the exact size), so a client can check what it got.
generate_site_file() {
    local path="$1" size="$2"
    [[ -s "$path" && $(stat -c %s "$path") -eq $size ]] && return 0
    awk -v size="$size" 'BEGIN {
        for (n = 1; size > 0; n++) {
            line = sprintf("%07d skiff nginx payload abcdefghijklmnopqrstuvwxyz0123456789\n", n)
            if (length(line) > size) line = substr(line, 1, size)
            printf "%s", line
            size -= length(line)
        }
    }' >"$path.tmp" || die "cannot write $path"
    mv -f "$path.tmp" "$path"
}
generate_site_file "$here/site/1k.txt" 1024
generate_site_file "$here/site/64k.txt" 65536
generate_site_file "$here/site/1m.txt" 1048576

if [[ -x "$bin" ]]; then
    echo "$bin"
    exit 0
fi

# configure's options, and why:
#   --with-cc=musl-gcc, -static       Skiff runs static executables only.
#   --error-log-path=stderr           nginx opens its default error log before it reads
#                                     the configuration; stderr exists everywhere.
#   --pid-path, --lock-path, --http-*-temp-path under /tmp
#                                     the places nginx writes at start-up, in the guest's
#                                     writable /tmp, each directly under it (nginx makes
#                                     the last path component only).
#   --without-pcre, --without-http_rewrite_module (needs PCRE), --without-http_gzip_module
#   (needs zlib), no --with-*ssl* (needs OpenSSL), --without-http_auth_basic_module
#   (needs crypt(), which Debian's musl does not ship): no library beyond libc.
#   --with-...                        the modules Debian enables that need no library.
# Debian's musl also lacks <crypt.h>, which nginx's Linux configuration header includes
# unconditionally; with auth_basic gone nothing uses it, so an empty stand-in is enough
# (skiff-compat/crypt.h inside the tree, named relatively so the host path stays out of
# `nginx -V`).
configure_options=(
    --with-cc=musl-gcc
    --with-cc-opt="-O2 -I skiff-compat"
    --with-ld-opt=-static
    --prefix=/etc/nginx
    --conf-path=/etc/nginx/nginx.conf
    --sbin-path=/bin/nginx
    --error-log-path=stderr
    --http-log-path=/dev/stdout
    --pid-path=/tmp/nginx.pid
    --lock-path=/tmp/nginx.lock
    --http-client-body-temp-path=/tmp/nginx-client-body
    --http-proxy-temp-path=/tmp/nginx-proxy
    --http-fastcgi-temp-path=/tmp/nginx-fastcgi
    --http-uwsgi-temp-path=/tmp/nginx-uwsgi
    --http-scgi-temp-path=/tmp/nginx-scgi
    --without-pcre
    --without-http_rewrite_module
    --without-http_gzip_module
    --without-http_auth_basic_module
    --with-http_stub_status_module
    --with-http_realip_module
    --with-http_auth_request_module
    --with-http_dav_module
    --with-http_slice_module
    --with-http_v2_module
    --with-http_addition_module
    --with-http_gzip_static_module
    --with-http_sub_module
    --with-http_secure_link_module
    --with-http_random_index_module
    --with-http_flv_module
    --with-http_mp4_module
    --with-stream
    --with-stream_realip_module
)

# 1. Build tools.
need_tools musl-gcc:musl-tools dpkg-source:dpkg-dev make:make gcc:gcc readelf:binutils \
    strip:binutils xz:xz-utils

# 2 and 3. The source package.
tree="$(fetch_debian_source nginx "$build/src")"
version="$( (cd "$tree" && dpkg-parsechangelog -S Version 2>/dev/null) || basename "$tree")"
log "source: Debian nginx $version in $tree"

# 4. Configure, build, check.
mkdir -p "$tree/skiff-compat"
printf '/* Empty: see apps/nginx/build.sh. */\n' >"$tree/skiff-compat/crypt.h"
log "configuring (log: $build/configure.log)"
(cd "$tree" && ./configure "${configure_options[@]}") >"$build/configure.log" 2>&1 ||
    { tail -n 30 "$build/configure.log" >&2; die "configure failed (full log: $build/configure.log)"; }
log "compiling (log: $build/make.log)"
make -C "$tree" -j"$(nproc)" >"$build/make.log" 2>&1 ||
    { tail -n 30 "$build/make.log" >&2; die "make failed (full log: $build/make.log)"; }
assert_static "$tree/objs/nginx"
strip -o "$bin.tmp" "$tree/objs/nginx"
"$bin.tmp" -t -p "$here/" -c nginx.conf -g "pid $build/nginx-test.pid;" >&2 ||
    { rm -f "$bin.tmp"; die "the built nginx rejects apps/nginx/nginx.conf"; }
mv -f "$bin.tmp" "$bin"
printf '%s\n' "$version" >"$build/VERSION"
log "built Debian nginx $version ($(stat -c %s "$bin") bytes, static)"
echo "$bin"
