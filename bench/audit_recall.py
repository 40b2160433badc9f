#!/usr/bin/env python3
"""Recall of `estiba audit containerfile` against hadolint and checkov on
the same files: each peer finding is mapped onto estiba's rule ids (through
the catalog's hadolint references, and a table for checkov's ids), and must
be among estiba's findings for that file.

  audit_recall.py ESTIBA FILE... → prints JSON
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

estiba, files = sys.argv[1], sys.argv[2:]
scratch = tempfile.mkdtemp()
catalog = json.loads(subprocess.run([estiba, "audit", "rules", "--format", "json"],
                                    check=True, capture_output=True, text=True).stdout)
by_hadolint = {}
for r in catalog:
    if r["target"] == "containerfile":
        for h in r["hadolint"]:
            by_hadolint.setdefault(h, set()).add(r["id"])
# checkov's Dockerfile checks, by what they catch (checkov/dockerfile/checks).
by_checkov = {
    "CKV_DOCKER_1": {"ESB-F-011"},  # port 22 exposed
    "CKV_DOCKER_2": {"ESB-F-013"},  # no HEALTHCHECK
    "CKV_DOCKER_3": {"ESB-F-001"},  # no USER
    "CKV_DOCKER_4": {"ESB-F-003", "ESB-F-014"},  # ADD (of a file or URL; of an archive)
    "CKV_DOCKER_5": {"ESB-F-010"},  # update alone
    "CKV_DOCKER_7": {"ESB-F-004"},  # latest tag
    "CKV_DOCKER_8": {"ESB-F-002"},  # last USER root
    "CKV2_DOCKER_1": {"ESB-F-005"},  # sudo
}
for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16):
    by_checkov.setdefault(f"CKV2_DOCKER_{n}", {"ESB-F-009"})  # verification turned off


def estiba_rules(path):
    out = subprocess.run([estiba, "audit", "containerfile", path, "--format", "json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return {f["rule"] for f in json.loads(out.stdout)["findings"]}


def hadolint(path):
    out = subprocess.run(["hadolint", "-f", "json", "--no-fail", path], capture_output=True, text=True)
    return {f["code"] for f in json.loads(out.stdout or "[]")}


def checkov(path):
    # checkov knows a Dockerfile by its name only.
    named = os.path.join(scratch, os.path.basename(path).rsplit(".", 1)[0] + ".Dockerfile")
    shutil.copyfile(path, named)
    out = subprocess.run(["checkov", "-f", named, "--framework", "dockerfile", "-o", "json",
                          "--compact", "--skip-download"], capture_output=True, text=True)
    try:
        doc = json.loads(out.stdout)
    except json.JSONDecodeError:
        return set()
    docs = doc if isinstance(doc, list) else [doc]
    return {c["check_id"] for d in docs for c in d.get("results", {}).get("failed_checks", [])}


result = {}
for peer, run, table in (("hadolint", hadolint, by_hadolint), ("checkov", checkov, by_checkov)):
    mapped = found = 0
    missed, unmapped, extra = [], set(), set()
    for path in files:
        ours = estiba_rules(path)
        if ours is None:
            continue
        theirs_mapped = set()
        for code in run(path):
            ids = table.get(code)
            if not ids:
                unmapped.add(code)
                continue
            mapped += 1
            theirs_mapped |= ids
            if ids & ours:
                found += 1
            else:
                missed.append(f"{path}: {code}")
        extra |= ours - theirs_mapped
    result[peer] = {"mapped": mapped, "found": found, "missed": missed,
                    "unmapped_codes": sorted(unmapped), "estiba_extra_rules": sorted(extra)}
print(json.dumps(result))
