#!/usr/bin/env bash
# Network benchmark (not a test: it prints numbers and never fails on them).
#
# Runs the same static redis-server and nginx (apps/redis, apps/nginx) in three places in
# one invocation and prints requests/s and latency with ratios:
#   native   the binaries on this host, listening on 127.0.0.1;
#   skiff    the app images (`skiff build apps/<app>`) under `skiff run -p`, which
#            prints `skiff: ready: 127.0.0.1:PORT -> guest port N/tcp` once the guest
#            listens;
#   linux    Debian's cloud kernel (linux-image-cloud-amd64) with a busybox initramfs
#            holding the same binaries and configuration files, under the same QEMU
#            settings as skiff (TCG, microvm, 1 CPU, same memory, user networking with a
#            host port forward), its /init configuring eth0 as 10.0.2.15/24.
# The load generators run on the host: redis-benchmark (built with redis by
# apps/redis/build.sh) and wrk. Every connection goes to 127.0.0.1. A place that fails
# (the build, the boot, a check of the served bytes) is reported and the others go on.
#
# Downloads and builds are cached in .skiff-cache/bench-net/ (git-ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

usage() {
    cat <<'EOF'
usage: scripts/bench-net.sh [OPTIONS]

  -n, --requests N      redis-benchmark requests per test (default 20000)
  -c, --connections N   concurrent connections, redis-benchmark and wrk (default 10: with
                        50, redis-benchmark runs through QEMU's user networking often
                        stall with a few replies missing)
  -d, --duration S      wrk seconds per file (default 10)
  -t, --threads N       wrk threads (default 2)
      --redis-tests L   redis-benchmark tests, comma-separated (default set,get)
      --files L         site files for wrk, comma-separated (default 1k.txt,64k.txt,1m.txt)
      --targets L       any of native,skiff,linux (default all three)
      --apps L          any of redis,nginx (default both)
  -m, --memory SIZE     guest memory, skiff and linux alike (default 256M)
      --boot-timeout S  seconds to wait for a guest's server to listen (default 180)
      --bench-timeout S seconds one redis-benchmark run may take (default 300)
      --no-build        use the existing target/release/skiff and kernel
Environment: SKIFF_BIN=PATH uses that skiff CLI instead of building target/release/skiff.
  -h, --help
EOF
}

requests=20000
connections=10
duration=10
threads=2
redis_tests="set,get"
files="1k.txt,64k.txt,1m.txt"
targets="native,skiff,linux"
apps="redis,nginx"
memory="256M"
boot_timeout=180
bench_timeout=300
build_skiff=1
while (($#)); do
    case "$1" in
    -n | --requests) requests="$2"; shift 2 ;;
    -c | --connections) connections="$2"; shift 2 ;;
    -d | --duration) duration="$2"; shift 2 ;;
    -t | --threads) threads="$2"; shift 2 ;;
    --redis-tests) redis_tests="$2"; shift 2 ;;
    --files) files="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --apps) apps="$2"; shift 2 ;;
    -m | --memory) memory="$2"; shift 2 ;;
    --boot-timeout) boot_timeout="$2"; shift 2 ;;
    --bench-timeout) bench_timeout="$2"; shift 2 ;;
    --no-build) build_skiff=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for number in "$requests" "$connections" "$duration" "$threads" "$boot_timeout" "$bench_timeout"; do
    [[ "$number" =~ ^[1-9][0-9]*$ ]] || { echo "bench-net: '$number' is not a positive number" >&2; exit 2; }
