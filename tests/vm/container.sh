#!/bin/sh
# Stage two of the VM's init (tests/vm/run.sh), run as PID 1 after
# switch_root onto a tmpfs (pivot_root cannot leave the initramfs's rootfs):
# a container through the dunnage CLI on the pure cgroup-v2 kernel. Each
# check prints `vm: ok NAME` or `vm: FAILED NAME`; a `test result:` line
# sums them for run.sh. Ends with `vm: done` and powers the VM off.
export PATH=/bin TMPDIR=/tmp
D="/ctr/dunnage --root /var/lib/dunnage"
out=/tmp/ctr
mkdir -p "$out"
passed=0
failed=0

# check NAME COMMAND...: run COMMAND, count it.
check() {
  name=$1
  shift
  if "$@"; then
    echo "vm: ok $name"
    passed=$((passed + 1))
  else
    echo "vm: FAILED $name"
    failed=$((failed + 1))
  fi
}
# show FILE...: a failed check's evidence on the console.
show() {
  for f in "$@"; do
    [ -s "$f" ] && sed "s|^|vm:   $(basename "$f"): |" "$f"
  done
  return 0
}

# A cgroup2 filesystem (statfs magic), and no v1 controller in
# /proc/self/cgroup (named v1 hierarchies without controllers, such as the
# release-agent test's, may still be listed).
pure_v2() {
  { [ "$(stat -f -c %t /sys/fs/cgroup)" = 63677270 ] &&
    grep -qx '0::/' /proc/self/cgroup &&
    ! grep -v -e '^0::' -e '^[0-9]*:name=[^:]*:' /proc/self/cgroup &&
    ! grep -q ' cgroup ' /proc/mounts; } || {
    { stat -f -c %t /sys/fs/cgroup; cat /proc/self/cgroup; grep cgroup /proc/mounts; } | sed "s/^/vm:   /"
    false
  }
}
check "host: pure cgroup v2" pure_v2

insmod /ctr/overlay.ko 2>/dev/null
check "overlay filesystem available" grep -qw overlay /proc/filesystems

load() {
  $D load -i /ctr/bb.tar >"$out/load.out" 2>&1 &&
    grep -q 'Loaded image: vm/bb:1' "$out/load.out" || { show "$out/load.out"; false; }
}
check "load the busybox archive" load

# run --rm: the container sees itself in one cgroup2 hierarchy, with its
# limits; its exit code comes back.
$D run --rm -m 64m --pids-limit 32 vm/bb:1 sh -c '
  p=$(sed -n "s/^0:://p" /proc/self/cgroup); p=${p%/}
  echo "v1=$(grep -v -e "^0::" -e "^[0-9]*:name=[^:]*:" /proc/self/cgroup | wc -l)"
  echo "v2=$(grep -c "^0::/" /proc/self/cgroup)"
  echo "fs=$(stat -f -c %t /sys/fs/cgroup)"
  d=/sys/fs/cgroup$p; [ -e "$d/memory.max" ] || d=/sys/fs/cgroup
  echo "memory.max=$(cat "$d/memory.max")"
  echo "pids.max=$(cat "$d/pids.max")"
  exit 7' >"$out/run.out" 2>"$out/run.err"
run_rc=$?
has() { grep -qx "$1" "$out/run.out" || { show "$out/run.out" "$out/run.err"; false; }; }
check "run: exit code 7 propagated" [ "$run_rc" = 7 ]
check "run: no v1 controller" has "v1=0"
check "run: in the cgroup2 hierarchy" has "v2=1"
check "run: /sys/fs/cgroup is cgroup2" has "fs=63677270"
check "run: memory.max is -m 64m" has "memory.max=67108864"
check "run: pids.max is --pids-limit 32" has "pids.max=32"

$D run --rm vm/bb:1 /no/such/program >/dev/null 2>&1
check "run: a missing program exits 127" [ "$?" = 127 ]

# create + start + stats + stop + rm, the limits read from the host side.
id=$($D create --name c1 -m 32m --pids-limit 16 vm/bb:1 sleep 1000 2>"$out/create.err")
check "create" [ "$?" = 0 -a -n "$id" ]
$D start c1 >"$out/start.out" 2>&1
check "start" [ "$?" = 0 ]
cg=/sys/fs/cgroup/dunnage/$id
check "host: memory.max is -m 32m" [ "$(cat "$cg/memory.max" 2>/dev/null)" = 33554432 ]
check "host: pids.max is --pids-limit 16" [ "$(cat "$cg/pids.max" 2>/dev/null)" = 16 ]
check "host: the container's process in its cgroup" [ -n "$(cat "$cg/cgroup.procs" 2>/dev/null)" ]
stats() {
  $D stats --no-stream c1 >"$out/stats.out" 2>&1 &&
    grep -q ' c1 .*/ 32MiB' "$out/stats.out" || { show "$out/stats.out"; false; }
}
check "stats --no-stream" stats
$D stop -t 1 c1 >"$out/stop.out" 2>&1
check "stop" [ "$?" = 0 ]
check "wait: killed after the grace period (137)" [ "$($D wait c1 2>&1)" = 137 ]
$D rm c1 >"$out/rm.out" 2>&1
check "rm" [ "$?" = 0 ]
check "rm: its cgroup is gone" [ ! -e "$cg" ]

$D create --name c2 vm/bb:1 sh -c 'exit 5' >/dev/null 2>&1
$D start -a c2 >/dev/null 2>&1
check "start -a: exit code 5 propagated" [ "$?" = 5 ]
$D rm c2 >/dev/null 2>&1
check "rm c2" [ "$?" = 0 ]

# Nothing left: containers, cgroups, mounts, state.
check "nothing left: ps -a" [ -z "$($D ps -a -q 2>&1)" ]
check "nothing left: cgroups" [ -z "$(find /sys/fs/cgroup/dunnage -mindepth 1 -type d 2>/dev/null)" ]
no_mounts() {
  ! grep -E ' (overlay|/var/lib/dunnage[^ ]*) ' /proc/self/mountinfo || { show /proc/self/mountinfo; false; }
}
check "nothing left: mounts" no_mounts
check "nothing left: container state" [ -z "$(ls /var/lib/dunnage/containers 2>/dev/null)" ]

echo "test result: $([ "$failed" = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; (container checks)"
echo "vm: done"
poweroff -f
