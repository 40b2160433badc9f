#!/usr/bin/env python3
"""Writes one section of docs/benchmarks.md and keeps the others.

    splice.py SECTION FILE < section.md

Sections sit between `<!-- SECTION:begin -->` and `<!-- SECTION:end -->`
markers, in a fixed order, so bench/run.sh (section `runtime`) and
bench/registry.sh (section `registry`) can each rewrite their own tables.
A file without markers is taken as the `runtime` section.
"""
import re
import sys

ORDER = ["runtime", "registry", "network", "cluster", "cluster_notes", "services", "services_notes", "audit", "api", "api_notes"]
name, path = sys.argv[1], sys.argv[2]
new = sys.stdin.read().strip() + "\n"
try:
    old = open(path).read()
except FileNotFoundError:
    old = ""
sections = dict(re.findall(r"<!-- (\w+):begin -->\n(.*?)<!-- \1:end -->", old, re.S))
if old and not sections:
    body = old.split("\n", 1)[1] if old.startswith("# Benchmarks") else old
    sections["runtime"] = body.strip() + "\n"
sections[name] = new
out = ["# Benchmarks\n"]
for s in ORDER + sorted(set(sections) - set(ORDER)):
    if s in sections:
        out.append(f"<!-- {s}:begin -->\n{sections[s]}<!-- {s}:end -->\n")
open(path, "w").write("\n".join(out))
