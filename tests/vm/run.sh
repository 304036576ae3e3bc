#!/usr/bin/env bash
# Run the dunnage-cgroups tests on a pure cgroup-v2 kernel: Debian's
# linux-image-amd64 booted under qemu (TCG) with cgroup_no_v1=all (and psi=1:
# pressure files for the PSI test whatever the kernel's default), from an
# initramfs holding busybox-static, the test binaries, the shared libraries
# they need, the test fixtures and loop.ko (a block device for io.max).
# Then a container through the facade: the dunnage CLI (examples/dunnage), a
# busybox image archive it made from busybox-static and overlay.ko; after
# the tests the VM's init moves to a tmpfs (switch_root: pivot_root cannot
# leave the initramfs's rootfs) and runs tests/vm/container.sh there.
# Ends with `N passed, M failed` (the container checks counted too); exits
# non-zero when a test failed or the VM did not finish.
#
# Environment: VM_TIMEOUT (seconds, default 300), VM_KERNEL (a vmlinuz),
# VM_KEEP=1 keeps the work directory, VM_BENCH=1 also runs
# benches/cgroup_lifecycle on v2 after the tests (DUNNAGE_BENCH_RUNS runs per
# case, default 100; TCG-emulated, so compare ratios, not times).
set -euo pipefail
cd "$(dirname "$0")/../.."
root_dir=$(pwd)

kernel=${VM_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)}
if [ -z "$kernel" ] || [ ! -r "$kernel" ]; then
  echo "tests/vm: no kernel in /boot (install linux-image-amd64)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
kver=${kernel#/boot/vmlinuz-}
modules=/lib/modules/$kver

work=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-vm.XXXXXX")
cleanup() { if [ "${VM_KEEP:-0}" != 1 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

echo "tests/vm: building the test binaries" >&2
mapfile -t bins < <(cargo test -p dunnage-cgroups --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
if [ "${#bins[@]}" -eq 0 ]; then
  echo "tests/vm: cargo built no test binary" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

echo "tests/vm: building the dunnage CLI" >&2
cli=$(cargo build --example dunnage --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\/dunnage\)".*/\1/p' | tail -n1)
if [ -z "$cli" ] || [ ! -x "$cli" ]; then
  echo "tests/vm: the dunnage CLI did not build" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

benches=()
if [ "${VM_BENCH:-0}" = 1 ]; then
  echo "tests/vm: building benches/cgroup_lifecycle" >&2
  mapfile -t benches < <(cargo bench -p dunnage-benches --bench cgroup_lifecycle --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
  if [ "${#benches[@]}" -eq 0 ]; then
    echo "tests/vm: VM_BENCH=1 but the cgroup_lifecycle bench did not build" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

initrd=$work/root
mkdir -p "$initrd"/{bin,dev,proc,sys,tmp,tests,bench,ctr,lib/modules}
cp /bin/busybox "$initrd/bin/busybox"
echo "${DUNNAGE_BENCH_RUNS:-100}" >"$initrd/bench-runs"
for b in "${bins[@]}" "${benches[@]}" "$cli"; do
  case "$b" in
    */cgroup_lifecycle-*) cp "$b" "$initrd/bench/" ;;
    "$cli") strip -o "$initrd/ctr/dunnage" "$b" 2>/dev/null || cp "$b" "$initrd/ctr/dunnage" ;;
    *) cp "$b" "$initrd/tests/" ;;
  esac
  # The shared libraries and the loader, at their own paths.
  ldd "$b" | grep -o '/[^ ]*' | while read -r lib; do
    cp -L --parents "$lib" "$initrd" 2>/dev/null || true
  done
done
# The fixtures, where CARGO_MANIFEST_DIR points.
cp -r --parents "$root_dir/cgroups/tests/fixtures" "$initrd"
# loop.ko, and overlay.ko for the container (no dependencies in modules.dep).
for m in drivers/block/loop.ko fs/overlayfs/overlay.ko; do
  src=$(ls "$modules/kernel/$m"* 2>/dev/null | head -n1 || true)
  case "$src" in
    *.xz) xz -dc "$src" >"$initrd/lib/modules/$(basename "$m")" ;;
    *.zst) zstd -qdc "$src" >"$initrd/lib/modules/$(basename "$m")" ;;
    ?*) cp "$src" "$initrd/lib/modules/$(basename "$m")" ;;
  esac