done
[[ "$memory" =~ ^[1-9][0-9]*[MG]$ ]] || { echo "bench-net: --memory takes e.g. 256M or 1G" >&2; exit 2; }
has() { [[ ",$1," == *",$2,"* ]]; }
for t in ${targets//,/ }; do has native,skiff,linux "$t" || { echo "bench-net: unknown target '$t'" >&2; exit 2; }; done
for a in ${apps//,/ }; do has redis,nginx "$a" || { echo "bench-net: unknown app '$a'" >&2; exit 2; }; done

say() { echo "bench-net: $*" >&2; }

cache="$root/.skiff-cache/bench-net"
work="$(mktemp -d)"
mkdir -p "$cache"
# Process groups of the servers and VMs started (each runs under setsid), killed on exit
# however the script ends.
groups=()
cleanup() {
    local pgid
    if [[ -n "$waited_child" ]]; then
        kill -TERM "$waited_child" 2>/dev/null || true
    fi
    for pgid in "${groups[@]}"; do
        kill -TERM -- "-$pgid" 2>/dev/null || true
    done
    sleep 0.5
    for pgid in "${groups[@]}"; do
        kill -KILL -- "-$pgid" 2>/dev/null || true
    done
    rm -rf "$work"
}
# Long commands run in the background and are waited for: bash runs a trap only after a
# foreground command ends, and a stalled load generator must not delay the cleanup.
waited_child=""
run_waiting() {
    "$@" &
    waited_child=$!
    local status=0
    wait "$waited_child" || status=$?
    waited_child=""
    return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Starts "$@" in its own session (so its whole process tree can be killed), output to
# files named by $1 of the caller; prints nothing, sets `started_pid`.
start_group() {
    local log="$1"
    shift
    setsid "$@" </dev/null >"$log.out" 2>"$log.err" &
    started_pid=$!
    groups+=("$started_pid")
}
stop_group() {
    local pgid="$1" waited=0
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    while kill -0 "$pgid" 2>/dev/null && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
    # Forget it, so that the exit handler never signals a reused process group id.
    local kept=() g
    for g in "${groups[@]}"; do [[ "$g" == "$pgid" ]] || kept+=("$g"); done
    groups=("${kept[@]}")
}

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 30000))
        if [[ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------------------
# Tools and binaries.

scripts/setup.sh >/dev/null
for tool in wrk ss curl qemu-system-x86_64 cpio gzip readelf; do
    command -v "$tool" >/dev/null 2>&1 || { say "error: $tool not found (scripts/setup.sh installs it)"; exit 1; }
done
redis_server="$(apps/redis/build.sh)"
redis_dir="$(dirname "$redis_server")"
redis_cli="$redis_dir/redis-cli"
redis_benchmark="$redis_dir/redis-benchmark"
nginx="$(apps/nginx/build.sh)"
site="$root/apps/nginx/site"

# Why a place could not be measured, by "app target".
declare -A failed=()
fail() { # app target reason...
    local app="$1" target="$2"
    shift 2
    failed["$app $target"]="$*"
    say "$app on $target: FAILED: $*"
}

skiff=""
if has "$targets" skiff && [[ -n "${SKIFF_BIN:-}" ]]; then
    # A CLI built elsewhere (as the guest tests accept); it finds its kernel as usual.
    if [[ -x "$SKIFF_BIN" ]]; then
        skiff="$SKIFF_BIN"
    else
        for a in ${apps//,/ }; do fail "$a" skiff "SKIFF_BIN=$SKIFF_BIN is not executable"; done
    fi
elif has "$targets" skiff; then
    if ((build_skiff)); then
        say "building skiff (cargo build --release)"
        if ! cargo build --release --quiet >"$work/cargo.log" 2>&1; then
            tail -n 20 "$work/cargo.log" >&2
            for a in ${apps//,/ }; do fail "$a" skiff "cargo build --release failed"; done
        fi
    fi
    if [[ -x target/release/skiff ]] && [[ -z "${failed[redis skiff]:-}${failed[nginx skiff]:-}" ]]; then
        skiff="$root/target/release/skiff"
    fi
fi

# ---------------------------------------------------------------------------------------
# The Linux guest: kernel from Debian's linux-image-cloud-amd64, initramfs from
# busybox-static plus the apps, rebuilt each run (it takes a second).

linux_kernel=""
linux_initrd=""
prepare_linux() {
    local meta package deb dir modules
    meta=linux-image-cloud-amd64
    package="$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
    [[ -n "$package" ]] || { say "apt-cache knows no kernel behind $meta (apt-get update?)"; return 1; }
    dir="$cache/$package"
    if [[ ! -e "$dir/.unpacked" ]]; then
        say "downloading $package (apt-get download) into $cache"
        rm -rf "$dir"
        mkdir -p "$dir"
        (cd "$cache" && rm -f "$package"_*.deb && apt-get download -q "$package" >&2) ||
            { say "apt-get download $package failed"; return 1; }
        deb="$(ls "$cache/$package"_*.deb)"
        dpkg -x "$deb" "$dir" || { say "dpkg -x $deb failed"; return 1; }
        touch "$dir/.unpacked"
    fi
    linux_kernel="$(ls "$dir"/boot/vmlinuz-*)"
    modules="$(ls -d "$dir"/lib/modules/*/kernel)"

    local stage="$work/linux-initrd"
    mkdir -p "$stage"/{bin,dev,proc,sys,tmp,root,etc/redis,srv/nginx,lib/modules}
    cp /bin/busybox "$stage/bin/busybox"
    readelf -lW "$stage/bin/busybox" | grep -q INTERP && { say "/bin/busybox is not static (install busybox-static)"; return 1; }
    cp "$redis_server" "$nginx" "$stage/bin/"
    cp apps/redis/redis.conf "$stage/etc/redis/redis.conf"
    cp apps/nginx/nginx.conf "$stage/srv/nginx/nginx.conf"
    cp -r "$site" "$stage/srv/nginx/site"
    # The same /etc files skiff gives its guests.
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
    printf 'root:x:0:\n' >"$stage/etc/group"
    printf '127.0.0.1 localhost\n' >"$stage/etc/hosts"
    # virtio-net is a module in the cloud kernel; these are its dependencies in load order
    # (from each module's `depends=`), for virtio-mmio (microvm) and virtio-pci (q35).
    local module
    for module in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio \
        drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev \
        drivers/virtio/virtio_pci net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
        cp "$modules/$module.ko" "$stage/lib/modules/" || { say "the kernel package has no $module.ko"; return 1; }
    done
    cat >"$stage/init" <<'INIT'
#!/bin/busybox sh
# PID 1 of the benchmark's Linux guest: network up, then the app named by bench.app=
# on the kernel command line; "bench-guest: ready APP" once it listens.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_mmio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
    failover net_failover virtio_net; do
    insmod /lib/modules/$m.ko
done
fail() { echo "bench-guest: error: $*"; poweroff -f; }
ip link set lo up
ip link set eth0 up || fail "no eth0"
ip addr add 10.0.2.15/24 dev eth0 || fail "cannot set eth0's address"
ip route add default via 10.0.2.2
app=$(sed -n 's/.*bench\.app=\([a-z]*\).*/\1/p' /proc/cmdline)
cd /tmp
case "$app" in
redis) redis-server /etc/redis/redis.conf & port=6379 ;;
nginx) cd /srv/nginx && nginx -p /srv/nginx/ -c nginx.conf & port=8080 ;;
*) fail "unknown app '$app'" ;;
esac
hexport=$(printf '%04X' $port)
while ! grep -q ":$hexport 00000000:0000 0A" /proc/net/tcp; do
    kill -0 $! 2>/dev/null || fail "$app exited"
    sleep 0.1
done
echo "bench-guest: ready $app"
wait
fail "$app exited"
INIT
    chmod 0755 "$stage/init"
    linux_initrd="$work/linux-initrd.cpio.gz"
    (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 >"$linux_initrd") ||
        { say "packing the initramfs failed"; return 1; }
}

# Under TCG the guest's TSC is the host's, and Linux cannot calibrate it on microvm (no
# PIT reference: booting takes a minute and the clock is wrong), so it is told the rate.
# With `tsc=reliable` it keeps the TSC as its clock; otherwise its watchdog, fooled by
# emulation, falls back to jiffies and the guest's clock drifts seconds per minute.
tsc_khz="$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)"
[[ "$tsc_khz" =~ ^[1-9][0-9]*$ ]] || tsc_khz=2600000

if has "$targets" linux && ! prepare_linux; then
    for a in ${apps//,/ }; do fail "$a" linux "could not prepare the Linux guest (see above)"; done
fi

# ---------------------------------------------------------------------------------------
# Starting each app in each place. `start_app APP TARGET` sets `app_port` (the host port
# it answers on) and `server_pid`, or returns non-zero after recording why.

guest_port() { if [[ "$1" == redis ]]; then echo 6379; else echo 8080; fi; }

# Waits until the file $1 has a line matching the fixed string $2, for at most $3 s,
# giving up early if process $4 is gone.
wait_for_line() {
    local file="$1" line="$2" seconds="$3" pid="$4" waited=0
    while ((waited < seconds * 10)); do
        grep -qF -- "$line" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { grep -qF -- "$line" "$file" 2>/dev/null; return; }
        sleep 0.1
        waited=$((waited + 1))
    done
    return 1
}

# Probes the server until it answers (native servers print no ready line).
wait_until_answers() {
    local app="$1" port="$2" seconds="$3" waited=0
    while ((waited < seconds * 10)); do
        if [[ "$app" == redis ]]; then
            [[ "$(timeout 5 "$redis_cli" -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
        else
            timeout 5 curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    return 1
}

server_pid=""
app_port=""
start_app() {
    local app="$1" target="$2" port log="$work/$1-$2"
    port="$(free_port)" || { fail "$app" "$target" "no free port"; return 1; }
    app_port="$port"
    case "$target" in
    native)
        if [[ "$app" == redis ]]; then
            start_group "$log" "$redis_server" apps/redis/redis.conf --port "$port" --bind 127.0.0.1 --dir "$work"
        else
            local prefix="$work/nginx-native"
            mkdir -p "$prefix"
            sed "s/^\([[:space:]]*\)listen 8080;/\1listen 127.0.0.1:$port;/" apps/nginx/nginx.conf >"$prefix/nginx.conf"
            grep -q "listen 127.0.0.1:$port;" "$prefix/nginx.conf" ||
                { fail "$app" "$target" "apps/nginx/nginx.conf has no 'listen 8080;' line to move"; return 1; }
            ln -sfn "$site" "$prefix/site"
            start_group "$log" "$nginx" -p "$prefix/" -c nginx.conf -g "pid $prefix/nginx.pid;"
        fi
        server_pid="$started_pid"
        wait_until_answers "$app" "$port" 20 ||
            { fail "$app" "$target" "did not answer within 20 s: $(tail -n 3 "$log.err" "$log.out" | tr '\n' ' ')"; return 1; }
        ;;
    skiff)
        [[ -n "$skiff" ]] || { [[ -n "${failed[$app $target]:-}" ]] || fail "$app" "$target" "no skiff binary"; return 1; }
        local image="$work/$app.skiff"
        if ! "$skiff" build "apps/$app" -o "$image" >"$log.build" 2>&1; then
            fail "$app" "$target" "skiff build apps/$app: $(tail -n 3 "$log.build" | tr '\n' ' ')"
            return 1
        fi
        start_group "$log" "$skiff" run --timeout 3600 -m "$memory" \
            -p "127.0.0.1:$port:$(guest_port "$app")" "$image"
        server_pid="$started_pid"
        if ! wait_for_line "$log.err" "skiff: ready: 127.0.0.1:$port -> guest port $(guest_port "$app")/tcp" \
            "$boot_timeout" "$server_pid"; then
            if kill -0 "$server_pid" 2>/dev/null; then
                fail "$app" "$target" "no ready line within $boot_timeout s: $(tail -n 3 "$log.err" | tr '\n' ' ')"
            else
                local status=0
                wait "$server_pid" || status=$?
                fail "$app" "$target" "skiff run exited with status $status before listening:" \
                    "$(tail -q -n 2 "$log.err" "$log.out" | tr '\n' ' ')"
            fi
            return 1
        fi
        ;;
    linux)
        [[ -n "$linux_kernel" ]] || return 1
        start_group "$log" qemu-system-x86_64 \
            -M microvm,x-option-roms=on,pit=on,pic=on,rtc=on -cpu max -accel tcg -smp 1 -m "$memory" \
            -nodefaults -no-user-config -display none -serial stdio -no-reboot \
            -kernel "$linux_kernel" -initrd "$linux_initrd" \
            -append "console=ttyS0 tsc_early_khz=$tsc_khz tsc=reliable quiet panic=-1 bench.app=$app" \
            -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:$(guest_port "$app")" \
            -device virtio-net-device,netdev=n0
        server_pid="$started_pid"
        if ! wait_for_line "$log.out" "bench-guest: ready $app" "$boot_timeout" "$server_pid"; then
            fail "$app" "$target" "no ready line within $boot_timeout s: $(grep -a 'bench-guest\|Kernel panic' "$log.out" | tail -n 3 | tr '\n' ' ')"
            return 1
        fi
        ;;
    esac
}

# ---------------------------------------------------------------------------------------
# The measurements. Each result is a line in $work/results:
#   APP TARGET TEST REQUESTS_PER_S AVG_LATENCY_MS P99_LATENCY_MS ERRORS

results="$work/results"
notes="$work/notes"
: >"$results"
: >"$notes"

redis_errors() { # the server's error replies and refused connections so far
    timeout 10 "$redis_cli" -p "$1" info stats 2>/dev/null | tr -d '\r' |
        awk -F: '$1 == "total_error_replies" || $1 == "rejected_connections" { n += $2 } END { print n + 0 }'
}

bench_redis() {
    local target="$1" port="$2" before after csv="$work/redis-$1.csv"
    # The server must store and return data before its speed means anything.
    if ! timeout 10 "$redis_cli" -p "$port" set bench-net:check "skiff $target" >/dev/null ||
        [[ "$(timeout 10 "$redis_cli" -p "$port" get bench-net:check)" != "skiff $target" ]]; then
        fail redis "$target" "SET/GET round trip failed"
        return 1
    fi
    before="$(redis_errors "$port")"
    local test attempt
    for test in ${redis_tests//,/ }; do
        say "redis on $target: redis-benchmark -n $requests -c $connections -t $test"
        # Through QEMU's user networking (its host forward listens with a backlog of 1), a
        # run that opens 50 connections at once now and then sees one reset, or a few
        # replies never arrive and the run stalls (seen with the Linux guest: the server
        # logs nothing, counts no rejected connection and has nothing left to answer).
        # Such a run is repeated, at most twice, and the table's notes say so.
        for attempt in 1 2 3; do
            local status=0
            run_waiting timeout "$bench_timeout" "$redis_benchmark" -p "$port" -n "$requests" \
                -c "$connections" -t "$test" --csv >"$csv" 2>"$csv.err" || status=$?
            ((status == 0)) && break
            if ((status == 124)); then
                echo "redis $target: redis-benchmark -t $test stalled for $bench_timeout s (replies lost); run repeated" >>"$notes"
            elif grep -q 'Connection reset by peer' "$csv.err"; then
                echo "redis $target: redis-benchmark -t $test: a connection was reset; run repeated" >>"$notes"
            else
                attempt=3
            fi
            if ((attempt == 3)); then
                fail redis "$target" "redis-benchmark -t $test failed or took over $bench_timeout s: $(tail -n 2 "$csv.err" | tr '\n' ' ')"
                return 1
            fi
            sleep 5
        done
        # redis-benchmark's CSV: "test","rps","avg_latency_ms","min","p50","p95","p99","max".
        tr -d '"\r' <"$csv" | awk -F, -v t="$target" \
            'NR > 1 && NF >= 7 { printf "redis %s %s %s %s %s\n", t, $1, $2, $3, $7 }' >>"$csv.all"
    done
    after="$(redis_errors "$port")"
    # The server's error count covers every test of the run.
    awk -v e="$((after - before))" '{ print $0, e }' "$csv.all" >>"$results"
}

bench_nginx() {
    local target="$1" port="$2" file out
    for file in ${files//,/ }; do
        [[ -f "$site/$file" ]] || { fail nginx "$target" "no such site file: $file"; return 1; }
        if ! timeout 60 curl -fsS -o "$work/got" "http://127.0.0.1:$port/$file" ||
            ! cmp -s "$work/got" "$site/$file"; then
            fail nginx "$target" "GET /$file did not return the file's bytes"
            return 1
        fi
    done
    for file in ${files//,/ }; do
        out="$work/wrk-$target-$file.txt"
        say "nginx on $target: wrk -t$threads -c$connections -d${duration}s /$file"
        if ! run_waiting timeout $((duration + 60)) wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
            "http://127.0.0.1:$port/$file" >"$out" 2>&1; then
            fail nginx "$target" "wrk failed on /$file: $(tail -n 2 "$out" | tr '\n' ' ')"
            return 1
        fi
        awk -v t="$target" -v f="$file" '
            function ms(v) {
                if (v ~ /us$/) return v / 1000
                if (v ~ /ms$/) return v + 0
                if (v ~ /m$/) return v * 60000
                if (v ~ /s$/) return v * 1000
                return v + 0
            }
            $1 == "Latency" && NF >= 4 { avg = ms($2) }
            $1 == "99%" { p99 = ms($2) }
            $1 == "Requests/sec:" { rps = $2 }
            /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
            /Non-2xx or 3xx responses:/ { errors += $5 }
            END { printf "nginx %s %s %s %.3f %.3f %d\n", t, f, rps, avg, p99, errors }
        ' "$out" >>"$results"
    done
}

for app in ${apps//,/ }; do
    for target in native skiff linux; do
        has "$targets" "$target" || continue
        [[ -z "${failed[$app $target]:-}" ]] || continue
        say "$app on $target: starting"
        server_pid=""
        if start_app "$app" "$target"; then
            "bench_$app" "$target" "$app_port" || true
        fi
        if [[ -n "$server_pid" ]]; then
            stop_group "$server_pid"
        fi
    done
done

# ---------------------------------------------------------------------------------------
# The table.

echo
echo "bench-net: redis-benchmark -n $requests -c $connections; wrk -t$threads -c$connections -d${duration}s;" \
    "guests: TCG, microvm, 1 CPU, $memory; host: $(nproc) CPUs"
failures="$work/failures"
: >"$failures"
for key in "${!failed[@]}"; do
    printf '%s %s\n' "$key" "${failed[$key]}" >>"$failures"
done
awk -v targets="$targets" '
    # By name, not by counting files: awk never starts an empty file, and the failures
    # file is empty whenever everything was measured.
    FILENAME == ARGV[1] { down[$1 " " $2] = 1; next }
    {
        key = $1 " " $3
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
        rps[key, $2] = $4; avg[key, $2] = $5; err[key, $2] = $7
    }
    function cell(key, t) {
        if ((key, t) in rps) return sprintf("%10.0f %8.2f %5d", rps[key, t], avg[key, t], err[key, t])
        if (index("," targets ",", "," t ",") == 0) return sprintf("%10s %8s %5s", "-", "-", "-")
        split(key, k, " ")
        return sprintf("%10s %8s %5s", (k[1] " " t) in down ? "failed" : "-", "-", "-")
    }
    function ratio(key, a, b) {
        if (((key, a) in rps) && ((key, b) in rps) && rps[key, b] > 0)
            return sprintf("%8.3fx", rps[key, a] / rps[key, b])
        return sprintf("%9s", "-")
    }
    END {
        printf "%-6s %-8s %-25s %-25s %-25s %9s %9s %9s\n", "", "", "native", "skiff", "linux guest",
            "skiff/", "linux/", "skiff/"
        printf "%-6s %-8s", "app", "test"
        for (i = 0; i < 3; i++) printf " %10s %8s %5s", "req/s", "avg ms", "err"
        printf " %9s %9s %9s\n", "native", "native", "linux"
        for (i = 1; i <= n; i++) {
            key = order[i]; split(key, k, " ")
            printf "%-6s %-8s %s %s %s %s %s %s\n", k[1], k[2], cell(key, "native"), cell(key, "skiff"),
                cell(key, "linux"), ratio(key, "skiff", "native"), ratio(key, "linux", "native"),
                ratio(key, "skiff", "linux")
        }
    }
' "$failures" "$results"
echo "(req/s: requests per second; avg ms: mean latency; err: redis error replies and refused"
echo " connections, or wrk socket errors and non-2xx answers; ratios compare req/s)"
if [[ -s "$notes" ]]; then
    echo
    echo "Notes:"
    sed 's/^/  /' "$notes"
fi
if [[ -s "$failures" ]]; then
    echo
    echo "Not measured:"
    sort "$failures" | sed 's/^/  /'
fi
