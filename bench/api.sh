#!/usr/bin/env bash
# The Docker Engine API benchmark, run by hand as root (never in CI): the same
# docker CLI (Debian's 20.10) and docker-compose against estiba's socket
# (`estiba system service`), dockerd and `podman system service`, in one run.
# Compare ratios within one run; absolute times on these machines are noisy.
#   bench/api.sh [RUNS]      (default 20 runs per command)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine podman dockerd docker-compose; do command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }; done
docker=/usr/bin/docker
cargo build --release --locked -q
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
work=$(mktemp -d /tmp/estiba-api-bench.XXXX)
runroot=$(mktemp -d /run/estiba-api-bench.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 2
  umount -R "$work"/docker/* 2>/dev/null || true
  rm -rf "$work" "$runroot"
}
trap cleanup EXIT
export ESTIBA_ROOT=$work/estiba ESTIBA_RUNROOT=$runroot

scripts/busybox-rootfs.sh "$work/busybox.tar"
"$estiba" import "$work/busybox.tar" busybox >/dev/null

# estiba's socket.
"$estiba" system service --timeout 0 "unix://$work/estiba.sock" >"$work/estiba.log" 2>&1 &
estiba_pid=$!
pids+=("$estiba_pid")

# dockerd, as the tests start it here.
mkdir -p "$work/docker"
dockerd --iptables=false --bridge=none -H "unix://$work/docker/sock" --data-root "$work/docker/data" \
  --exec-root "$work/docker/exec" --pidfile "$work/docker/pid" >"$work/docker/log" 2>&1 &
dockerd_pid=$!
pids+=("$dockerd_pid")

# podman's service (runc: crun refuses this host's hybrid cgroups).
podman --runtime runc system service --time 0 "unix://$work/podman.sock" >"$work/podman.log" 2>&1 &
podman_pid=$!
pids+=("$podman_pid")

declare -A sock=([estiba]="$work/estiba.sock" [dockerd]="$work/docker/sock" [podman]="$work/podman.sock")
for peer in estiba dockerd podman; do
  for _ in $(seq 120); do DOCKER_HOST="unix://${sock[$peer]}" $docker version >/dev/null 2>&1 && break; sleep 0.5; done
done
DOCKER_HOST="unix://${sock[dockerd]}" $docker import "$work/busybox.tar" busybox:latest >/dev/null
DOCKER_HOST="unix://${sock[podman]}" $docker import "$work/busybox.tar" busybox:latest >/dev/null
sleep 5
# Idle resident memory of each server (dockerd's containerd included).
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
estiba_rss=$(rss "$estiba_pid")
dockerd_rss=$(( $(rss "$dockerd_pid") + $(for p in $(pgrep -P "$dockerd_pid" -x containerd); do rss "$p"; done | awk '{s += $1} END {print s + 0}') ))
podman_rss=$(rss "$podman_pid")

json=$work/start.json
hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" \
  -n "estiba" "env DOCKER_HOST=unix://${sock[estiba]} $docker run --rm --network none busybox true" \
  -n "dockerd" "env DOCKER_HOST=unix://${sock[dockerd]} $docker run --rm --network none busybox true" \
  -n "podman system service" "env DOCKER_HOST=unix://${sock[podman]} $docker run --rm --network none busybox true" \
  >/dev/null

project=$work/project
mkdir -p "$project"
cat > "$project/docker-compose.yml" <<'YML'
version: "3.8"
services:
  db:
    image: busybox
    command: ["sh", "-c", "exec sleep 300"]
    environment:
      ROLE: database
    volumes:
      - data:/data
  web:
    image: busybox
    command: ["sh", "-c", "exec sleep 300"]
    environment:
      ROLE: frontend
    depends_on:
      - db
volumes:
  data:
YML
json2=$work/compose.json
compose() { echo "env DOCKER_HOST=unix://$1 docker-compose -p bench -f $project/docker-compose.yml"; }
hyperfine -N --warmup 1 --runs "$(( runs < 10 ? runs : 10 ))" --export-json "$json2" \
  -n "estiba" "sh -c '$(compose "${sock[estiba]}") up -d >/dev/null 2>&1 && $(compose "${sock[estiba]}") down -v -t 1 >/dev/null 2>&1'" \
  -n "dockerd" "sh -c '$(compose "${sock[dockerd]}") up -d >/dev/null 2>&1 && $(compose "${sock[dockerd]}") down -v -t 1 >/dev/null 2>&1'" \
  -n "podman system service" "sh -c '$(compose "${sock[podman]}") up -d >/dev/null 2>&1 && $(compose "${sock[podman]}") down -v -t 1 >/dev/null 2>&1'" \
  >/dev/null
# `up -d` alone, each run from nothing: the servers' own work, without the
# stop timeouts that `down` waits out (sh as pid 1 ignores SIGTERM, and
# compose stops web before db).
json3=$work/compose-up.json
hyperfine -N --runs "$(( runs < 10 ? runs : 10 ))" --export-json "$json3" \
  --prepare "sh -c '$(compose "${sock[estiba]}") down -v -t 0 >/dev/null 2>&1'" \
  -n "estiba" "sh -c '$(compose "${sock[estiba]}") up -d >/dev/null 2>&1'" \
  --prepare "sh -c '$(compose "${sock[dockerd]}") down -v -t 0 >/dev/null 2>&1'" \
  -n "dockerd" "sh -c '$(compose "${sock[dockerd]}") up -d >/dev/null 2>&1'" \
  --prepare "sh -c '$(compose "${sock[podman]}") down -v -t 0 >/dev/null 2>&1'" \
  -n "podman system service" "sh -c '$(compose "${sock[podman]}") up -d >/dev/null 2>&1'" \
  >/dev/null
for peer in estiba dockerd podman; do sh -c "$(compose "${sock[$peer]}") down -v -t 0" >/dev/null 2>&1 || true; done

python3 - "$json" "$json2" "$json3" "$estiba_rss" "$dockerd_rss" "$podman_rss" <<'PY' | ./bench/splice.py api docs/benchmarks.md
import json, sys, datetime, platform, subprocess
start, compose, compose_up, e_rss, d_rss, p_rss = sys.argv[1:7]
def table(path):
    rs = json.load(open(path))["results"]
    med = {r["command"]: r["median"] for r in rs}
    out = ["| server | median | ratio to estiba |", "|---|---:|---:|"]
    for r in rs:
        out.append("| %s | %.1f ms | %.2f× |" % (r["command"], r["median"] * 1000, r["median"] / med["estiba"]))
    return "\n".join(out)
print(f"""## The Docker Engine API (`bench/api.sh`)

Written on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC (kernel {platform.release()}, {subprocess.getoutput('nproc')} cores), one run,
the same docker CLI (Debian's 20.10) against each server.

### `docker run --rm --network none busybox true`

{table(start)}

### `docker-compose up -d` then `down -v` (two services, a named volume, depends_on)

{table(compose)}

### `docker-compose up -d` alone (each run after a `down -v -t 0`)

{table(compose_up)}

### Idle resident memory of the API server

| server | VmRSS |
|---|---:|
| estiba system service | {int(e_rss) / 1024:.1f} MiB |
| dockerd (with its containerd) | {int(d_rss) / 1024:.1f} MiB |
| podman system service | {int(p_rss) / 1024:.1f} MiB |
""")
PY
echo "wrote the api section of docs/benchmarks.md"
