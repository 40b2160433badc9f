#!/usr/bin/env bash
# Services benchmark (issue 11), run by hand as root (never in CI): writes
# the `services` section of docs/benchmarks.md.
#   bench/services.sh [RUNS] [SIM_NODES] [SIM_TASKS] [BIG_NODES] [BIG_TASKS]
#   (default 3 runs; 5000 simulated nodes and 100000 tasks; the big case,
#   10000 nodes and 1000000 tasks, on SQLite only when BIG_TASKS is given)
#   PARTS="start throughput failover" (the default) picks what runs; a run
#   of fewer parts prints its tables ("-" for what did not run) and leaves
#   docs/benchmarks.md alone: the section there comes from whole runs.
# Measures, in one run:
#   - service start: a 30-replica service on three real agents, from
#     CreateService to 30 RUNNING, and a scale from 3 to 30; against
#     `docker service create --replicas 30` and `docker service scale` from
#     3 to 30 on a single-node swarm on the same machine;
#   - rolling update of 30 replicas at maximumPercent 200, until the new
#     revision alone runs, against `docker service update` at parallelism 5;
#   - scheduler throughput with simulated agents (`estiba agent-sim`),
#     placements per second persisted, on SQLite and on a three-member etcd;
#   - failover: from SIGKILL of the leading replica (of three, on etcd) to
#     another one leading, over 10 kills; and over 5 SIGSTOPs, where only
#     the leader's lease running out ends its lead.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
sim_nodes=${2:-5000}
sim_tasks=${3:-100000}
big_nodes=${4:-10000}
big_tasks=${5:-0}
all_parts="start throughput failover"
parts=${PARTS:-$all_parts}
part() { [[ " $parts " == *" $1 "* ]]; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in docker dockerd etcd python3 busybox curl; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
work=$(mktemp -d /var/tmp/esb.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "agent-sim --server http://127.0.0.1" 2>/dev/null || true
  pkill -9 -f "etcd --name m. --data-dir $work" 2>/dev/null || true
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
median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f\n", a[int((NR+1)/2)]}'; }
worst() { sort -n | tail -1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

# A control plane: serve DIR PORT STORE [FLAGS…]; its key in DIR.key.
serve() {
  local dir=$1 port=$2 store=$3; shift 3
  [ -f "$dir.key" ] || "$estiba" cluster user add bench --policy admin --data "$dir" --store "$store" > "$dir.key"
  "$estiba" --log-level warn cluster serve --data "$dir" --addr 127.0.0.1:$port --store "$store" "$@" \
    >/dev/null 2>>"$dir.log" &
  pids+=($!); last_pid=$!
  for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:$port/health && break; sleep 0.05; done
}
key_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['AccessKey'][sys.argv[2]])" "$1" "$2"; }

e_create=-; e_scale=-; e_update=-; b_create=-; b_scale=-; b_update=-; s_create=-; s_scale=-; s_update=-
if part start; then
echo "== estiba: three agents, 30-replica services" >&2
port=18640
serve "$work/cp" $port sqlite --task-healthy-after 5s
key=$(key_of "$work/cp.key" AccessKeyId); secret=$(key_of "$work/cp.key" SecretAccessKey)
token=$("$estiba" cluster token create --data "$work/cp")
for n in 0 1 2; do
  export ESTIBA_ROOT=$work/node$n/data ESTIBA_RUNROOT=$work/node$n/run
  "$estiba" import "$rootfs" 127.0.0.1:51670/busybox:latest >/dev/null
  "$estiba" agent --server http://127.0.0.1:$port --token "$token" --listen 127.0.0.1:$((port + 10 + n)) \
    --image-pull-behavior prefer-cached 2>"$work/agent$n.log" &
  pids+=($!)
  for _ in $(seq 200); do "$estiba" network ls 2>/dev/null | grep -q ecs-bridge && break; sleep 0.05; done
  unset ESTIBA_ROOT ESTIBA_RUNROOT
done
# The swarm's tasks run in the host's network (dockerd here has no bridge):
# so do estiba's, for the ratios; ECS's default, bridge, is timed too.
/usr/bin/python3 bench/services_timing.py http://127.0.0.1:$port "$key" "$secret" "$runs" host > "$work/estiba.json"
/usr/bin/python3 bench/services_timing.py http://127.0.0.1:$port "$key" "$secret" "$runs" bridge > "$work/estiba-bridge.json"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
e_create=$(field "$work/estiba.json" create); e_scale=$(field "$work/estiba.json" scale); e_update=$(field "$work/estiba.json" update)
b_create=$(field "$work/estiba-bridge.json" create); b_scale=$(field "$work/estiba-bridge.json" scale); b_update=$(field "$work/estiba-bridge.json" update)
kill -9 "${pids[@]}" 2>/dev/null || true; pids=()

echo "== docker swarm: 30 replicas" >&2
dockerd --iptables=false --bridge=none --data-root "$work/docker" --exec-root "$work/docker-exec" \
  -H "unix://$work/docker.sock" --pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
d() { docker -H "unix://$work/docker.sock" "$@"; }
for _ in $(seq 100); do d info >/dev/null 2>&1 && break; sleep 0.1; done
d import "$rootfs" bench/busybox:latest >/dev/null
d swarm init --advertise-addr 127.0.0.1 >/dev/null
running() { d service ps bench --filter desired-state=running --format '{{.CurrentState}}' 2>/dev/null | grep -c '^Running' || true; }
gone() { until [ -z "$(d ps -q)" ]; do sleep 0.1; done; }
for _ in $(seq "$runs"); do
  t0=$(now)
  d service create -d --name bench --network host --replicas 30 bench/busybox:latest sleep 3600 >/dev/null
  until [ "$(running)" -ge 30 ]; do sleep 0.05; done
  since "$t0" >> "$work/swarm_create"
  d service scale -d bench=3 >/dev/null
  until [ "$(d ps -q | wc -l)" -le 3 ]; do sleep 0.1; done
  t0=$(now)
  d service scale -d bench=30 >/dev/null
  until [ "$(running)" -ge 30 ]; do sleep 0.05; done
  since "$t0" >> "$work/swarm_scale"
  t0=$(now)
  d service update --update-parallelism 5 --args "sleep 3601" bench >/dev/null 2>&1
  since "$t0" >> "$work/swarm_update"
  d service rm bench >/dev/null; gone
done
s_create=$(median < "$work/swarm_create"); s_scale=$(median < "$work/swarm_scale"); s_update=$(median < "$work/swarm_update")
d swarm leave --force >/dev/null
kill "$(cat "$work/dockerd.pid")"; rm -f "$work/dockerd.pid"
fi

echo "== scheduler throughput with simulated agents" >&2
# One run: nodes, tasks, store, dir, port → JSON line
throughput() {
  local nodes=$1 tasks=$2 store=$3 dir=$4 port=$5
  serve "$dir" "$port" "$store" --heartbeat 60s
  local k s t
  k=$(key_of "$dir.key" AccessKeyId); s=$(key_of "$dir.key" SecretAccessKey)
  t=$("$estiba" cluster token create --data "$dir" --store "$store")
  "$estiba" --log-level warn agent-sim --server http://127.0.0.1:$port --token "$t" --nodes "$nodes" \
    --heartbeat 60s --concurrency 64 > "$dir.sim" 2>>"$dir.log" &
  pids+=($!)
  until grep -q joined "$dir.sim" 2>/dev/null; do sleep 0.5; done
  /usr/bin/python3 bench/scheduler_load.py http://127.0.0.1:$port "$k" "$s" "$tasks"
  kill -9 "${pids[@]}" 2>/dev/null || true; pids=()
  pkill -9 -f "agent-sim --server http://127.0.0.1:$port" 2>/dev/null || true
}
etcd3() {
  local base=$1 initial=""
  for i in 0 1 2; do initial="$initial${initial:+,}m$i=http://127.0.0.1:$((base + 10 + i))"; done
  for i in 0 1 2; do
    etcd --name m$i --data-dir "$work/etcd$base-$i" --quota-backend-bytes 8589934592 \
      --listen-client-urls http://127.0.0.1:$((base + i)) --advertise-client-urls http://127.0.0.1:$((base + i)) \
      --listen-peer-urls http://127.0.0.1:$((base + 10 + i)) --initial-advertise-peer-urls http://127.0.0.1:$((base + 10 + i)) \
      --initial-cluster "$initial" --initial-cluster-state new >"$work/etcd$base-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2; do
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$((base + i))/health | grep -q true && break; sleep 0.1; done
  done
  echo "etcd://127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
}
not_run='{"per_second": "not run", "seconds": "-"}'
sim_sqlite=$not_run; sim_etcd=$not_run; big_sqlite=$not_run
if part throughput; then
  sim_sqlite=$(throughput "$sim_nodes" "$sim_tasks" sqlite "$work/sim-sqlite" 18700)
  echo "SQLite: $sim_sqlite" >&2
  sim_etcd=$(throughput "$sim_nodes" "$sim_tasks" "$(etcd3 23900)" "$work/sim-etcd" 18710)
  echo "etcd: $sim_etcd" >&2
  if [ "$big_tasks" -gt 0 ]; then
    big_sqlite=$(throughput "$big_nodes" "$big_tasks" sqlite "$work/big-sqlite" 18720)
    echo "SQLite, big: $big_sqlite" >&2
  fi
fi

f_median=-; f_worst=-; z_median=-; z_worst=-
if part failover; then
echo "== failover: 10 leader kills among three replicas on etcd" >&2
store=$(etcd3 24000)
for r in 0 1 2; do
  serve "$work/ha" $((18800 + r)) "$store"
  eval "replica_$r=$last_pid"
done
# grep, not a python start per probe: the probes' own time is in the figure.
leading() { curl -sf "http://127.0.0.1:$1/leader" | grep -q '"leading":true' && echo True || echo False; }
# kill: SIGKILL, the followers' death watch sees the process gone; freeze:
# SIGSTOP, the process still holds its port, so only the lease ends its lead.
for how in kill kill kill kill kill kill kill kill kill kill freeze freeze freeze freeze freeze; do
  for _ in $(seq 200); do
    leader=""
    for r in 0 1 2; do [ "$(leading $((18800 + r)))" = True ] && leader=$r; done
    [ -n "$leader" ] && break; sleep 0.05
  done
  eval "victim=\$replica_$leader"
  t0=$(now)
  if [ "$how" = kill ]; then kill -9 "$victim"; else kill -STOP "$victim"; fi
  next=""
  until [ -n "$next" ]; do
    for r in 0 1 2; do [ "$r" != "$leader" ] && [ "$(leading $((18800 + r)))" = True ] && next=$r; done
    sleep 0.02
  done
  since "$t0" >> "$work/failover-$how"
  kill -9 "$victim" 2>/dev/null || true
  serve "$work/ha" $((18800 + leader)) "$store"
  eval "replica_$leader=$last_pid"
done
f_median=$(median < "$work/failover-kill"); f_worst=$(worst < "$work/failover-kill")
z_median=$(median < "$work/failover-freeze"); z_worst=$(worst < "$work/failover-freeze")
fi

ratio() { python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.1f}×')" "$1" "$2" 2>/dev/null || echo -; }
j() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
{
  echo "## Services: estiba against docker swarm"
  echo
  echo "\`bench/services.sh $runs $sim_nodes $sim_tasks $big_nodes $big_tasks\`, $(date -u +%Y-%m-%d), $(nproc) cores. Medians of $runs runs; ratios compare times from this one run."
  echo
  echo "### Service start and rolling update (three estiba agents; a single-node swarm)"
  echo
  echo "Both run their tasks in the host's network (swarm's here has no bridge); estiba's with ECS's default, bridge, are in the last column."
  echo
  echo "| | estiba | docker swarm | swarm's time over estiba's | estiba, bridge network |"
  echo "|---|---|---|---|---|"
  echo "| create 30 replicas → 30 RUNNING | ${e_create} s | ${s_create} s | $(ratio "$e_create" "$s_create") | ${b_create} s |"
  echo "| scale 3 → 30 → 30 RUNNING | ${e_scale} s | ${s_scale} s | $(ratio "$e_scale" "$s_scale") | ${b_scale} s |"
  echo "| rolling update of 30 (estiba: maximumPercent 200, tasks healthy after 5 s; swarm: parallelism 5, its 5 s monitor; both stop with a 10 s grace, which sleep waits out) | ${e_update} s | ${s_update} s | $(ratio "$e_update" "$s_update") | ${b_update} s |"
  echo
  echo "Target: service start at least 5× faster than swarm."
  echo
  echo "### Scheduler throughput, simulated agents (placements persisted per second)"
  echo
  echo "| nodes | tasks | store | placements/s | seconds |"
  echo "|---|---|---|---|---|"
  echo "| $sim_nodes | $sim_tasks | SQLite | $(j "$sim_sqlite" per_second) | $(j "$sim_sqlite" seconds) |"
  echo "| $sim_nodes | $sim_tasks | etcd, three members | $(j "$sim_etcd" per_second) | $(j "$sim_etcd" seconds) |"
  echo "| $big_nodes | $big_tasks | SQLite | $(j "$big_sqlite" per_second) | $(j "$big_sqlite" seconds) |"
  echo
  echo "Anchors: kube-scheduler's scheduler_perf 680–810 pods/s at 5,000 nodes; Nomad's C1M about 3,750 containers/s on 5 servers. Target: 20,000 placements/s with SQLite, 1,000,000 tasks in under 60 s."
  echo
  echo "### Failover (three replicas on a three-member etcd, --leader-ttl 2s)"
  echo
  echo "| to another replica leading | median | worst |"
  echo "|---|---|---|"
  echo "| 10 SIGKILLs of the leader (the others' death watch sees it gone) | ${f_median} s | ${f_worst} s |"
  echo "| 5 SIGSTOPs of the leader (frozen, its port still open: the lease runs out) | ${z_median} s | ${z_worst} s |"
  echo
  echo "Target: at most 3 s."
} > "$work/section.md"
if [ "$parts" = "$all_parts" ]; then
  python3 bench/splice.py services docs/benchmarks.md < "$work/section.md"
  echo "wrote the services section of docs/benchmarks.md" >&2
else
  cat "$work/section.md"
  echo "PARTS=$parts: docs/benchmarks.md left as it was" >&2
fi
