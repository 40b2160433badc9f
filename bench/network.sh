#!/usr/bin/env bash
# Network benchmark, run by hand as root (never in CI): estiba's networks
# side by side with podman's in one run, as root (netavark) and rootless
# (podman's slirp4netns with its port forwarders, as a fresh user). Writes
# the `network` section of docs/benchmarks.md.
#   bench/network.sh [RUNS]      (default 15 runs per hyperfine command)
# Measures:
#   - the time a network attach adds to `run --rm IMAGE true`;
#   - iperf3 between two containers on one network;
#   - iperf3 from the host through a published port;
#   - HTTP requests per second through a published port (wrk, busybox httpd);
#   - the same iperf3 runs rootless.
set -euo pipefail
[ -n "${BENCH_TRACE:-}" ] && set -x
cd "$(dirname "$0")/.."
runs=${1:-15}
secs=${IPERF_SECONDS:-5}
user=${BENCH_USER:-estiba-bench}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine podman wrk nft busybox iperf3 slirp4netns; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
# Short: slirp4netns's API socket path (under podman's HOME) must stay
# below 108 bytes.
work=$(mktemp -d /tmp/enb.XXXX)
chmod 755 "$work"
export ESTIBA_ROOT=$work/estiba ESTIBA_RUNROOT=$work/estiba-run

