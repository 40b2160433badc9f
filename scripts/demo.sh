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
reg=$(mktemp -d)
regpid=
trap 'rm -f "$rootfs"; [ -n "$regpid" ] && kill "$regpid"; rm -rf "$reg"' EXIT
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

echo "== registry: alice pushes as root, the rootless user pulls anonymously and runs it"
cat > "$reg/registry.toml" <<'TOML'
[[policy]]
repositories = "demo/*"
users = ["alice"]
actions = ["pull", "push"]

[[policy]]
repositories = "demo/*"
anonymous = true
actions = ["pull"]
TOML
echo alice-demo-password | estiba registry user add alice --password-stdin --root "$reg/root"
estiba registry serve --root "$reg/root" --addr 127.0.0.1:5050 --config "$reg/registry.toml" 2>"$reg/log" &
regpid=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:5050/health && break; sleep 0.1; done
echo alice-demo-password | HOME=$reg estiba login --tls-verify=false -u alice --password-stdin 127.0.0.1:5050
HOME=$reg estiba push --tls-verify=false busybox:demo 127.0.0.1:5050/demo/busybox:1
runuser -u estiba-demo -- env -i HOME=/home/estiba-demo PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  XDG_RUNTIME_DIR=/tmp/estiba-demo-run sh -c "estiba pull -q --tls-verify=false 127.0.0.1:5050/demo/busybox:1 >/dev/null && estiba run --rm 127.0.0.1:5050/demo/busybox:1 echo 'pulled from estiba registry, running rootless'"

echo "== networks, rootless: a web server found by name, and published on the host's 127.0.0.1:18089"
demo_user() {
  runuser -u estiba-demo -- env -i HOME=/home/estiba-demo PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    XDG_RUNTIME_DIR=/tmp/estiba-demo-run "$@"
}
demo_user estiba rm -f demo-web >/dev/null 2>&1 || true
demo_user estiba network rm demo-net >/dev/null 2>&1 || true
demo_user estiba network create demo-net --subnet 10.99.0.0/24 >/dev/null
demo_user estiba run -d --name demo-web --network demo-net -p 127.0.0.1:18089:80 busybox:demo \
  sh -c 'mkdir /www && echo "hello from demo-web" > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
demo_user estiba run --rm --network demo-net busybox:demo \
  sh -c 'nslookup demo-web | grep -A1 "Name:"; printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 demo-web 80 | tail -1'
echo "curl from the host: $(curl -s --retry 5 --retry-connrefused http://127.0.0.1:18089/)"
demo_user estiba rm -f demo-web >/dev/null
demo_user estiba network rm demo-net >/dev/null

echo "== cluster: a control plane and this machine as a node; an ECS task definition run as written"
cdata=$(mktemp -d)
trap 'estiba cluster down --data "$cdata" >/dev/null 2>&1 || true; rm -f "$rootfs"; [ -n "$regpid" ] && kill "$regpid"; rm -rf "$reg" "$cdata"' EXIT
# The shared task definition names an image no registry here serves: the
# node gets it under that name, and its agent uses what it has.
estiba import "$rootfs" 127.0.0.1:51670/busybox:latest >/dev/null
eval "$(ECS_IMAGE_PULL_BEHAVIOR=prefer-cached estiba cluster up --data "$cdata" --addr 127.0.0.1:18440 | grep '^export ')"
taskdef=../shared/data/ecs-task-definitions/ecs-agent-granular-stop-timeout.json
[ -f "$taskdef" ] || taskdef=docs/examples/granular-stop-timeout.json
aws() { /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL_ECS" "$@"; }
aws ecs register-task-definition --cli-input-json "file://$taskdef" --query 'taskDefinition.taskDefinitionArn' --output text
task=$(aws ecs run-task --task-definition ecsftest-container-granular-stop-timeout --query 'tasks[0].taskArn' --output text)
aws ecs wait tasks-running --tasks "$task"
aws ecs describe-tasks --tasks "$task" --query 'tasks[0].{task: taskArn, lastStatus: lastStatus, containers: containers[].[name, lastStatus]}' --output json
estiba task stop "$task" >/dev/null
aws ecs wait tasks-stopped --tasks "$task"
echo "logs of the stopped task (dependency2 caught its SIGTERM; dependency1 had 2 s and was killed):"
estiba task logs "$task"
estiba task describe "$task" | head -20
estiba cluster down --data "$cdata"
