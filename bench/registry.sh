#!/usr/bin/env bash
# Registry benchmark, run by hand as root (never in CI): estiba's registry
# side by side with distribution 2.8.2 (Debian's docker-registry), both on the
# same disk, driven by skopeo; tag-list requests per second with wrk; each
# server's peak memory. Writes the `registry` section of docs/benchmarks.md.
# Compare ratios within one run; absolute times on these machines are noisy.
#   bench/registry.sh [RUNS]      (default 5 runs per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine skopeo docker-registry wrk curl python3; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q
estiba=$PWD/target/release/estiba
work=$(mktemp -d /var/tmp/estiba-regbench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

python3 bench/oci_image.py "$work/big" 1 100
python3 bench/oci_image.py "$work/ten" 10 10

printf '[[policy]]\nrepositories = "*"\nanonymous = true\nactions = ["pull", "push", "delete"]\n[gc]\ninterval_secs = 0\n[lifecycle]\ninterval_secs = 0\n' > "$work/estiba.toml"
"$estiba" registry serve --root "$work/estiba" --addr 127.0.0.1:5101 --config "$work/estiba.toml" 2>"$work/estiba.log" &
pids+=($!); estiba_pid=$!
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:5102\n' "$work/dist" > "$work/dist.yml"
docker-registry serve "$work/dist.yml" 2>"$work/dist.log" &
pids+=($!); dist_pid=$!
for port in 5101 5102; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
done

# skopeo remembers where blobs live and would mount instead of uploading.
nocache="rm -f /var/lib/containers/cache/blob-info-cache-v1.sqlite"
wipe_estiba="$nocache; rm -rf $work/estiba/blobs $work/estiba/repositories $work/estiba/uploads"
wipe_dist="$nocache; rm -rf $work/dist/docker"
push() { # IMAGE HOST PARALLEL
  echo "for i in \$(seq $3); do skopeo copy -q --dest-tls-verify=false oci:$work/$1:latest docker://$2/bench/$1\$i:1 & done; wait"
}
pull() { # IMAGE HOST PARALLEL
  echo "for i in \$(seq $3); do skopeo copy -q --src-tls-verify=false docker://$2/bench/${1}1:1 dir:$work/out-$1-\$i & done; wait"
}
# CPU time (ms) a server has used so far: the clients share these 2 cores,
# so this shows the servers' own cost apart from skopeo's.
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; }
measure() { # NAME, then hyperfine's arguments
  local name=$1; shift
  local d0 e0; d0=$(cpu_ms "$dist_pid"); e0=$(cpu_ms "$estiba_pid")
  hyperfine --runs "$runs" --export-json "$work/$name.json" "$@" >/dev/null
  echo "$(( ($(cpu_ms "$dist_pid") - d0) / runs )) $(( ($(cpu_ms "$estiba_pid") - e0) / runs ))" > "$work/$name.cpu"
}
for image in big ten; do
  for par in 1 16; do
    measure "push-$image-$par" \
      -n "distribution" --prepare "$wipe_dist" "sh -c '$(push $image 127.0.0.1:5102 $par)'" \
      -n "estiba" --prepare "$wipe_estiba" "sh -c '$(push $image 127.0.0.1:5101 $par)'"
    # Something to pull.
    sh -c "$(push $image 127.0.0.1:5102 1)"; sh -c "$(push $image 127.0.0.1:5101 1)"
    measure "pull-$image-$par" \
      -n "distribution" --prepare "$nocache; rm -rf $work/out-*" "sh -c '$(pull $image 127.0.0.1:5102 $par)'" \
      -n "estiba" --prepare "$nocache; rm -rf $work/out-*" "sh -c '$(pull $image 127.0.0.1:5101 $par)'"
  done
done

# A repository with 1,000 tags, then tag-list requests per second.
python3 - <<'PY'
import hashlib, json, urllib.request
for port in (5101, 5102):
    base = f"http://127.0.0.1:{port}/v2/bench/tags"
    def req(method, url, data=b"", ctype="application/octet-stream"):
        r = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
        return urllib.request.urlopen(r)
    layer = b"one small layer"
    ld = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
    d = "sha256:" + hashlib.sha256(config).hexdigest()
    for blob, digest in ((config, d), (layer, ld)):
        # POST then PUT: the flow every client speaks.
        loc = req("POST", f"{base}/blobs/uploads/").headers["Location"]
        loc = loc if loc.startswith("http") else f"http://127.0.0.1:{port}{loc}"
        req("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={digest}", blob)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}]}).encode()
    for i in range(1000):
        req("PUT", f"{base}/manifests/tag-{i:04d}", m, "application/vnd.oci.image.manifest.v1+json")
PY
rps() { wrk -t2 -c32 -d10s "http://127.0.0.1:$1/v2/bench/tags/tags/list" | awk '/Requests\/sec/ {print $2}'; }
dist_rps=$(rps 5102)
estiba_rps=$(rps 5101)
peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
dist_mem=$(peak "$dist_pid")
estiba_mem=$(peak "$estiba_pid")

python3 - "$work" "$dist_rps" "$estiba_rps" "$dist_mem" "$estiba_mem" > "$work/section.md" <<'PY'
import datetime, json, platform, subprocess, sys
work, dist_rps, estiba_rps, dist_mem, estiba_mem = sys.argv[1:6]
sizes = {"big": 100, "ten": 100}
names = {"big": "1 × 100 MiB layer", "ten": "10 × 10 MiB layers"}
rows = []
for op in ("push", "pull"):
    for image in ("big", "ten"):
        for par in (1, 16):
            rs = {r["command"]: r["median"] for r in json.load(open(f"{work}/{op}-{image}-{par}.json"))["results"]}
            dcpu, ecpu = (int(x) for x in open(f"{work}/{op}-{image}-{par}.cpu").read().split())
            mib = sizes[image] * par
            d, e = mib / rs["distribution"], mib / rs["estiba"]
            rows.append(f"| skopeo {op}, {names[image]}, concurrency {par} | {rs['distribution']:.2f} s, {d:.0f} MiB/s | {rs['estiba']:.2f} s, {e:.0f} MiB/s | {e / d:.2f}× | {dcpu} ms | {ecpu} ms |")
print(f"""## Registry: estiba against distribution 2.8.2

Written by `bench/registry.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC (kernel {platform.release()}, {subprocess.getoutput('nproc')} cores).
Both servers on 127.0.0.1, their roots on the same disk; medians from hyperfine; skopeo's
blob-location cache is cleared before each run so it uploads rather than mounts. Concurrency
16 is 16 skopeo processes at once, each with its own repository; throughput counts all of them.

Throughput is whole-run wall time, skopeo included; "server CPU" is the CPU time each server
process used per run (the clients run on the same 2 cores).

| measurement | distribution 2.8.2 | estiba | throughput, estiba / distribution | server CPU, distribution | server CPU, estiba |
|---|---:|---:|---:|---:|---:|
""" + "\n".join(rows) + f"""
| tag list, 1,000 tags (wrk, 32 connections) | {float(dist_rps):.0f} req/s | {float(estiba_rps):.0f} req/s | {float(estiba_rps) / float(dist_rps):.2f}× | | |
| server peak memory (VmHWM) | {int(dist_mem) / 1024:.1f} MiB | {int(estiba_mem) / 1024:.1f} MiB | memory {int(estiba_mem) / int(dist_mem):.2f}× | | |

Target (issue 4): at least 1.5× distribution's throughput, with no more memory.
""")
PY
bench/splice.py registry docs/benchmarks.md < "$work/section.md"
sed -n '/registry:begin/,/registry:end/p' docs/benchmarks.md
