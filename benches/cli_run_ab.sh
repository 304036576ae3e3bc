#!/usr/bin/env bash
# Two builds of the dunnage CLI against each other on `run --rm IMG true`
# (a busybox image imported into a store of each), interleaved: ROUNDS
# rounds, each a hyperfine run of 3 runs (after 1 warm-up) of both, so
# that both see the same load. Prints the load average before and after,
# the median wall time over all rounds and the mean user+sys CPU time of
# each, and the ratio B / A.
#
#   sudo bash benches/cli_run_ab.sh A_BINARY B_BINARY [ROUNDS]
#
# Needs root, hyperfine, busybox-static. Everything lives in one temporary
# directory, removed at the end.
set -euo pipefail
a=$(realpath "$1"); b=$(realpath "$2"); rounds=${3:-12}
work=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-test-bench-ab.XXXXXX")
cleanup() {
  for v in a b; do
    bin=$a; [ $v = b ] && bin=$b
    for id in $("$bin" --root "$work/$v" ps -aq 2> /dev/null); do
      "$bin" --root "$work/$v" rm -f "$id" > /dev/null 2>&1 || true
    done
  done
  for m in $(awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2> /dev/null || true
  done
  for d in /sys/fs/cgroup/dunnage-test-bench-ab /sys/fs/cgroup/*/dunnage-test-bench-ab; do
    [ -d "$d" ] && rmdir "$d" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for app in $(/bin/busybox --list); do
  [ "$app" = busybox ] || ln -s busybox "$work/rootfs/bin/$app"
done
tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$a" --root "$work/a" import -c 'CMD ["sh"]' "$work/rootfs.tar" bench/busybox:1 > /dev/null
"$b" --root "$work/b" import -c 'CMD ["sh"]' "$work/rootfs.tar" bench/busybox:1 > /dev/null
run="run --rm --network none --cgroup-parent dunnage-test-bench-ab bench/busybox:1 true"
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  hyperfine -N --warmup 1 --runs 3 --export-csv "$work/r$r.csv" \
    -n A "$a --root $work/a $run" -n B "$b --root $work/b $run" > /dev/null 2>&1
done
echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"
cat "$work"/r*.csv | awk -F, '$1 == "A" || $1 == "B" { print $1, $4 * 1e3, ($5 + $6) * 1e3 }' |
  sort -k1,1 -k2,2n | awk '
    { t[$1, ++n[$1]] = $2; cpu[$1] += $3 }
    END {
      for (c in n) { med[c] = t[c, int((n[c] + 1) / 2)]
        printf "%s: median %.2f ms, user+sys %.2f ms (%d round medians)\n", c, med[c], cpu[c] / n[c], n[c] }
      printf "ratio B / A (median): %.3f\n", med["B"] / med["A"]
    }'
