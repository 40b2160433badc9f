#!/usr/bin/env bash
# Installs what estiba needs, builds it, and shows a busybox container from
# the inside, as root and as an unprivileged user.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run the demo as root: it installs packages and creates a demo user" >&2; exit 1; }
scripts/deps.sh
cargo build --release --locked
scripts/build-monitor.sh --release
install -m 0755 target/release/estiba target/release/estiba-monitor /usr/local/bin/

rootfs=$(mktemp --suffix=.tar)
trap 'rm -f "$rootfs"' EXIT
scripts/busybox-rootfs.sh "$rootfs"
chmod 644 "$rootfs"

inside='echo "PID:      $$"; echo "hostname: $(hostname)"; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; id'

echo "== as root"
estiba import "$rootfs" busybox:demo >/dev/null
estiba run --rm --hostname demo-root busybox:demo sh -c "$inside"

echo "== rootless, as user estiba-demo"
id estiba-demo >/dev/null 2>&1 || useradd -m -s /bin/sh estiba-demo
grep -q '^estiba-demo:' /etc/subuid || echo 'estiba-demo:400000:65536' >> /etc/subuid
grep -q '^estiba-demo:' /etc/subgid || echo 'estiba-demo:400000:65536' >> /etc/subgid
runuser -u estiba-demo -- env -i HOME=/home/estiba-demo PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  XDG_RUNTIME_DIR=/tmp/estiba-demo-run sh -c "mkdir -p /tmp/estiba-demo-run && estiba import $rootfs busybox:demo >/dev/null && estiba run --rm --hostname demo-rootless busybox:demo sh -c '$inside; cat /proc/self/uid_map'"
