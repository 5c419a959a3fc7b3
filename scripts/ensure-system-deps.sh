#!/bin/sh
# Install the Debian packages readbench needs, only those missing (idempotent).
#   clang, llvm       compile the BPF programs (bpf/*.bpf.c)
#   libbpf-dev        libbpf headers for the BPF programs and bench/ C cross-check; libbpf1 at run time
#   bpftool           generate vmlinux.h from /sys/kernel/btf/vmlinux, list links in tests
#   linux-perf        perf bench mem (copy-replica cross-check), perf record (attribution check)
#   chromium, fonts   the report's headless-browser test
#   gcc               the cffi C loops (workloads/*.c) and the bench/ C programs
#   qemu-system-x86, kmod, busybox-static, udev, e2fsprogs
#                     `readbench guest` (QEMU; depmod for the guest kernel's modules; the
#                     initramfs virtme-ng builds; udev for the guest's script I/O ports;
#                     mkfs.ext4 for the guest's data disk), and the tests' guest lane
#   liburing-dev      io_uring for the io_uring workloads (the C loops link liburing)
# Not root: print what is missing and exit 3 (the tests that need them then skip, or fail in CI).
set -eu
PKGS="clang llvm libbpf-dev libbpf1 bpftool linux-perf chromium fonts-dejavu-core gcc liburing-dev"
PKGS="$PKGS qemu-system-x86 kmod busybox-static udev e2fsprogs"
[ -n "${READBENCH_EXTRA_PKGS:-}" ] && PKGS="$PKGS $READBENCH_EXTRA_PKGS"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-system-deps: missing Debian packages:$missing (run as root: apt-get install$missing)" >&2
    exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-system-deps: not a Debian-like system; install the equivalents of:$missing" >&2
    exit 3
fi
echo "ensure-system-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
