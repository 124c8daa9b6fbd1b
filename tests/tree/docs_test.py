#!/usr/bin/env python3
"""The README and docs/openapi.yaml stay in step with the code: every docs/*.md is in the
README's documentation list, the README's sampler and schedule lists are the proto's enums,
and the OpenAI route's sampler enum offers every sampler.
Usage: docs_test.py SOURCE_DIR"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def proto_enum(proto, name, prefix):
    """The value names of `enum name`, lowercased without their prefix, UNSPECIFIED left out."""
    body = re.search(r"enum %s \{(.*?)\}" % name, proto, re.S).group(1)
    values = re.findall(r"^\s*%s_(\w+)\s*=" % prefix, body, re.M)
    return [v.lower() for v in values if v != "UNSPECIFIED"]


def readme_list(readme, label):
    """The backticked names right after `label:` in the README, e.g. "Samplers: `a`, `b`"."""
    found = re.search(r"%s:\s*((?:`\w+`[,\s]*)+)" % label, readme)
    return re.findall(r"`(\w+)`", found.group(1)) if found else []


def main():
    problems = []
    readme, proto = read("README.md"), read("proto/spriteforge/v1/spriteforge.proto")
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.endswith(".md") and f"`docs/{name}`" not in readme:
            problems.append(f"README.md: docs/{name} is missing from the documentation list")
    samplers = proto_enum(proto, "Sampler", "SAMPLER")
    for label, expected in (("Samplers", samplers), ("schedules", proto_enum(proto, "Schedule", "SCHEDULE"))):
        listed = readme_list(readme, label)
        if listed != expected:
            problems.append(f"README.md: {label} lists {listed}, the proto has {expected}")
    openapi = read("docs/openapi.yaml")
    offered = re.search(r"^\s+sampler: \{enum: \[([a-z_0-9, ]+)\], description: spriteforge extension\}", openapi, re.M)
    if not offered or [s.strip() for s in offered.group(1).split(",")] != samplers:
        problems.append(f"docs/openapi.yaml: the OpenAI sampler enum is not {samplers}")
    for needed in ("  /stats:", "scheme: bearer"):
        if needed not in openapi:
            problems.append(f"docs/openapi.yaml: no {needed.strip()}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