done
mv "$initrd/lib/modules/overlay.ko" "$initrd/ctr/" 2>/dev/null || true

# The container's image: busybox-static with its applets and root's entry,
# imported into a scratch store and saved as a docker-save archive.
img=$work/image
mkdir -p "$img/rootfs/bin" "$img/rootfs/etc"
cp /bin/busybox "$img/rootfs/bin/busybox"
for app in $(/bin/busybox --list); do
  [ "$app" = busybox ] || ln -s busybox "$img/rootfs/bin/$app"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$img/rootfs/etc/passwd"
echo 'root:x:0:' >"$img/rootfs/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$img/rootfs" -cf "$img/rootfs.tar" .
"$cli" --root "$img/store" import -c 'CMD ["/bin/sh"]' "$img/rootfs.tar" vm/bb:1 >/dev/null
"$cli" --root "$img/store" save -o "$initrd/ctr/bb.tar" vm/bb:1
cp tests/vm/container.sh "$initrd/ctr/checks.sh"

cat >"$initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin TMPDIR=/tmp DUNNAGE_REQUIRE_PRIVILEGED=1 RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /lib/modules/loop.ko 2>/dev/null
echo "vm: kernel $(uname -r), controllers: $(cat /sys/fs/cgroup/cgroup.controllers), psi: $(ls /proc/pressure 2>/dev/null | tr "\n" " ")"
for t in /tests/*; do
  echo "vm: running $t"
  "$t" --test-threads=2
  echo "vm: exit $? $t"
done
for b in /bench/*; do
  [ -x "$b" ] || continue
  echo "vm: bench $b"
  DUNNAGE_BENCH_RUNS=$(cat /bench-runs) "$b" --bench
done
# The container checks: from a tmpfs root, as real systems boot.
mkdir /newroot
mount -t tmpfs -o mode=0755 root /newroot
cp -a /bin /lib /ctr /newroot/
[ -e /lib64 ] && cp -a /lib64 /newroot/
for d in dev proc sys tmp; do
  mkdir /newroot/$d
  mount --move /$d /newroot/$d
done
exec switch_root /newroot /ctr/checks.sh
echo "vm: switch_root failed"
poweroff -f
INIT
chmod +x "$initrd/init"
(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

echo "tests/vm: booting $kernel (TCG, cgroup_no_v1=all)" >&2
log=$work/console.log
set +e
timeout "${VM_TIMEOUT:-300}" qemu-system-x86_64 \
  -m 2G -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 cgroup_no_v1=all psi=1 panic=-1 quiet loglevel=3" \
  </dev/null >"$log" 2>&1
qemu_rc=$?
set -e
# The console without carriage returns and terminal escapes.
sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' "$log" >"$log.txt"
log=$log.txt
grep -E '^(vm:|test |test result:|failures:|---- |thread |  left|  right)' "$log" || true
# The benchmark's table.
sed -n '/^vm: bench /,/^vm: done/p' "$log" | grep -v '^vm:' || true

passed=0
failed=0
while read -r p f; do
  passed=$((passed + p))
  failed=$((failed + f))
done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$log")
# A binary that crashed prints no result line but a non-zero exit.
crashed=$(grep -c '^vm: exit [1-9]' "$log" || true)
if ! grep -q '^vm: done' "$log"; then
  echo "tests/vm: the VM did not finish (qemu exit $qemu_rc)" >&2
  failed=$((failed + 1))
elif [ "$failed" -eq 0 ] && [ "$crashed" -gt 0 ]; then
  failed=$crashed
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
