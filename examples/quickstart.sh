#!/usr/bin/env bash
# The dunnage CLI's main job, on an image it builds itself: a rootfs tarball
# from the host's static busybox (package busybox-static) is imported into a
# first store, saved as a `docker save` archive, and that archive is loaded
# into a second, empty store, whose images are listed; then a container of
# it runs (`dunnage run --rm`) and is gone when it ends.
#
#   bash examples/quickstart.sh
#
# Needs root (layers keep their owners and device nodes). Everything lives
# in one temporary directory under ${TMPDIR:-/tmp}, removed at the end.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "quickstart.sh: needs root (overlay mounts, layers with their owners and device nodes); run: sudo bash $0" >&2
  exit 1
fi
cd "$(dirname "$0")/.."

cargo build -q --example dunnage
dunnage() { cargo run -q --example dunnage -- "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-quickstart.XXXXXX")
# The container's cgroup goes below a parent of this run's own (docker uses
# /docker), removed at the end with the rest.
parent="dunnage-quickstart-$$"
# On any exit: remove what a failed run may have left, then the directory
# and the (then empty) parent cgroups.
cleanup() {
  for id in $(dunnage --root "$work/store" ps -aq 2>/dev/null); do
    dunnage --root "$work/store" rm -f "$id" > /dev/null 2>&1 || true
  done
  rm -rf "$work"
  for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
    [ -d "$d" ] && rmdir "$d" 2> /dev/null || true
  done
}
trap cleanup EXIT

# A tiny rootfs: busybox and a few of its applets, owned by root.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for app in sh ls cat echo uname hostname id; do
  ln -s busybox "$work/rootfs/bin/$app"
done
echo "hello from dunnage" > "$work/rootfs/etc/motd"
tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/rootfs.tar" .

# Build the image in one store and save it, as `docker save` would.
dunnage --root "$work/build" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' \
  -m 'busybox from the host' "$work/rootfs.tar" quickstart/busybox:latest > /dev/null
dunnage --root "$work/build" save -o "$work/busybox.tar" quickstart/busybox:latest

# The main job: load the archive into a fresh store and list what it holds.
echo "\$ dunnage load -i busybox.tar"
dunnage --root "$work/store" load -i "$work/busybox.tar"
echo "\$ dunnage images"
dunnage --root "$work/store" images
echo "\$ dunnage history quickstart/busybox"
dunnage --root "$work/store" history quickstart/busybox
echo "\$ dunnage run --rm quickstart/busybox sh -c 'cat /etc/motd; hostname; id; ls /'"
dunnage --root "$work/store" run --rm --cgroup-parent "$parent" quickstart/busybox sh -c 'cat /etc/motd; hostname; id; ls /'
echo "\$ dunnage ps -a"
dunnage --root "$work/store" ps -a
