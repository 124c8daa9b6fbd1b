#!/usr/bin/python3
"""Checks the arm64 cross-build against the rest of the repository, offline: the sysroot gets
every library package deploy/setup.sh installs (less LibTorch and libFuzzer), every program
and test program deploy/cross/arm64.sh builds is a CMake target, its toolchain file exists,
and CI runs it after the main tests.
Usage: cross_test.py REPO_ROOT"""
import glob
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
SCRIPT = "deploy/cross/arm64.sh"
errors = []


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def bash_array(text, name, path):
    match = re.search(rf"^{name}=\(([^)]*)\)", text, re.M)
    if not match:
        errors.append(f"{path}: no {name}=(...) list")
        return []
    return re.sub(r"#.*", "", match.group(1)).split()


script = read(SCRIPT)
setup_packages = bash_array(read("deploy/setup.sh"), "PACKAGES", "deploy/setup.sh")
arm64_packages = set(bash_array(script, "ARM64_PACKAGES", SCRIPT))
not_cross = {"libtorch-dev", "libfuzzer-14-dev"}  # the engine and the fuzzers are not cross-built
for package in setup_packages:
    if package.endswith("-dev") and package not in not_cross and package not in arm64_packages:
        errors.append(f"{SCRIPT}: ARM64_PACKAGES lacks {package}, which deploy/setup.sh installs")

targets = set()
for path in glob.glob(os.path.join(ROOT, "**/CMakeLists.txt"), recursive=True):
    with open(path) as f:
        targets.update(re.findall(r"add_executable\(\s*([\w-]+)", f.read()))
for name in ("PROGRAMS", "TESTS"):
    for target in bash_array(script, name, SCRIPT):
        if target not in targets:
            errors.append(f"{SCRIPT}: {name} names {target}, which no CMakeLists.txt builds")

toolchain = re.search(r"CMAKE_TOOLCHAIN_FILE=\"\$PWD/([^\"]+)\"", script)
if not toolchain or not os.path.isfile(os.path.join(ROOT, toolchain.group(1))):
    errors.append(f"{SCRIPT}: its CMAKE_TOOLCHAIN_FILE is not a file in the repository")
if "-DSPRITEFORGE_WITH_ENGINE=OFF" not in script:
    errors.append(f"{SCRIPT}: does not leave the LibTorch engine out")

ci = read(".ci/run")
main, cross = ci.find("deploy/test.sh"), ci.find(SCRIPT)
if cross < 0:
    errors.append(f".ci/run: does not run {SCRIPT}")
elif main < 0 or cross < main:
    errors.append(f".ci/run: runs {SCRIPT} before the main tests (deploy/test.sh)")

for e in errors:
    print("cross:", e)
print(f"cross: {len(arm64_packages)} arm64 packages, {len(errors)} problems")
sys.exit(1 if errors else 0)
