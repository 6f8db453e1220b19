#!/usr/bin/env bash
# Everything CI checks, in order: tools, release build, test programs, formatting,
# lints, and the whole workspace's tests in release mode (host unit tests, native
# baselines, and the guest and differential tests, which boot Skiff under QEMU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh
step "cargo build --release"
cargo build --release
step "test programs"
tests/programs/build.sh
step "apps/sqlite (Debian's SQLite sources, static with musl)"
apps/sqlite/build.sh
step "apps/redis (Debian's redis sources, static with musl)"
apps/redis/build.sh
step "apps/nginx (Debian's nginx sources, static with musl)"
apps/nginx/build.sh
step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy"
cargo clippy --all-targets -- -D warnings
step "cargo test --release"
cargo test --release
step "all checks passed"
