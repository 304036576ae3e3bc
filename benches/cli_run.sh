#!/usr/bin/env bash
# `dunnage run --rm IMG true` against `docker run --rm --network none IMG
# true` (a private dockerd: own data-root, exec-root, socket; no bridge, no
# iptables) and `podman run --rm --network none IMG true` (private --root
# and --runroot; --ulimit nofile=1024:1024 --ulimit nproc=1024:1024, as its default of 1048576 is
# above this machine's hard limit), on the same busybox image (a `docker save` archive loaded
# into all three), with hyperfine.
#
#   cargo build --release --example dunnage && sudo bash benches/cli_run.sh [RUNS]
#
# Needs root, dockerd, podman, hyperfine, busybox-static. Everything lives
# in one temporary directory, removed at the end (the daemon is stopped).
set -euo pipefail
runs=${1:-30}
cd "$(dirname "$0")/.."
dunnage=$PWD/target/release/examples/dunnage
[ -x "$dunnage" ] || { echo "build it first: cargo build --release --example dunnage" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-test-bench-cli.XXXXXX")
dockerd_pid=
cleanup() {
  for id in $("$dunnage" --root "$work/store" ps -aq 2>/dev/null); do
    "$dunnage" --root "$work/store" rm -f "$id" > /dev/null 2>&1 || true
  done
  podman --root "$work/podman" --runroot "$work/podman-run" --cgroup-manager cgroupfs \
    system reset -f > /dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2> /dev/null || true
    wait "$dockerd_pid" 2> /dev/null || true
  fi
  for m in $(awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2> /dev/null || true
  done
  for d in /sys/fs/cgroup/dunnage-test-bench /sys/fs/cgroup/*/dunnage-test-bench; do
    [ -d "$d" ] && rmdir "$d" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The image: busybox with every applet.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for app in $(/bin/busybox --list); do
  [ "$app" = busybox ] || ln -s busybox "$work/rootfs/bin/$app"
done
tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/rootfs.tar" .

# A private dockerd.
/usr/sbin/dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" \
  --pidfile "$work/dockerd.pid" -H "unix://$work/docker.sock" \
  --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
  > "$work/dockerd.log" 2>&1 &
dockerd_pid=$!
docker() { /usr/bin/docker -H "unix://$work/docker.sock" "$@"; }
for _ in $(seq 600); do docker version > /dev/null 2>&1 && break; sleep 0.1; done
docker import -c 'CMD ["sh"]' "$work/rootfs.tar" bench/busybox:1 > /dev/null
docker save -o "$work/busybox.tar" bench/busybox:1
"$dunnage" --root "$work/store" load -q -i "$work/busybox.tar" > /dev/null
podman() { command podman --root "$work/podman" --runroot "$work/podman-run" --cgroup-manager cgroupfs --runtime runc "$@"; }
podman load -q -i "$work/busybox.tar" > /dev/null

# Each once, to fail early and warm the caches.
"$dunnage" --root "$work/store" run --rm --cgroup-parent dunnage-test-bench bench/busybox:1 true
docker run --rm --network none bench/busybox:1 true
podman run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 bench/busybox:1 true

echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
hyperfine -N --warmup 3 --runs "$runs" --export-csv "$work/times.csv" \
  -n "dunnage run --rm" "$dunnage --root $work/store run --rm --cgroup-parent dunnage-test-bench bench/busybox:1 true" \
  -n "docker run --rm --network none" "/usr/bin/docker -H unix://$work/docker.sock run --rm --network none bench/busybox:1 true" \
  -n "podman run --rm --network none" "podman --root $work/podman --runroot $work/podman-run --cgroup-manager cgroupfs --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 bench/busybox:1 true"
echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"
# The ratios of the medians (and of user+sys CPU time, the CLI process only).
awk -F, 'NR > 1 { med[NR-1] = $4; cpu[NR-1] = $5 + $6 }
  END {
    printf "median ms: dunnage %.1f, docker %.1f, podman %.1f\n", med[1] * 1e3, med[2] * 1e3, med[3] * 1e3
    printf "ratio dunnage / docker (median): %.3f\n", med[1] / med[2]
    printf "ratio dunnage / podman (median): %.3f\n", med[1] / med[3]
    printf "dunnage user+sys: %.1f ms\n", cpu[1] * 1e3
  }' "$work/times.csv"
