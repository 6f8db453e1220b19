# shellcheck shell=bash
# Shared steps of the apps' build scripts that start from a Debian source package.
# Sourced (not run) by apps/<name>/build.sh after it sets `log_prefix`, e.g.
#
#   log_prefix="redis/build.sh"
#   source "$here/../lib/debian-source.sh"
#
# Provides:
#   log MSG / die MSG          messages on stderr, prefixed; die exits 1
#   as_root CMD...             runs CMD as root (directly, or with sudo)
#   need_tools CMD:PKG...      apt-get installs the PKG of every CMD missing from PATH
#   ensure_deb_src             adds a deb-src entry for this release when apt has none
#   fetch_debian_source PKG DIR
#                              `apt-get source PKG` into DIR once (a marker file records
#                              a complete unpack); prints the unpacked tree's path
#   assert_static ELF          dies unless ELF has no PT_INTERP and no DT_NEEDED

log() { echo "${log_prefix:-build}: $*" >&2; }
die() {
    echo "${log_prefix:-build}: error: $*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

need_tools() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed"
    fi
}

ensure_deb_src() {
    if grep -Eqs '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
        return 0
    fi
    local codename
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    [[ -n "$codename" ]] || die "cannot tell the Debian release from /etc/os-release"
    log "adding a deb-src entry for $codename (/etc/apt/sources.list.d/skiff-deb-src.sources)"
    as_root tee /etc/apt/sources.list.d/skiff-deb-src.sources >/dev/null <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename $codename-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: $codename-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    as_root apt-get update -q >&2 || die "apt-get update failed"
}

# The newest version apt knows is tried first. A mirror can list a version whose files it
# no longer serves (bookworm-security's nginx answered 404 on this project's machines),
# so on failure every other version apt lists is tried, newest first.
fetch_debian_source() {
    local package="$1" dest="$2" tree version
    mkdir -p "$dest"
    tree="$(find "$dest" -mindepth 1 -maxdepth 1 -type d -name "$package-*" | head -n1)"
    if [[ -n "$tree" && -e "$tree/.skiff-unpacked" ]]; then
        echo "$tree"
        return 0
    fi
    ensure_deb_src
    rm -rf "${dest:?}"/*
    log "fetching the Debian source package $package"
    if ! (cd "$dest" && apt-get source -q "$package" >"$dest/apt-get-source.log" 2>&1); then
        local fetched=""
        for version in $(apt-cache showsrc "$package" 2>/dev/null |
            awk -v p="$package" '$1 == "Package:" { ours = ($2 == p) } ours && $1 == "Version:" { print $2 }' |
            sort -u | sort -rV); do
            log "apt-get source $package failed; trying $package=$version"
            find "$dest" -mindepth 1 -maxdepth 1 ! -name apt-get-source.log -exec rm -rf {} +
            if (cd "$dest" && apt-get source -q "$package=$version" >>"$dest/apt-get-source.log" 2>&1); then
                fetched="$version"
                break
            fi
        done
        if [[ -z "$fetched" ]]; then
            tail -n 20 "$dest/apt-get-source.log" >&2
            die "apt-get source $package failed for every version apt lists (network access to deb.debian.org?)"
        fi
    fi
    tree="$(find "$dest" -mindepth 1 -maxdepth 1 -type d -name "$package-*" | head -n1)"
    [[ -n "$tree" ]] || die "apt-get source left no $package-* directory in $dest"
    touch "$tree/.skiff-unpacked"
    echo "$tree"
}

assert_static() {
    local elf="$1"
    readelf -hW "$elf" >/dev/null 2>&1 || die "$elf is not an ELF file"
    if readelf -lW "$elf" | grep -q INTERP || readelf -dW "$elf" 2>/dev/null | grep -q NEEDED; then
        die "$elf is not a static ELF (it has PT_INTERP or DT_NEEDED)"
    fi
}
