#!/usr/bin/env bash
# Cluster benchmark, run by hand as root (never in CI): writes the `cluster`
# section of docs/benchmarks.md.
#   bench/cluster.sh [TASKS] [PEER_RUNS]     (default 100 estiba tasks, 20 peer runs)
# Measures, in one run:
#   - RunTask → RUNNING of a one-container busybox task whose image is present
#     (p50, p99), against `docker service create --replicas 1` on a single-node
#     swarm until `docker service ps` shows Running, and `podman kube play` of
#     the same pod;
#   - idle memory (VmRSS) of the control plane and of three agents running 30
#     tasks, against dockerd (+ containerd) in swarm mode running 30 replicas;
#   - the store: CAS puts per second and put → watch latency, SQLite and etcd
#     (one member and three), on the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-100}
peer_runs=${2:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in docker dockerd podman etcd python3 busybox; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q
cargo build --release --locked -q -p estiba-state --example store_bench
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
store_bench=$PWD/target/release/examples/store_bench
work=$(mktemp -d /var/tmp/ecb.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  docker -H "unix://$work/docker.sock" service rm bench >/dev/null 2>&1 || true
  docker -H "unix://$work/docker.sock" swarm leave --force >/dev/null 2>&1 || true
  if [ -f "$work/dockerd.pid" ]; then
    dpid=$(cat "$work/dockerd.pid"); kill "$dpid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  fi
  pkill -9 -f "containerd-shim-runc-v2.*$work" 2>/dev/null || true
  for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  for n in 0 1 2; do
    export ESTIBA_ROOT=$work/node$n/data ESTIBA_RUNROOT=$work/node$n/run
    "$estiba" rm -f $("$estiba" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    # The agent's metadata pod holds an address on ecs-bridge.
    for pod in $("$estiba" pod ls 2>/dev/null | awk 'NR > 1 {print $1}'); do
      "$estiba" pod rm -f "$pod" >/dev/null 2>&1 || true
    done
    "$estiba" network rm ecs-bridge >/dev/null 2>&1 || true
  done
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/busybox.tar
scripts/busybox-rootfs.sh "$rootfs"

median_p99() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; p=a[int(NR*0.99+0.999)]; if (p=="") p=a[NR]; printf "%.0f %.0f\n", m, p}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "== estiba: control plane, three agents" >&2
port=18540
"$estiba" cluster user add bench --policy admin --data "$work/cp" > "$work/key.json"
key=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['AccessKey']['AccessKeyId'])" "$work/key.json")
secret=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['AccessKey']['SecretAccessKey'])" "$work/key.json")
"$estiba" cluster serve --data "$work/cp" --addr 127.0.0.1:$port 2>"$work/cp.log" &
pids+=($!); cp_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/health && break; sleep 0.05; done
token=$("$estiba" cluster token create --data "$work/cp")
agent_pids=()
for n in 0 1 2; do
  export ESTIBA_ROOT=$work/node$n/data ESTIBA_RUNROOT=$work/node$n/run
  "$estiba" import "$rootfs" 127.0.0.1:51670/busybox:latest >/dev/null
  "$estiba" agent --server http://127.0.0.1:$port --token "$token" --listen 127.0.0.1:$((port + 10 + n)) \
    --image-pull-behavior prefer-cached 2>"$work/agent$n.log" &
  pids+=($!); agent_pids+=($!)
  # One at a time: agents on one host pick their bridge subnets from the
  # host's routes, and must not pick the same one.
  for _ in $(seq 200); do "$estiba" network ls 2>/dev/null | grep -q ecs-bridge && break; sleep 0.05; done
  unset ESTIBA_ROOT ESTIBA_RUNROOT
