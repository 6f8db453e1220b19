#!/usr/bin/env bash
# A short tour: builds Skiff, then boots Debian's unmodified static busybox in it a few
# times. Each `skiff run` is one boot of a fresh unikernel holding one program.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh >/dev/null
cargo build --release --quiet
skiff="${SKIFF_BIN:-target/release/skiff}"

show() {
    printf '\n$ skiff run %s\n' "$*"
    "$skiff" run --timeout 60 "$@"
}

# Busybox's sh runs other applets by fork+exec, so each applet gets its own boot; the
# shell itself is shown with builtins only.
show /bin/busybox -- echo "Hello from Skiff"
show /bin/busybox -- uname -a
show /bin/busybox -- ls /
show -e WHO=Skiff /bin/busybox -- sh -c 'for i in 1 2 3; do echo "$WHO says $i"; done'
printf 'banana\napple\ncherry\n' >/tmp/skiff-demo-fruit.txt
show --file /tmp/skiff-demo-fruit.txt:/data/fruit.txt /bin/busybox -- sort /data/fruit.txt
rm -f /tmp/skiff-demo-fruit.txt
