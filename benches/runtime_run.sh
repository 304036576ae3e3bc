#!/usr/bin/env bash
# `runtime run` of a plain bundle to exit (the runtime example, release
# build) against `crun run` and `runc run` of the same bundle, interleaved
# in one hyperfine run (issue 11; target: at most 0.8x crun).
#
#   cargo build --release --example runtime && sudo bash benches/runtime_run.sh [RUNS]
#
# The bundle is `runc spec`'s (busybox-static rootfs, `args: ["true"]`, no
# terminal, ambient and inheritable capabilities removed, `cgroupsPath
# /dunnage-test-rt-bench/c`). All three run in a private mount namespace
# with /sys/fs/cgroup/unified unmounted (crun 1.8.1 refuses this host's
# hybrid layout otherwise). Prints the load average before and after,
# hyperfine's table, the medians, the user+sys CPU medians and the ratios
# to crun. hyperfine runs each command's runs in a block; a second pass
# then alternates the three run by run (the same load for each), timing
# each run and taking its CPU time (user+sys, the runtime and everything
# it waited for) from wait4, and prints those medians and ratios too. Needs root, runc, crun, hyperfine, busybox-static, python3.
# Everything lives in one temporary directory, removed at the end with the
# benchmark's cgroups.
set -euo pipefail
runs=${1:-30}
cd "$(dirname "$0")/.."
ours=$PWD/target/release/examples/runtime
[ -x "$ours" ] || { echo "build it first: cargo build --release --example runtime" >&2; exit 1; }

B=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-test-bench-rt.XXXXXX")
cleanup() {
  "$ours" --root "$B/ours" delete --force bench > /dev/null 2>&1 || true
  crun --root "$B/crun" delete --force bench > /dev/null 2>&1 || true
  runc --root "$B/runc" delete --force bench > /dev/null 2>&1 || true
  for d in /sys/fs/cgroup/*/dunnage-test-rt-bench/c /sys/fs/cgroup/*/dunnage-test-rt-bench \
    /sys/fs/cgroup/dunnage-test-rt-bench/c /sys/fs/cgroup/dunnage-test-rt-bench; do
    [ -d "$d" ] && rmdir "$d" 2> /dev/null || true
  done
  rm -rf "$B"
}
trap cleanup EXIT

mkdir -p "$B/b/rootfs/bin" "$B/ours" "$B/crun" "$B/runc"
cp /bin/busybox "$B/b/rootfs/bin/busybox"
ln -s busybox "$B/b/rootfs/bin/true"
ln -s busybox "$B/b/rootfs/bin/sh"
(cd "$B/b" && runc spec)
python3 - "$B/b/config.json" << 'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
caps = c["process"]["capabilities"]
caps.pop("ambient", None)
caps.pop("inheritable", None)
c["linux"]["cgroupsPath"] = "/dunnage-test-rt-bench/c"
json.dump(c, open(p, "w"), indent=2)
EOF

out=$B/hyperfine.json
echo "load before: $(cat /proc/loadavg)"
unshare -m sh -c "umount /sys/fs/cgroup/unified 2> /dev/null; hyperfine -N -w 3 -r $runs --export-json $out \
  '$ours --root $B/ours run --bundle $B/b bench' \
  'crun --root $B/crun run --bundle $B/b bench' \
  'runc --root $B/runc run --bundle $B/b bench'"
echo "load after: $(cat /proc/loadavg)"
python3 - "$out" << 'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
names = ["dunnage runtime", "crun", "runc"]
med = [statistics.median(x["times"]) * 1000 for x in r]
cpu = [(x["user"] + x["system"]) * 1000 for x in r]
print(f"{'case':<16} {'median ms':>10} {'mean ms':>10} {'min ms':>8} {'user ms':>8} {'sys ms':>8}")
for n, x, m in zip(names, r, med):
    print(f"{n:<16} {m:10.1f} {x['mean']*1000:10.1f} {x['min']*1000:8.1f} "
          f"{x['user']*1000:8.1f} {x['system']*1000:8.1f}")
print(f"ratio dunnage/crun: median {med[0]/med[1]:.2f}x, mean {r[0]['mean']/r[1]['mean']:.2f}x, "
      f"min {r[0]['min']/r[1]['min']:.2f}x, cpu (user+sys mean) {cpu[0]/cpu[1]:.2f}x")
print(f"ratio runc/crun: median {med[2]/med[1]:.2f}x")
EOF
echo "interleaved pass, load before: $(cat /proc/loadavg)"
unshare -m sh -c "umount /sys/fs/cgroup/unified 2> /dev/null; python3 - $runs \
  '$ours --root $B/ours run --bundle $B/b bench' \
  'crun --root $B/crun run --bundle $B/b bench' \
  'runc --root $B/runc run --bundle $B/b bench'" << 'EOF'
import os, statistics, sys, time
runs, cmds = int(sys.argv[1]), [c.split() for c in sys.argv[2:]]
names = ["dunnage runtime", "crun", "runc"]
wall, cpu = [[] for _ in cmds], [[] for _ in cmds]
for i in range(runs + 3):
    for k, argv in enumerate(cmds):
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            null = os.open("/dev/null", os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.execvp(argv[0], argv)
        _, status, ru = os.wait4(pid, 0)
        dt = (time.perf_counter() - t0) * 1000
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{names[k]} failed: {status}")
        if i >= 3:
            wall[k].append(dt)
            cpu[k].append((ru.ru_utime + ru.ru_stime) * 1000)
print(f"{'case':<16} {'median ms':>10} {'min ms':>8} {'CPU median ms':>14}")
for n, w, c in zip(names, wall, cpu):
    print(f"{n:<16} {statistics.median(w):10.2f} {min(w):8.2f} {statistics.median(c):14.2f}")
m = [statistics.median(w) for w in wall]
c = [statistics.median(x) for x in cpu]
print(f"interleaved ratio dunnage/crun: median {m[0]/m[1]:.2f}x, "
      f"min {min(wall[0])/min(wall[1]):.2f}x, cpu median {c[0]/c[1]:.2f}x")
EOF
echo "interleaved pass, load after: $(cat /proc/loadavg)"
