#!/usr/bin/env bash
# What `--network bridge` adds to a whole `run --rm IMG true`, end to end as
# users see it: `dunnage run --rm --network bridge` less `--network none`
# (the CLI, release build), against the same difference for `docker run`
# (a private dockerd with its own data-root, exec-root, socket, docker0 on
# 10.206.0.1/24, iptables and `--userland-proxy=false`). Both run inside
# network namespaces made here (`dunnage-test-bench-clinet-*` stands in for
# dunnage's host, `dunnage-test-bench-clidocker-*` for dockerd's): nothing
# is created in the machine's own network namespace. The four cases run
# interleaved run by run, so they see the same load; medians, plus the
# dunnage CLI's CPU time (user+sys, the CLI and what it waited for).
#
#   cargo build --release --example dunnage && sudo bash benches/cli_network.sh [RUNS]
#
# DUNNAGE_BIN=PATH runs another build of the CLI; DUNNAGE_BASE_BIN=PATH adds
# two cases with a second build (an older one, interleaved with the rest).
#
# Needs root, dockerd, busybox-static, ip, nsenter. Everything lives in one
# temporary directory and two namespaces, removed at the end (the daemon is
# stopped).
set -euo pipefail
runs=${1:-30}
cd "$(dirname "$0")/.."
dunnage=${DUNNAGE_BIN:-$PWD/target/release/examples/dunnage}
[ -x "$dunnage" ] || { echo "build it first: cargo build --release --example dunnage" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-test-bench-clinet.XXXXXX")
tag=$(basename "$work" | tr -cd 'a-zA-Z0-9' | tail -c 8)
libns=dunnage-test-bench-clinet-$tag
dockerns=dunnage-test-bench-clidocker-$tag
dockerd_pid=
cleanup() {
  for id in $(nsenter --net=/run/netns/"$libns" "$dunnage" --root "$work/store" ps -aq 2>/dev/null); do
    nsenter --net=/run/netns/"$libns" "$dunnage" --root "$work/store" rm -f "$id" > /dev/null 2>&1 || true
  done
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2> /dev/null || true
    wait "$dockerd_pid" 2> /dev/null || true
  fi
  cpid=$(cat "$work/docker-exec/containerd/containerd.pid" 2> /dev/null || true)
  if [ -n "$cpid" ] && grep -qa "$work" "/proc/$cpid/cmdline" 2> /dev/null; then
    kill "$cpid" 2> /dev/null || true
  fi
  for m in $(awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2> /dev/null || true
  done
  for d in /sys/fs/cgroup/dunnage-test-bench-clinet /sys/fs/cgroup/*/dunnage-test-bench-clinet; do
    [ -d "$d" ] && rmdir "$d" 2> /dev/null || true
  done
  ip netns del "$libns" 2> /dev/null || true
  ip netns del "$dockerns" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$libns"
ip netns add "$dockerns"
ip -n "$libns" link set lo up
ip -n "$dockerns" link set lo up

# The image: busybox (`true`).
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for app in sh true sleep; do ln -s busybox "$work/rootfs/bin/$app"; done
tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/rootfs.tar" .

# A private dockerd in its own network namespace, with its docker0 there.
nsenter --net=/run/netns/"$dockerns" /usr/sbin/dockerd --data-root "$work/docker" \
  --exec-root "$work/docker-exec" --pidfile "$work/dockerd.pid" \
  -H "unix://$work/docker.sock" --storage-driver=overlay2 \
  --bip=10.206.0.1/24 --userland-proxy=false --ip6tables=false \
  > "$work/dockerd.log" 2>&1 &
dockerd_pid=$!
trap 'rc=$?; [ $rc = 0 ] || tail -5 "$work/dockerd.log" >&2; cleanup' EXIT
docker() { /usr/bin/docker -H "unix://$work/docker.sock" "$@"; }
for _ in $(seq 600); do docker version > /dev/null 2>&1 && break; sleep 0.1; done
docker import -c 'CMD ["true"]' "$work/rootfs.tar" bench/busybox:1 > /dev/null
docker save -o "$work/busybox.tar" bench/busybox:1
dun() { nsenter --net=/run/netns/"$libns" "$dunnage" --root "$work/store" "$@"; }
dun load -q -i "$work/busybox.tar" > /dev/null
# The default network dunnage0 (172.17.0.0/16), in the bench's namespace.
dun network create dunnage0 > /dev/null 2>&1 || true

cases=(dunnage-none dunnage-bridge docker-none docker-bridge)
base=${DUNNAGE_BASE_BIN:-}
[ -z "$base" ] || cases+=(base-none base-bridge)
# The command line of case $1, in the array `cmd`.
argv() {
  local dn=(nsenter --net=/run/netns/"$libns" "$dunnage" --root "$work/store" run --rm
    --cgroup-parent dunnage-test-bench-clinet)
  local dk=(/usr/bin/docker -H "unix://$work/docker.sock" run --rm)
  local bs=(nsenter --net=/run/netns/"$libns" "$base" --root "$work/store" run --rm
    --cgroup-parent dunnage-test-bench-clinet)
  case $1 in
    base-none) cmd=("${bs[@]}" --network none) ;;
    base-bridge) cmd=("${bs[@]}" --network bridge) ;;
    dunnage-none) cmd=("${dn[@]}" --network none) ;;
    dunnage-bridge) cmd=("${dn[@]}" --network bridge) ;;
    docker-none) cmd=("${dk[@]}" --network none) ;;
    docker-bridge) cmd=("${dk[@]}" --network bridge) ;;
  esac
  cmd+=(bench/busybox:1 true)
}
one() { argv "$1"; "${cmd[@]}"; }
# Each a few times, to fail early and warm the caches.
for _ in 1 2 3; do for c in "${cases[@]}"; do one "$c" > /dev/null; done; done

echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
TIMEFORMAT='%3U %3S'
for _ in $(seq "$runs"); do
  for c in "${cases[@]}"; do
    argv "$c"
    t0=$EPOCHREALTIME
    { time "${cmd[@]}" > /dev/null 2>&1; } 2> "$work/cpu"
    t1=$EPOCHREALTIME
    echo "$c $t0 $t1 $(cat "$work/cpu")" >> "$work/times"
  done
done
echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"
# Leftovers would show as links in the bench's host namespace: none once the
# kernel has cleaned the last container's namespace up.
for _ in $(seq 200); do
  [ "$(ip -n "$libns" -o link show type veth | wc -l)" = 0 ] && break
  sleep 0.05
done
echo "veth host ends left in the bench namespace: $(ip -n "$libns" -o link show type veth | wc -l)"

awk -v runs="$runs" '
  { k = ++n[$1]; wall[$1, k] = ($3 - $2) * 1e3; cpu[$1, k] = ($4 + $5) * 1e3 }
  function median(a, c, k,   i, j, t, b) {
    for (i = 1; i <= k; i++) b[i] = a[c, i]
    for (i = 2; i <= k; i++) for (j = i; j > 1 && b[j - 1] > b[j]; j--) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t }
    return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
  }
  END {
    printf "%d runs per case, interleaved; medians\n", runs
    split("dunnage-none dunnage-bridge docker-none docker-bridge", order, " ")
    for (i = 1; i <= 4; i++) {
      c = order[i]; m[c] = median(wall, c, n[c]); u[c] = median(cpu, c, n[c])
      printf "%-15s %8.1f ms wall, %6.1f ms user+sys (the CLI; docker: the client only)\n", c, m[c], u[c]
    }
    ours = m["dunnage-bridge"] - m["dunnage-none"]; theirs = m["docker-bridge"] - m["docker-none"]
    printf "--network bridge adds: dunnage %.1f ms (CPU %.1f ms), docker %.1f ms\n", ours, u["dunnage-bridge"] - u["dunnage-none"], theirs
    printf "ratio dunnage / docker (what --network bridge adds, medians): %.3f\n", ours / theirs
    # Paired: the difference within each round of the interleaved runs
    # (the cases of a round ran back to back, under the same load), median.
    for (i = 1; i <= n["dunnage-none"]; i++) {
      pd[i] = wall["dunnage-bridge", i] - wall["dunnage-none", i]
      pk[i] = wall["docker-bridge", i] - wall["docker-none", i]
      if (n["base-none"]) pb[i] = wall["base-bridge", i] - wall["base-none", i]
    }
    k = n["dunnage-none"]
    for (i = 1; i <= k; i++) { x["d", i] = pd[i]; x["k", i] = pk[i]; x["b", i] = pb[i] }
    md = median(x, "d", k); mk = median(x, "k", k)
    printf "paired (median of the per-round differences): dunnage %.1f ms, docker %.1f ms: ratio %.3f\n", md, mk, md / mk
    if (n["base-none"]) printf "paired, base build: %.1f ms: ratio %.3f\n", median(x, "b", k), median(x, "b", k) / mk
    if (n["base-none"]) {
      b = median(wall, "base-none", n["base-none"]); bb = median(wall, "base-bridge", n["base-bridge"])
      printf "base build: none %.1f ms, bridge %.1f ms: adds %.1f ms = %.3fx docker'"'"'s\n", b, bb, bb - b, (bb - b) / theirs
    }
  }' "$work/times"
