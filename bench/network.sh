#!/usr/bin/env bash
# Network benchmark, run by hand as root (never in CI): estiba's bridge
# networks side by side with podman's (netavark) in one run. Measures the
# time a network attach adds to `run --rm IMAGE true`, and HTTP requests
# per second through a published port (wrk against busybox httpd, from the
# host's 127.0.0.1). Writes the `network` section of docs/benchmarks.md.
#   bench/network.sh [RUNS]      (default 20 runs per command)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine podman wrk nft busybox; do command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }; done
cargo build --release --locked -q
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
work=$(mktemp -d /tmp/estiba-netbench.XXXX)
export ESTIBA_ROOT=$work/estiba ESTIBA_RUNROOT=$work/estiba-run
cleanup() {
  "$estiba" rm -f bench-web >/dev/null 2>&1 || true
  "$estiba" network rm bench >/dev/null 2>&1 || true
  podman rm -f bench-web >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

scripts/busybox-rootfs.sh "$work/busybox.tar"
"$estiba" import "$work/busybox.tar" bench/busybox >/dev/null
"$estiba" network create bench --subnet 10.250.0.0/24 >/dev/null
podman --runtime runc import "$work/busybox.tar" localhost/bench-busybox >/dev/null

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
rps() { wrk -t2 -c16 -d10s "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
estiba_rps=$(rps 18581)
podman_rps=$(rps 18582)

python3 - "$work/attach.json" "$estiba_rps" "$podman_rps" > "$work/section.md" <<'PY'
import datetime, json, platform, subprocess, sys
path, erps, prps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
med = {r["command"]: r["median"] * 1000 for r in json.load(open(path))["results"]}
e_attach = med["estiba --network bench"] - med["estiba --network none"]
p_attach = med["podman --network podman"] - med["podman --network none"]
rows = "\n".join(f"| {k} | {v:.1f} ms |" for k, v in med.items())
print(f"""## Networks: estiba against podman (netavark)

Written by `bench/network.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC (kernel {platform.release()}, {subprocess.getoutput('nproc')} cores).
Medians from hyperfine in one run; compare ratios, not absolute times.

| command (`run --rm IMAGE true`) | median |
|---|---:|
{rows}

| measurement | podman | estiba | ratio |
|---|---:|---:|---:|
| attach overhead (bridge minus none) | {p_attach:.1f} ms | {e_attach:.1f} ms | estiba / podman {e_attach / p_attach:.2f} |
| HTTP req/s through a published port (wrk, 16 connections, 1 KiB page) | {prps:.0f} | {erps:.0f} | estiba / podman {erps / prps:.2f} |

Targets (issue 5): attach overhead at most half of podman's; published-port requests per
second at least podman's. Not measured yet: iperf3 between containers and through a published
port, and rootless.
""")
PY
bench/splice.py network docs/benchmarks.md < "$work/section.md"
sed -n '/network:begin/,/network:end/p' docs/benchmarks.md
