#!/usr/bin/env bash
# Benchmarks, run by hand as root (never in CI): times estiba side by side
# with runc, podman and docker in one run and writes docs/benchmarks.md.
# Compare ratios within one run; absolute times on these machines are noisy.
#   bench/run.sh [RUNS]      (default 30 runs per command)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine runc podman dockerd docker busybox; do command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }; done
cargo build --release --locked -q
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
work=$(mktemp -d /tmp/estiba-bench.XXXX)
dockerd_pid=
cleanup() {
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null && sleep 2
  umount -R "$work"/docker/* 2>/dev/null || true
  umount "$work/tmpfs" 2>/dev/null || true
  rm -rf "$work"
  if [ -n "${runroot:-}" ]; then rm -rf "$runroot"; fi
}
trap cleanup EXIT
# The runroot on a tmpfs, as estiba's default (/run/estiba) is.
runroot=$(mktemp -d /run/estiba-bench.XXXX)
export ESTIBA_ROOT=$work/estiba ESTIBA_RUNROOT=$runroot

scripts/busybox-rootfs.sh "$work/busybox.tar"
"$estiba" import "$work/busybox.tar" bench/busybox >/dev/null

# Bare runc on a prepared bundle of the same rootfs.
mkdir -p "$work/bundle/rootfs"
tar -xf "$work/busybox.tar" -C "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)

# runc on estiba's own spec (seccomp profile, cgroup limits, masked paths), to
# separate what the secure defaults cost runc from what estiba adds.
"$estiba" run --rm --runtime runc bench/busybox sleep 3 &
for _ in $(seq 100); do ls "$ESTIBA_RUNROOT"/containers/*/bundle/config.json >/dev/null 2>&1 && break; sleep 0.05; done
mkdir -p "$work/bundle-estiba"
python3 - "$(ls "$ESTIBA_RUNROOT"/containers/*/bundle/config.json | head -1)" "$work/bundle/rootfs" > "$work/bundle-estiba/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["root"]["path"] = sys.argv[2]
spec["process"]["args"] = ["true"]
spec["mounts"] = [m for m in spec["mounts"] if not m["destination"].startswith("/etc/")]
spec["linux"].pop("cgroupsPath", None)
print(json.dumps(spec))
PY
wait

# podman (runc; crun refuses this host's hybrid cgroups).
podman --runtime runc import "$work/busybox.tar" localhost/bench-busybox >/dev/null

# docker, with its own daemon.
mkdir -p "$work/docker"
dockerd --iptables=false --bridge=none -H "unix://$work/docker/sock" --data-root "$work/docker/data" \
  --exec-root "$work/docker/exec" --pidfile "$work/docker/pid" >"$work/docker/log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 120); do docker -H "unix://$work/docker/sock" version >/dev/null 2>&1 && break; sleep 0.5; done
docker -H "unix://$work/docker/sock" import "$work/busybox.tar" bench-busybox >/dev/null

json=$work/run.json
hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" \
  -n "runc run (bare, prepared bundle)" "sh -c 'runc run -b $work/bundle bench-\$\$'" \
  -n "runc run (prepared bundle, estiba's spec)" "sh -c 'runc run -b $work/bundle-estiba bench-\$\$'" \
  -n "estiba run --rm (runc backend)" "$estiba run --rm --runtime runc bench/busybox true" \
  -n "estiba run --rm (in-process libcontainer, default)" "$estiba run --rm bench/busybox true" \
  -n "podman run --rm" "podman --runtime runc run --rm --network none localhost/bench-busybox true" \
  -n "docker run --rm" "docker -H unix://$work/docker/sock run --rm --network none bench-busybox true" \
  >/dev/null

# Detached lifecycle: a `run -d` + `rm -f` cycle.
json3=$work/cycle.json
hyperfine -N --warmup 2 --runs "$(( runs < 20 ? runs : 20 ))" --export-json "$json3" \
  -n "estiba run -d + rm -f" "sh -c 'id=\$($estiba run -d bench/busybox sleep 1000) && $estiba rm -f \$id >/dev/null'" \
  -n "podman run -d + rm -f" "sh -c 'id=\$(podman --runtime runc run -d --network none localhost/bench-busybox sleep 1000) && podman rm -f -t 0 \$id >/dev/null'" \
  -n "docker run -d + rm -f" "sh -c 'id=\$(docker -H unix://$work/docker/sock run -d --network none bench-busybox sleep 1000) && docker -H unix://$work/docker/sock rm -f \$id >/dev/null'" \
  >/dev/null

# Resident memory of the per-container monitors of N idle detached containers.
idle=${IDLE:-100}
for i in $(seq "$idle"); do "$estiba" run -d bench/busybox sleep 1000 >/dev/null; done
estiba_rss=$(python3 - "$ESTIBA_ROOT" <<'PY'
import glob, json, sys
total = 0
for f in glob.glob(sys.argv[1] + "/containers/*/container.json"):
    state = json.load(open(f))["State"]
    if state["Status"] != "running":
        continue
    try:
        for line in open(f"/proc/{state['MonitorPid']}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    except OSError:
        pass
print(total)
PY
)
"$estiba" ps -q | xargs -r "$estiba" rm -f >/dev/null || echo "some containers were not removed" >&2
for i in $(seq "$idle"); do podman --runtime runc run -d --network none localhost/bench-busybox sleep 1000 >/dev/null; done
conmon_rss=$(for p in $(pgrep -x conmon); do cat /proc/$p/status; done | awk '/^VmRSS:/ {s += $2} END {print s + 0}')
podman rm -f -t 0 -a >/dev/null

# A rebuild with nothing changed, against podman build (buildah) on the same file.
bctx=$work/build-context
mkdir -p "$bctx"
echo data > "$bctx/data.txt"
cat > "$bctx/Containerfile" <<'CF'
FROM bench-base
RUN echo built > /built && mkdir -p /app
COPY data.txt /app/
ENV MODE=bench
CMD ["cat", "/built"]
CF
"$estiba" tag bench/busybox bench-base
podman tag localhost/bench-busybox localhost/bench-base
"$estiba" build -q -t bench/rebuild "$bctx" >/dev/null
podman build --runtime runc --network none -q -t localhost/bench-rebuild "$bctx" >/dev/null
json4=$work/rebuild.json
hyperfine -N --warmup 2 --runs "$(( runs < 20 ? runs : 20 ))" --export-json "$json4" \
  -n "estiba build (no change)" "$estiba build -q -t bench/rebuild $bctx" \
  -n "podman build (no change)" "podman build --runtime runc --network none -q -t localhost/bench-rebuild $bctx" \
  >/dev/null

# Layer unpack: estiba's safe unpacker against GNU tar on the same layer, on a
# tmpfs: this VM's disk varies 2x between runs, which hides the unpackers.
mkdir -p "$work/tmpfs"
mount -t tmpfs -o size=2g tmpfs "$work/tmpfs"
layer=$work/tmpfs/layer.tar
tar -cf "$layer" -C /usr lib/python3.11 share/perl 2>/dev/null || tar -cf "$layer" -C /usr share
json2=$work/unpack.json
out=$work/tmpfs/out
hyperfine -N --warmup 2 --runs "$(( runs < 20 ? runs : 20 ))" --export-json "$json2" \
  --prepare "rm -rf $out" \
  -n "tar -xf" "sh -c 'mkdir -p $out && tar -xf $layer -C $out'" \
  -n "estiba unpack" "$estiba debug-unpack $layer $out" \
  >/dev/null
layer_size=$(du -sh "$layer" | cut -f1)
layer_entries=$(tar -tf "$layer" | wc -l)
umount "$work/tmpfs"

python3 - "$json" "$json2" "$layer_size" "$layer_entries" "$json3" "$idle" "$estiba_rss" "$conmon_rss" "$json4" > "$work/section.md" <<'PY'
import json, sys, datetime, platform, subprocess
run, unpack, size, entries, cycle, idle, estiba_rss, conmon_rss, rebuild = sys.argv[1:10]
def table(path, base, second=None):
    rs = json.load(open(path))["results"]
    med = {r["command"]: r["median"] for r in rs}
    bases = [base] + ([second] if second else [])
    out = ["| command | median | " + " | ".join("ratio to %s" % b for b in bases) + " |",
           "|---|---:|" + "---:|" * len(bases)]
    for r in rs:
        ratios = " | ".join("%.2f×" % (r["median"] / med[b]) for b in bases)
        out.append("| %s | %.1f ms | %s |" % (r["command"], r["median"] * 1000, ratios))
    return "\n".join(out), med
spec_row = "runc run (prepared bundle, estiba's spec)"
t1, m1 = table(run, "runc run (bare, prepared bundle)", spec_row)
t2, m2 = table(unpack, "tar -xf")
kernel = platform.release()
print(f"""Written by `bench/run.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC (kernel {kernel}, {subprocess.getoutput('nproc')} cores).
Medians from hyperfine in one run; compare ratios, not absolute times.

## Container start: `run --rm IMAGE true`

{t1}

Targets (issue 9), against `runc run` on the same spec: the in-process backend at most 0.5×
(crun's class; measured {m1['estiba run --rm (in-process libcontainer, default)'] / m1[spec_row]:.2f}×), the runc
backend at most 1.3× (measured {m1['estiba run --rm (runc backend)'] / m1[spec_row]:.2f}×). Issue 2's: at least 5× faster than
podman (podman / estiba = {m1['podman run --rm'] / m1['estiba run --rm (in-process libcontainer, default)']:.1f}×).

"bare" runs `runc spec`'s default config, which has no seccomp profile and no cgroup limits.
"estiba's spec" is the same bundle with the config estiba generates: Docker's seccomp profile,
the pids limit, masked paths. The difference between those two rows is what the secure
defaults cost runc; the difference between "estiba's spec" and "estiba run --rm (runc
backend)" is what estiba itself adds (image lookup, overlay mount, bundle, cleanup).

Where the time goes (perf, 20 runs of the in-process `run --rm IMAGE true`, 2026-12-01;
instrumented phases in the same build):
- estiba's own work is about 10 ms: process start (exec, relocations and page faults of a
  13.5 MiB text, clap) about 4 ms; `create` about 2 ms; the private mount namespace and the
  overlay mount (overlayfs probes its workdir with files of its own) about 1 ms; the bundle
  about 2 ms (0.6 ms of it resolving Docker's seccomp profile); cleanup 1 to 2 ms. ext4
  inode allocation (`recently_deleted`) was a fifth of estiba's own CPU: the bundle now
  lives on the runroot's tmpfs, auto-removed containers' overlays are `volatile` and their
  records and the bundle are not fsynced, and a foreground run as root builds its container
  in the CLI process instead of re-executing a helper.
- The rest is libcontainer's: run alone on estiba's spec it measures about 0.75× `runc run`.
  On this hybrid-cgroup host its intermediate process parses /proc/self/mountinfo once per
  v1 controller (about 5% of all samples), and its init compiles Docker's seccomp profile
  with libseccomp (about 1.5 ms). libcontainer takes no precompiled filter, so a BPF cache
  cannot be handed to it; that, and the cgroup lookups, would need changes to libcontainer.
- So the 0.5× target is missed: it would need libcontainer's own path to drop to about a
  third of runc's. The runc backend adds estiba's 10 ms and one more process to `runc run`.

## Layer unpack ({size}, {entries} entries, on a tmpfs)

{t2}

Target: at most 1.2× `tar -xf`. estiba also hashes the whole stream to check the layer's
diff id (on a second thread); tar does not.

## Detached lifecycle: `run -d` then `rm -f`

{table(cycle, "podman run -d + rm -f")[0]}

## Monitors of {idle} idle detached containers (resident memory, VmRSS)

| monitor | total | per container |
|---|---:|---:|
| estiba-monitor | {int(estiba_rss) / 1024:.1f} MiB | {int(estiba_rss) / int(idle):.0f} KiB |
| podman's conmon | {int(conmon_rss) / 1024:.1f} MiB | {int(conmon_rss) / int(idle):.0f} KiB |

## Rebuild with nothing changed

{table(rebuild, "podman build (no change)")[0]}

Targets (issue 3): ahead of podman on the cycle and the rebuild; a monitor of at most 2 MiB,
below conmon.
""")
PY
bench/splice.py runtime docs/benchmarks.md < "$work/section.md"
cat docs/benchmarks.md
