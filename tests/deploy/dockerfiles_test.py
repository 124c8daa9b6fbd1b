#!/usr/bin/python3
"""Checks the Dockerfiles in deploy/docker/ against the repository, offline: every COPY
source exists in the build context and is not excluded by .dockerignore, every script a RUN
names is in the repository and was copied into the image before that RUN, and each image
is multi-stage, runs as a non-root user with a HEALTHCHECK and takes models from /models.
Usage: dockerfiles_test.py REPO_ROOT"""
import fnmatch
import json
import os
import re
import shlex
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
DOCKER = os.path.join(ROOT, "deploy/docker")
errors = []


def error(path, line, message):
    errors.append(f"{os.path.relpath(path, ROOT)}:{line}: {message}")


def instructions(path):
    """(line number, INSTRUCTION, argument text) with continuations joined."""
    out, buf, start = [], "", 0
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if buf and line.lstrip().startswith("#"):
                continue  # comment lines inside a continued instruction
            if not buf:
                start = n
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            word, _, rest = buf.strip().partition(" ")
            out.append((start, word.upper(), rest.strip()))
            buf = ""
    return out


def dockerignore_patterns():
    path = os.path.join(ROOT, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def ignored(rel, patterns):
    parts = rel.split("/")
    return any(fnmatch.fnmatch("/".join(parts[:i]), p) for p in patterns for i in range(1, len(parts) + 1))


def split_flags(args):
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = {w.split("=", 1)[0]: (w.split("=", 1) + [""])[1] for w in words if w.startswith("--")}
    return flags, [w for w in words if not w.startswith("--")]


def check(path):
    patterns = dockerignore_patterns()
    stages, copied, final = [], set(), {}
    for line, word, args in instructions(path):
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", args, re.I)
            stages.append(m.group(1) if m else str(len(stages)))
            copied, final = set(), {"from": args}
        elif word in ("COPY", "ADD"):
            flags, words = split_flags(args)
            if len(words) < 2:
                error(path, line, f"{word} needs a source and a destination")
                continue
            if "--from" in flags:
                if flags["--from"] not in stages:
                    error(path, line, f"COPY --from={flags['--from']}: no earlier stage of that name")
                continue
            if stages[-1] == "prebuilt":
                continue  # its build context is an install tree, not the repository
            for src in words[:-1]:
                rel = os.path.normpath(src)
                if not os.path.exists(os.path.join(ROOT, rel)):
                    error(path, line, f"COPY source '{src}' does not exist in the repository")
                elif rel != "." and ignored(rel, patterns):
                    error(path, line, f"COPY source '{src}' is excluded by .dockerignore")
                copied.add(rel)
        elif word == "RUN":
            for script in re.findall(r"(?<![\w/$.-])((?:\./)?[\w./-]+\.sh)\b", args):
                rel = os.path.normpath(script)
                if rel.startswith("/"):
                    continue  # a path inside the image, not the repository
                if not os.path.isfile(os.path.join(ROOT, rel)):
                    error(path, line, f"RUN names '{script}', which is not in the repository")
                elif not any(c == "." or rel == c or rel.startswith(c + "/") for c in copied):
                    error(path, line, f"RUN names '{script}' before any COPY brings it into the image")
        elif word in ("USER", "HEALTHCHECK", "VOLUME", "CMD", "ARG"):
            final.setdefault(word, []).append(args)
    if len(stages) < 2:
        error(path, 1, "expected a multi-stage build (a build stage and a runtime stage)")
    user = (final.get("USER") or ["root"])[-1]
    if user.split(":")[0] in ("root", "0"):
        error(path, 1, f"the final stage runs as '{user}': expected a non-root USER")
    if not final.get("HEALTHCHECK") or final["HEALTHCHECK"][-1].upper().startswith("NONE"):
        error(path, 1, "the final stage has no HEALTHCHECK")
    if not any("/models" in v for v in final.get("VOLUME", [])):
        error(path, 1, "the final stage declares no /models volume")
    return final


for name in ("Dockerfile", "Dockerfile.cuda", "Dockerfile.spark"):
    if not os.path.exists(os.path.join(DOCKER, name)):
        errors.append(f"deploy/docker/{name}: missing")
finals = {n: check(os.path.join(DOCKER, n)) for n in sorted(os.listdir(DOCKER)) if n.startswith("Dockerfile")
          and not n.endswith(".dockerignore")}

# The CPU image answers its HEALTHCHECK from the coordinator's /healthz.
cpu = finals.get("Dockerfile", {})
if not any("/healthz" in h for h in cpu.get("HEALTHCHECK", [])):
    errors.append("deploy/docker/Dockerfile: the HEALTHCHECK does not ask the coordinator's /healthz")
# The GPU images build on NVIDIA's PyTorch container with a CUDA architectures build arg.
for name, arch in (("Dockerfile.cuda", "90;100;120;121"), ("Dockerfile.spark", "121")):
    text = open(os.path.join(DOCKER, name)).read()
    if "nvcr.io/nvidia/pytorch:" not in text:
        errors.append(f"deploy/docker/{name}: not based on NVIDIA's PyTorch container")
    if f'ARG CUDA_ARCHS="{arch}"' not in text or "CMAKE_CUDA_ARCHITECTURES=\"$CUDA_ARCHS\"" not in text:
        errors.append(f"deploy/docker/{name}: no CUDA_ARCHS build arg (default {arch}) passed to CMake")
if "linux/arm64" not in open(os.path.join(DOCKER, "Dockerfile.spark")).read():
    errors.append("deploy/docker/Dockerfile.spark: not an arm64 image")

# CI and the CPU image build with the same script: .ci/run -> deploy/test.sh ->
# deploy/setup.sh -> deploy/build.sh, and the CPU Dockerfile runs deploy/build.sh.
chain = [(".ci/run", "deploy/test.sh"), ("deploy/test.sh", "deploy/setup.sh"),
         ("deploy/setup.sh", "bash deploy/build.sh"), ("deploy/docker/Dockerfile", "bash deploy/build.sh")]
for path, needle in chain:
    with open(os.path.join(ROOT, path)) as f:
        if needle not in f.read():
            errors.append(f"{path}: does not run {needle} (the image and CI would build differently)")

for e in errors:
    print("dockerfiles:", e)
print(f"dockerfiles: {len(finals)} Dockerfiles checked, {len(errors)} problems")
sys.exit(1 if errors else 0)
