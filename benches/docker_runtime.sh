#!/usr/bin/env bash
# `docker run --rm --network none --runtime R IMG true` for R = dunnage
# (examples/runtime, release build), runc and crun, on one private dockerd
# (own data-root, exec-root, socket; no bridge, no iptables) with the same
# busybox image, in one hyperfine run, then alternated run by run
# (issue 11).
#
#   cargo build --release --example runtime && sudo bash benches/docker_runtime.sh [RUNS]
#
# crun 1.8 refuses this host's hybrid cgroup layout, so the daemon (and
# the runtimes it starts) run in a private mount namespace with
# /sys/fs/cgroup/unified unmounted, as for the other crun comparisons
# (RUNTIME.md). Needs root, dockerd, runc, crun, hyperfine,
# busybox-static. Everything lives in one temporary directory, removed at
# the end (the daemon is stopped; its mount namespace goes with it).
set -euo pipefail
runs=${1:-30}
cd "$(dirname "$0")/.."
runtime=$PWD/target/release/examples/runtime
[ -x "$runtime" ] || { echo "build it first: cargo build --release --example runtime" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-test-bench-dockerrt.XXXXXX")
dockerd_pid=
cleanup() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2> /dev/null || true
    wait "$dockerd_pid" 2> /dev/null || true
  fi
  for m in $(awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2> /dev/null || true
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

# The daemon, in its own mount namespace (see above); `exec` so that its
# pid is the one to stop.
unshare -m --propagation private sh -c '
  umount /sys/fs/cgroup/unified 2> /dev/null || true
  exec /usr/sbin/dockerd --data-root "$1/docker" --exec-root "$1/docker-exec" \
    --pidfile "$1/dockerd.pid" -H "unix://$1/docker.sock" \
    --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
    --add-runtime "dunnage=$2" --add-runtime "crun=$(command -v crun)"
' sh "$work" "$runtime" > "$work/dockerd.log" 2>&1 &
dockerd_pid=$!
docker() { /usr/bin/docker -H "unix://$work/docker.sock" "$@"; }
for _ in $(seq 600); do docker version > /dev/null 2>&1 && break; sleep 0.1; done
docker import -c 'CMD ["sh"]' "$work/rootfs.tar" bench/busybox:1 > /dev/null

# Each once, to fail early.
for rt in dunnage runc crun; do
  docker run --rm --network none --runtime "$rt" bench/busybox:1 true
done

cat /proc/loadavg
d="/usr/bin/docker -H unix://$work/docker.sock run --rm --network none"
hyperfine -N --warmup 3 --runs "$runs" \
  -n "docker run --runtime dunnage" "$d --runtime dunnage bench/busybox:1 true" \
  -n "docker run --runtime runc" "$d --runtime runc bench/busybox:1 true" \
  -n "docker run --runtime crun" "$d --runtime crun bench/busybox:1 true"
cat /proc/loadavg

# hyperfine runs each command's runs in a block, and the daemon's own
# noise (a standard deviation of 10-15 ms) drifts between blocks: a
# second pass alternates the three run by run, each round in a rotated
# order, and prints the medians.
echo "interleaved pass"
python3 - "$runs" "$d" << 'PY'
import statistics, subprocess, sys, time
runs, d = int(sys.argv[1]), sys.argv[2].split()
names = ["dunnage", "runc", "crun"]
wall = {n: [] for n in names}
for i in range(runs + 1):
    for n in names[i % 3:] + names[:i % 3]:
        t0 = time.perf_counter()
        subprocess.run(d + ["--runtime", n, "bench/busybox:1", "true"], check=True)
        if i >= 1:
            wall[n].append((time.perf_counter() - t0) * 1000)
m = {n: statistics.median(w) for n, w in wall.items()}
for n in names:
    print(f"docker run --runtime {n:<8} median {m[n]:7.1f} ms  min {min(wall[n]):7.1f} ms")
print(f"dunnage is {m['runc'] / m['dunnage']:.2f}x faster than runc, "
      f"{m['crun'] / m['dunnage']:.2f}x faster than crun (medians)")
PY
cat /proc/loadavg
