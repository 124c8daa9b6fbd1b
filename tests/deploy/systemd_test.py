#!/usr/bin/python3
"""Checks deploy/systemd/: the coordinator unit and the per-GPU worker template. Installs the
build into a temporary prefix, points the units at it and runs `systemd-analyze verify`
(any warning fails); where systemd-analyze is missing, parses the units instead. Either
way: restart policies, environment files, every variable ExecStart uses has a default,
and the worker template runs on GPU %i.
Usage: systemd_test.py SOURCE_DIR BUILD_DIR"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

SRC, BUILD = sys.argv[1], sys.argv[2]
UNITS = os.path.join(SRC, "deploy/systemd")
INSTALLED = "/opt/spriteforge"
errors = []


def parse(path):
    """{section: [(key, value)]} with continuation lines joined."""
    sections, section, pending = {}, None, ""
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("["):
                section = stripped.strip("[]")
                sections.setdefault(section, [])
            elif "=" in stripped and section:
                key, value = stripped.split("=", 1)
                sections[section].append((key.strip(), value.strip()))
            else:
                errors.append(f"{os.path.basename(path)}:{n}: not a key=value line: {stripped}")
    return sections


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def check_unit(name, unit, program):
    for section in ("Unit", "Service", "Install"):
        if section not in unit:
            errors.append(f"{name}: no [{section}] section")
    exec_start = " ".join(values(unit, "Service", "ExecStart"))
    if not exec_start.startswith(f"{INSTALLED}/bin/{program} "):
        errors.append(f"{name}: ExecStart does not run {INSTALLED}/bin/{program}: {exec_start}")
    restart = values(unit, "Service", "Restart")
    if not restart or restart[-1] not in ("on-failure", "always"):
        errors.append(f"{name}: expected Restart=on-failure or always, got {restart}")
    if not values(unit, "Service", "EnvironmentFile"):
        errors.append(f"{name}: no EnvironmentFile")
    if not values(unit, "Service", "User") or values(unit, "Service", "User")[-1] == "root":
        errors.append(f"{name}: runs as root")
    # Each ${VAR}/$VAR in ExecStart has a default, so an empty environment file still starts.
    defined = set()
    for assignment in values(unit, "Service", "Environment"):
        defined.update(w.split("=", 1)[0] for w in shlex.split(assignment))  # systemd quotes like a shell
    for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", exec_start):
        if var not in defined:
            errors.append(f"{name}: ExecStart uses ${var}, which no Environment= line defines")
    return exec_start


coordinator = parse(os.path.join(UNITS, "spriteforge-coordinator.service"))
worker = parse(os.path.join(UNITS, "spriteforge-worker@.service"))
check_unit("spriteforge-coordinator.service", coordinator, "spriteforge-coordinator")
worker_exec = check_unit("spriteforge-worker@.service", worker, "spriteforge-worker")
if "--device cuda:%i" not in worker_exec:
    errors.append("spriteforge-worker@.service: the worker does not run on GPU %i (--device cuda:%i)")
if not any("%i" in v for v in values(worker, "Service", "EnvironmentFile")):
    errors.append("spriteforge-worker@.service: no per-GPU EnvironmentFile (worker-%i.env)")
for env in ("coordinator.env", "worker.env"):
    if not os.path.exists(os.path.join(UNITS, env)):
        errors.append(f"deploy/systemd/{env}: missing example environment file")



def systemd_env_value(raw):
    """The value systemd's EnvironmentFile= reads from the text after "=": leading blanks
    dropped, quotes removed, and everything else kept, "#" included (no inline comments)."""
    value = raw.lstrip()
    if value[:1] in ("'", '"') and value.rstrip().endswith(value[0]) and len(value.rstrip()) > 1:
        return value.rstrip()[1:-1]
    return value.rstrip()


def program_variables(program):
    """The SPRITEFORGE_* variables the program reads (its --help says "Env:NAME")."""
    path = os.path.join(BUILD, {"spriteforge-coordinator": "coordinator", "spriteforge-worker": "worker"}[program],
                        program)
    if not os.path.exists(path):
        return None
    text = subprocess.run([path, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"Env:(SPRITEFORGE_[A-Z0-9_]+)", text))


def check_env_file(name, unit, program):
    """Each setting, commented out or not, reads as intended once uncommented: no inline
    comment in its value, and a variable the unit or the program uses."""
    known = program_variables(program)
    for assignment in values(unit, "Service", "Environment"):
        for word in shlex.split(assignment):
            if known is not None:
                known.add(word.split("=", 1)[0])
    settings = 0
    with open(os.path.join(UNITS, name)) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.rstrip("\n"))
            if not m:
                continue
            settings += 1
            key, value = m.group(1), systemd_env_value(m.group(2))
            if "#" in value:
                errors.append(f"{name}:{n}: {key}'s value would carry a comment into the program: {value!r}")
            if not value:
                errors.append(f"{name}:{n}: {key} has no example value")
            if known is not None and key not in known:
                errors.append(f"{name}:{n}: neither the unit nor {program} reads {key}")
    if not settings:
        errors.append(f"{name}: no settings")


def default(unit, var):
    for assignment in values(unit, "Service", "Environment"):
        for word in shlex.split(assignment):
            if word.startswith(var + "="):
                return word.split("=", 1)[1]
    return None


check_env_file("coordinator.env", coordinator, "spriteforge-coordinator")
check_env_file("worker.env", worker, "spriteforge-worker")
# Out of the box the two units pair: the coordinator on loopback in plaintext (no TLS or
# token files to provide first), the worker dialling that address.
listen = default(coordinator, "SPRITEFORGE_LISTEN") or ""
if not listen.startswith("127.0.0.1:"):
    errors.append(f"spriteforge-coordinator.service: listens on {listen!r} by default, not loopback")
if default(worker, "SPRITEFORGE_COORDINATOR") != listen:
    errors.append(f"spriteforge-worker@.service: dials {default(worker, 'SPRITEFORGE_COORDINATOR')!r}, "
                  f"the coordinator unit listens on {listen!r}")
for var in ("SPRITEFORGE_SECURITY_ARGS", "SPRITEFORGE_COORDINATOR_ARGS"):
    if default(coordinator, var):
        errors.append(f"spriteforge-coordinator.service: {var} is not empty by default: needs files first")

analyze = shutil.which("systemd-analyze")
mode = "parsed"
if analyze:
    mode = "verified with systemd-analyze"
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "prefix")
        subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True, capture_output=True)
        # Programs not built here (the worker without the engine) get a stand-in of that name.
        for program in ("spriteforge-coordinator", "spriteforge-worker"):
            path = os.path.join(prefix, "bin", program)
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write("#!/bin/sh\n")
                os.chmod(path, 0o755)
        for unit, instance in (("spriteforge-coordinator.service", "spriteforge-coordinator.service"),
                               ("spriteforge-worker@.service", "spriteforge-worker@0.service")):
            with open(os.path.join(UNITS, unit)) as f:
                text = f.read().replace(INSTALLED, prefix)
            with open(os.path.join(tmp, instance), "w") as f:
                f.write(text)
            run = subprocess.run([analyze, "verify", os.path.join(tmp, instance)], capture_output=True, text=True,
                                 cwd=tmp)
            output = (run.stdout + run.stderr).strip()
            if run.returncode != 0 or output:
                errors.append(f"{unit}: systemd-analyze verify: {output or 'exit ' + str(run.returncode)}")

for e in errors:
    print("systemd:", e)
print(f"systemd: 2 units {mode}, {len(errors)} problems")
sys.exit(1 if errors else 0)
