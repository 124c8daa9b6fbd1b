#!/usr/bin/env bash
# Prints the Debian packages that own the shared libraries the installed programs and
# libraries under PREFIX load, one a line: the runtime image installs exactly these.
# Usage: deploy/docker/runtime-packages.sh [--skip-unowned] PREFIX
#   --skip-unowned: libraries no package owns (PyTorch's, CUDA's in an NGC image) are
#   left to the base image instead of being an error.
set -euo pipefail
SKIP_UNOWNED=0
[ "${1:-}" = "--skip-unowned" ] && { SKIP_UNOWNED=1; shift; }
PREFIX="${1:?usage: runtime-packages.sh [--skip-unowned] PREFIX}"
[ -d "$PREFIX/bin" ] || { echo "runtime-packages: $PREFIX/bin: no such folder" >&2; exit 2; }
PREFIX="$(cd "$PREFIX" && pwd -P)"

mapfile -t files < <(find "$PREFIX/bin" "$PREFIX/lib" -type f \( -perm -u+x -o -name '*.so*' \) 2>/dev/null)
# Direct dependencies only (DT_NEEDED), where the loader finds them: apt brings the rest.
mapfile -t libs < <(for f in "${files[@]}"; do
  needed="$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' || true)"
  [ -n "$needed" ] || continue  # not an ELF file (the helper scripts)
  ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r soname path; do
    if grep -qxF "$soname" <<<"$needed"; then echo "$path"; fi
  done
done | grep -v "^$PREFIX/" | sort -u)

for f in "${files[@]}"; do
  missing="$(ldd "$f" 2>/dev/null | awk '$3 == "not" {printf "%s ", $1}' || true)"
  [ -z "$missing" ] || { echo "runtime-packages: $f: the loader cannot find ${missing% }" >&2; exit 1; }
done

# Each library by the names dpkg may know it under (merged /usr, symlinks resolved).
declare -A spelling_of=()
for lib in "${libs[@]}"; do
  real="$(readlink -f "$lib")"
  for s in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do spelling_of["$s"]="$lib"; done
done
declare -A owner=()
while IFS= read -r line; do  # "libfoo1:amd64: /usr/lib/.../libfoo.so.1"
  path="${line##*: }"; pkg="${line%%: *}"; pkg="${pkg%%:*}"
  [ -n "${spelling_of[$path]:-}" ] && owner["${spelling_of[$path]}"]="$pkg"
done < <(dpkg-query -S "${!spelling_of[@]}" 2>/dev/null || true)

report() {
  local status=0
  for lib in "${libs[@]}"; do
    if [ -n "${owner[$lib]:-}" ]; then echo "${owner[$lib]}"
    elif ((SKIP_UNOWNED)); then echo "runtime-packages: $lib: no package owns it (left to the base image)" >&2
    else echo "runtime-packages: $lib: no package owns it" >&2; status=1; fi
  done
  return "$status"
}
report | sort -u
