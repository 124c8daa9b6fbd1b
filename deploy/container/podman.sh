# Sourced by the scripts in deploy/container/: podman with the settings that let it run on
# the machines CI uses. Defines PODMAN (an array) and RUN_LIMITS.
# runc, not crun: crun refuses hosts with cgroups in hybrid (v1 + v2) mode.
PODMAN=(podman)
command -v runc >/dev/null && PODMAN+=(--runtime "$(command -v runc)")
# podman raises the open-file and process limits by default, which a root without
# CAP_SYS_RESOURCE (a container or a VM sandbox) may not: take the shell's, lower.
RUN_LIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=30000:30000")