# The rootless side runs as a fresh user with a subordinate id range.
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
grep -q "^$user:" /etc/subuid || usermod --add-subuids 600000-665535 --add-subgids 600000-665535 "$user"
home=$work/home
mkdir -p "$home" && chown "$user": "$home" && chmod 700 "$home"
as_user() {
  runuser -u "$user" -- env -i HOME="$home" XDG_RUNTIME_DIR="$home" \
    ESTIBA_ROOT="$home/estiba" ESTIBA_RUNROOT="$home/estiba-run" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

cleanup() {
  for c in bench-web bench-iperf bench-iperf-pub; do
    "$estiba" rm -f $c >/dev/null 2>&1 || true
    podman rm -f $c >/dev/null 2>&1 || true
  done
  for c in bench-iperf bench-iperf-pub bench-iperf-slirp; do
    as_user "$estiba" rm -f $c >/dev/null 2>&1 || true
    as_user podman rm -f $c >/dev/null 2>&1 || true
  done
  "$estiba" network rm bench >/dev/null 2>&1 || true
  as_user "$estiba" network rm bench >/dev/null 2>&1 || true
  podman network rm -f benchnet >/dev/null 2>&1 || true
  as_user podman network rm -f benchnet >/dev/null 2>&1 || true
  pkill -KILL -u "$user" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Images: busybox, and busybox with the host's iperf3 and its libraries.
scripts/busybox-rootfs.sh "$work/busybox.tar"
scripts/busybox-rootfs.sh "$work/iperf.tar" "$(command -v iperf3)"
chmod 644 "$work"/*.tar
"$estiba" import "$work/busybox.tar" bench/busybox >/dev/null
"$estiba" import "$work/iperf.tar" bench/iperf >/dev/null
"$estiba" network create bench --subnet 10.250.0.0/24 >/dev/null
podman --runtime runc import "$work/busybox.tar" localhost/bench-busybox >/dev/null
podman --runtime runc import "$work/iperf.tar" localhost/bench-iperf >/dev/null
podman network create --subnet 10.251.0.0/24 benchnet >/dev/null
as_user "$estiba" import "$work/iperf.tar" bench/iperf >/dev/null
as_user "$estiba" network create bench --subnet 10.252.0.0/24 >/dev/null
as_user podman --runtime runc import "$work/iperf.tar" localhost/bench-iperf >/dev/null 2>&1
as_user podman network create --subnet 10.253.0.0/24 benchnet >/dev/null

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/attach.json" \
  -n "estiba --network none" "$estiba run --rm --network none bench/busybox true" \
  -n "estiba --network bench" "$estiba run --rm --network bench bench/busybox true" \
  -n "podman --network none" "podman --runtime runc run --rm --network none localhost/bench-busybox true" \
  -n "podman --network podman" "podman --runtime runc run --rm --network podman localhost/bench-busybox true" \
  >/dev/null

serve='mkdir /www && head -c 1024 /dev/zero > /www/index.html && exec httpd -f -p 80 -h /www'
"$estiba" run -d --name bench-web --network bench -p 127.0.0.1:18581:80 bench/busybox sh -c "$serve" >/dev/null
podman --runtime runc run -d --name bench-web -p 127.0.0.1:18582:80 localhost/bench-busybox sh -c "$serve" >/dev/null
sleep 1
# The same attach while a container is already on each network: estiba's
# DNS responder for the network then runs already (the first container on a
# network starts it), as podman's aardvark-dns does.
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/attach-busy.json" \
  -n "estiba --network bench, a container already on it" "$estiba run --rm --network bench bench/busybox true" \
  -n "podman --network podman, a container already on it" "podman --runtime runc run --rm --network podman localhost/bench-busybox true" \
  >/dev/null
rps() { wrk -t2 -c16 -d10s "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
estiba_rps=$(rps 18581)
podman_rps=$(rps 18582)

# Gbit/s received, from iperf3's JSON on stdin.
gbits() { python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)'; }
results=$work/iperf.txt
: > "$results"
# measure LABEL COMMAND…: three iperf3 client runs, one line of Gbit/s each.
measure() {
  local label=$1; shift
  for _ in 1 2 3; do
    printf '%s\t%s\n' "$label" "$("$@" | gbits)" >> "$results"
  done
}
client() { echo iperf3 -c "$1" -p "${2:-5201}" -t "$secs" -J; }

# As root: container to container on one network.
"$estiba" run -d --name bench-iperf --network bench --ip 10.250.0.50 bench/iperf iperf3 -s >/dev/null
podman --runtime runc run -d --name bench-iperf --network benchnet --ip 10.251.0.50 localhost/bench-iperf iperf3 -s >/dev/null
sleep 1
measure "root bridge: estiba" "$estiba" run --rm --network bench bench/iperf $(client 10.250.0.50)
measure "root bridge: podman" podman --runtime runc run --rm --network benchnet localhost/bench-iperf $(client 10.251.0.50)

# As root: the host through a published port.
"$estiba" run -d --name bench-iperf-pub --network bench -p 127.0.0.1:18591:5201 bench/iperf iperf3 -s >/dev/null
podman --runtime runc run -d --name bench-iperf-pub -p 127.0.0.1:18592:5201 localhost/bench-iperf iperf3 -s >/dev/null
sleep 1
measure "root published port: estiba" $(client 127.0.0.1 18591)
measure "root published port: podman" $(client 127.0.0.1 18592)

# Rootless: container to container on one network.
as_user "$estiba" run -d --name bench-iperf --network bench --ip 10.252.0.50 bench/iperf iperf3 -s >/dev/null
as_user podman --runtime runc run -d --name bench-iperf --network benchnet --ip 10.253.0.50 localhost/bench-iperf iperf3 -s >/dev/null 2>&1
sleep 1
measure "rootless bridge: estiba" as_user "$estiba" run --rm --network bench bench/iperf $(client 10.252.0.50)
measure "rootless bridge: podman" as_user podman --runtime runc run --rm --network benchnet localhost/bench-iperf $(client 10.253.0.50)

# Rootless: the host through a published port. podman's default forwards
# with rootlesskit; slirp4netns's own port handler is the other choice.
as_user "$estiba" run -d --name bench-iperf-pub --network bench -p 127.0.0.1:18593:5201 bench/iperf iperf3 -s >/dev/null
as_user podman --runtime runc run -d --name bench-iperf-pub -p 127.0.0.1:18594:5201 localhost/bench-iperf iperf3 -s >/dev/null 2>&1
slirp_error=
if ! slirp_error=$(as_user podman --runtime runc run -d --name bench-iperf-slirp \
  --network slirp4netns:port_handler=slirp4netns -p 127.0.0.1:18595:5201 \
  localhost/bench-iperf iperf3 -s 2>&1 >/dev/null); then
  echo "podman with slirp4netns's port handler did not start: $slirp_error" >&2
else
  slirp_error=
fi
sleep 2
measure "rootless published port: estiba" $(client 127.0.0.1 18593)
measure "rootless published port: podman (rootlesskit)" $(client 127.0.0.1 18594)
[ -n "$slirp_error" ] || measure "rootless published port: podman (slirp4netns)" $(client 127.0.0.1 18595)

python3 - "$work/attach.json" "$estiba_rps" "$podman_rps" "$results" "$secs" "$work/attach-busy.json" > "$work/section.md" <<'PY'
import datetime, json, platform, statistics, subprocess, sys
path, erps, prps, results, secs, busy = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
med = {r["command"]: r["median"] * 1000 for r in json.load(open(path))["results"]}
med.update({r["command"]: r["median"] * 1000 for r in json.load(open(busy))["results"]})
e_attach = med["estiba --network bench"] - med["estiba --network none"]
p_attach = med["podman --network podman"] - med["podman --network none"]
e_busy = med["estiba --network bench, a container already on it"] - med["estiba --network none"]
p_busy = med["podman --network podman, a container already on it"] - med["podman --network none"]
rows = "\n".join(f"| {k} | {v:.1f} ms |" for k, v in med.items())
runs = {}
for line in open(results):
    label, value = line.rstrip("\n").split("\t")
    runs.setdefault(label, []).append(float(value))
g = {k: statistics.median(v) for k, v in runs.items()}
def row(what, peer_label, peer, estiba):
    if peer not in g:
        return f"| {what} | not measured ({peer_label} did not start) | {g[estiba]:.2f} | |"
    return f"| {what} | {g[peer]:.2f} ({peer_label}) | {g[estiba]:.2f} | {g[estiba] / g[peer]:.2f} |"
print(f"""## Networks: estiba against podman

Written by `bench/network.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC (kernel {platform.release()}, {subprocess.getoutput('nproc')} cores).
Medians from one run; compare ratios, not absolute times. As root podman uses netavark;
rootless, podman runs as a fresh user with its default slirp4netns network.

| command (`run --rm IMAGE true`, as root) | median |
|---|---:|
{rows}

| measurement (as root) | podman | estiba | estiba / podman |
|---|---:|---:|---:|
| attach overhead (bridge minus none), the network's first container | {p_attach:.1f} ms | {e_attach:.1f} ms | {e_attach / p_attach:.2f} |
| attach overhead, a container already on the network | {p_busy:.1f} ms | {e_busy:.1f} ms | {e_busy / p_busy:.2f} |
| HTTP req/s through a published port (wrk, 16 connections, 1 KiB page) | {prps:.0f} | {erps:.0f} | {erps / prps:.2f} |

iperf3, Gbit/s received, median of 3 runs of {secs} s each:

| path | peer | estiba | estiba / peer |
|---|---:|---:|---:|
{row("root: container to container, one network", "podman", "root bridge: podman", "root bridge: estiba")}
{row("root: host to container, published port", "podman", "root published port: podman", "root published port: estiba")}
{row("rootless: container to container, one network", "podman", "rootless bridge: podman", "rootless bridge: estiba")}
{row("rootless: host to container, published port", "podman, rootlesskit", "rootless published port: podman (rootlesskit)", "rootless published port: estiba")}
{row("rootless: host to container, published port", "podman, slirp4netns", "rootless published port: podman (slirp4netns)", "rootless published port: estiba")}

Issue 9's target, an attach overhead of at most 15 ms, is for the attach itself: links,
addresses and routes go through rtnetlink in-process, so it runs no process. The network's
first container also starts the network's DNS responder (`estiba internal-dns`, two starts
of the estiba binary, waiting until it listens): that is the difference between the two
attach rows.

Targets (issue 5): bridge throughput at least 0.9× podman's; published-port throughput and
requests per second at least podman's; attach overhead at most half of podman's; rootless
published-port throughput at least 2× slirp4netns's. docker is not in the table: dockerd
runs here with `--iptables=false --bridge=none`, so its bridge networks and published ports
(iptables NAT) are not there to compare.
""")
PY
bench/splice.py network docs/benchmarks.md < "$work/section.md"
sed -n '/network:begin/,/network:end/p' docs/benchmarks.md