done
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1
aws_ecs() { /usr/bin/aws --endpoint-url http://127.0.0.1:$port ecs "$@"; }
aws_ecs register-task-definition --family bench --container-definitions \
  '[{"name":"main","image":"127.0.0.1:51670/busybox:latest","memory":16,"command":["sleep","3600"]}]' >/dev/null

echo "== estiba: RunTask → RUNNING, $tasks tasks" >&2
/usr/bin/python3 bench/cluster_tasks.py http://127.0.0.1:$port "$key" "$secret" bench "$tasks" > "$work/estiba.ms"
read -r e50 e99 < <(median_p99 < "$work/estiba.ms")

echo "== estiba: idle memory with 30 tasks on three agents" >&2
for _ in 1 2 3; do aws_ecs run-task --task-definition bench --count 10 >/dev/null; done
for _ in $(seq 600); do
  running=$(aws_ecs list-tasks --desired-status RUNNING --query 'length(taskArns)' --output text)
  [ "$running" -ge 30 ] && break; sleep 0.2
done
sleep 5
cp_rss=$(rss_kib "$cp_pid")
agent_rss=0
for p in "${agent_pids[@]}"; do agent_rss=$((agent_rss + $(rss_kib "$p"))); done
agent_rss=$((agent_rss / 3))

echo "== docker swarm: service create --replicas 1 → Running, $peer_runs runs" >&2
dockerd --iptables=false --bridge=none --data-root "$work/docker" --exec-root "$work/docker-exec" \
  -H "unix://$work/docker.sock" --pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
d() { docker -H "unix://$work/docker.sock" "$@"; }
for _ in $(seq 100); do d info >/dev/null 2>&1 && break; sleep 0.1; done
d import "$rootfs" bench/busybox:latest >/dev/null
d swarm init --advertise-addr 127.0.0.1 >/dev/null
for _ in $(seq "$peer_runs"); do
  t0=$(date +%s%N)
  d service create -d --name bench --network host bench/busybox:latest sleep 3600 >/dev/null
  until d service ps bench --format '{{.CurrentState}}' 2>/dev/null | grep -q '^Running'; do sleep 0.01; done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
  d service rm bench >/dev/null
  until [ -z "$(d ps -q)" ]; do sleep 0.05; done
done > "$work/swarm.ms"
read -r s50 s99 < <(median_p99 < "$work/swarm.ms")
d service create -d --name bench --network host --replicas 30 bench/busybox:latest sleep 3600 >/dev/null
for _ in $(seq 600); do [ "$(d ps -q | wc -l)" -ge 30 ] && break; sleep 0.2; done
sleep 5
dockerd_rss=$(rss_kib "$(cat "$work/dockerd.pid")")
containerd_pid=$(pgrep -f "containerd --config $work/docker-exec" | head -1 || true)
[ -z "$containerd_pid" ] && containerd_pid=$(pgrep -P "$(cat "$work/dockerd.pid")" containerd | head -1 || true)
containerd_rss=$([ -n "$containerd_pid" ] && rss_kib "$containerd_pid" || echo 0)
d service rm bench >/dev/null

echo "== podman kube play of the same pod, $peer_runs runs" >&2
podman import "$rootfs" localhost/bench-busybox:latest >/dev/null
cat > "$work/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: bench
spec:
  containers:
  - name: main
    image: localhost/bench-busybox:latest
    command: ["/bin/sleep", "3600"]
YAML
podman pod rm -f bench >/dev/null 2>&1 || true
for _ in $(seq "$peer_runs"); do
  t0=$(date +%s%N)
  podman kube play --network none "$work/pod.yaml" >/dev/null
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
  podman kube down "$work/pod.yaml" >/dev/null
done > "$work/podman.ms"
read -r p50 p99 < <(median_p99 < "$work/podman.ms")

echo "== the store" >&2
sqlite=$("$store_bench" "sqlite:$work/store.db")
etcd_one() {
  local dir=$1 c=$2 p=$3
  etcd --name m0 --data-dir "$dir" --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p \
    --initial-cluster m0=http://127.0.0.1:$p >"$dir.log" 2>&1 &
  pids+=($!)
}
etcd_one "$work/etcd1" 23790 23800
for _ in $(seq 100); do curl -sf http://127.0.0.1:23790/health | grep -q true && break; sleep 0.1; done
etcd1=$("$store_bench" etcd://127.0.0.1:23790)
initial=m0=http://127.0.0.1:23811,m1=http://127.0.0.1:23812,m2=http://127.0.0.1:23813
for i in 0 1 2; do
  c=$((23821 + i)); p=$((23811 + i))
  etcd --name m$i --data-dir "$work/etcd3-$i" --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p \
    --initial-cluster "$initial" --initial-cluster-state new >"$work/etcd3-$i.log" 2>&1 &
  pids+=($!)
done
for c in 23821 23822 23823; do
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$c/health | grep -q true && break; sleep 0.1; done
done
etcd3=$("$store_bench" etcd://127.0.0.1:23821,127.0.0.1:23822,127.0.0.1:23823)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}×')" "$1" "$2"; }
mib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1024:.1f} MiB')" "$1"; }
{
  echo "## Cluster: estiba against docker swarm and podman"
  echo
  echo "\`bench/cluster.sh $tasks $peer_runs\`, $(date -u +%Y-%m-%d), $(nproc) cores. Ratios compare times from this one run."
  echo
  echo "### Task start: RunTask → RUNNING (one busybox container, image present)"
  echo
  echo "| | p50 | p99 | estiba's p50 against it |"
  echo "|---|---|---|---|"
  echo "| estiba (SQLite, three agents; $tasks tasks, boto3 polling every 5 ms) | $e50 ms | $e99 ms | 1.00× |"
  echo "| docker swarm: \`service create --replicas 1\` → \`service ps\` Running ($peer_runs runs) | $s50 ms | $s99 ms | $(ratio "$e50" "$s50") |"
  echo "| \`podman kube play\` of the same pod ($peer_runs runs) | $p50 ms | $p99 ms | $(ratio "$e50" "$p50") |"
  echo
  echo "Targets: p99 at most 300 ms, and at least 10× faster than swarm."
  echo
  echo "### Idle memory (VmRSS) with 30 tasks running"
  echo
  echo "| | resident |"
  echo "|---|---|"
  echo "| estiba control plane | $(mib "$cp_rss") |"
  echo "| estiba agent (mean of three, 10 tasks each) | $(mib "$agent_rss") |"
  echo "| dockerd in swarm mode, 30 replicas | $(mib "$dockerd_rss") |"
  echo "| containerd beside it | $(mib "$containerd_rss") |"
  echo
  echo "Targets: at most 40 MiB for the control plane and 20 MiB per agent."
  echo
  echo "### The store: CAS puts from one client, and put → watch latency (same disk)"
  echo
  echo "| backend | puts/s | watch p50 | watch p99 |"
  echo "|---|---|---|---|"
  echo "| SQLite (WAL, synchronous = FULL) | $(field "$sqlite" puts_per_sec) | $(field "$sqlite" watch_p50_ms) ms | $(field "$sqlite" watch_p99_ms) ms |"
  echo "| etcd, one member | $(field "$etcd1" puts_per_sec) | $(field "$etcd1" watch_p50_ms) ms | $(field "$etcd1" watch_p99_ms) ms |"
  echo "| etcd, three members | $(field "$etcd3" puts_per_sec) | $(field "$etcd3" watch_p50_ms) ms | $(field "$etcd3" watch_p99_ms) ms |"
} | python3 bench/splice.py cluster docs/benchmarks.md
echo "wrote the cluster section of docs/benchmarks.md" >&2
