#!/bin/sh
# File work on a persistent volume with Debian's busybox-static, for Skiff.
#
#   busybox sh /app/run.sh [full|nofork]
#
# Works in $DATA (default /data, the volume the manifest mounts there):
#   1. visits.log gains one line per run ("visit N"), so a second boot with the same
#      volume prints a higher count: the volume persisted.
#   2. Shell built-ins only (echo, printf, read, test, arithmetic, globs, redirection):
#      writes, appends, copies and counts a file and lists the volume.
#   3. "full" mode only (the default): busybox applets, each of which the shell runs in a
#      child process (fork + exec of busybox itself): mkdir -p, seq, dd, cp, mv, append,
#      sort, wc, md5sum, find, ls, rm, sync. "nofork" stops after step 2.
#
# Everything printed is deterministic apart from the visit count. Any failing command
# stops the script with a non-zero status (set -e).
set -e

DATA=${DATA:-/data}
MODE=${1:-full}
case "$MODE" in
full | nofork) ;;
*)
    echo "usage: run.sh [full|nofork]" >&2
    exit 2
    ;;
esac
cd "$DATA"

# 1. Visits: count the lines already there, then append one.
visits=0
if [ -f visits.log ]; then
    while IFS= read -r line; do
        visits=$((visits + 1))
    done <visits.log
fi
visits=$((visits + 1))
echo "visit $visits" >>visits.log
echo "visits: $visits"

# 2. Built-ins only.
i=1
while [ $i -le 200 ]; do
    printf 'line %03d %s\n' $i "$((i * i % 97))"
    i=$((i + 1))
done >builtin.txt
echo "appended by the shell" >>builtin.txt
# A copy through read/printf, then check it line by line against the original.
while IFS= read -r line; do
    printf '%s\n' "$line"
done <builtin.txt >builtin.copy
lines=0
sum=0
while IFS=' ' read -r word index value; do
    lines=$((lines + 1))
    case "$value" in
    [0-9]*) sum=$((sum + value)) ;;
    esac
done <builtin.copy
echo "builtin.copy: $lines lines, sum $sum"
exec 3<builtin.txt 4<builtin.copy
same=yes
while IFS= read -r a <&3; do
    IFS= read -r b <&4 || { same=no; break; }
    [ "$a" = "$b" ] || { same=no; break; }
done
if IFS= read -r b <&4; then same=no; fi
exec 3<&- 4<&-
echo "copy identical: $same"
echo "volume (glob):"
for f in *; do
    if [ -d "$f" ]; then
        echo "  $f/"
    else
        echo "  $f"
    fi
done

if [ "$MODE" = nofork ]; then
    echo "done (nofork)"
    exit 0
fi

# 3. Applets: a fresh tree each run (visits.log and builtin.* stay).
rm -rf tree
mkdir -p tree/src/deep/er tree/dst tree/logs
seq 1 1000 >tree/src/numbers.txt
dd if=/dev/zero of=tree/src/zeros.bin bs=1024 count=256 2>/dev/null
dd if=tree/src/numbers.txt of=tree/src/deep/er/head.bin bs=100 count=3 2>/dev/null
echo "hello from skiff" >tree/src/deep/er/hello.txt
cp tree/src/numbers.txt tree/dst/numbers.copy
cp -r tree/src/deep tree/dst/
mv tree/dst/numbers.copy tree/dst/numbers.txt
seq 1001 1100 >>tree/dst/numbers.txt
sort -rn tree/dst/numbers.txt >tree/dst/sorted.txt
echo "sorted, first three:"
head -n 3 tree/dst/sorted.txt
echo "wc -l numbers: $(wc -l <tree/dst/numbers.txt)"
echo "wc -c zeros.bin: $(wc -c <tree/src/zeros.bin)"
echo "md5sum:"
cd tree
md5sum src/numbers.txt src/zeros.bin src/deep/er/head.bin dst/numbers.txt dst/sorted.txt \
    dst/deep/er/hello.txt
echo "tree:"
find . | sort
cd ..
ls -1 tree/dst >tree/logs/dst.txt
echo "ls -1 tree/dst: $(wc -l <tree/logs/dst.txt) entries"
sync
echo "visits.log:"
cat visits.log
echo "done (full)"
