#!/usr/bin/env bash
# deploy/docker/runtime-packages.sh names the Debian packages a runtime image needs: for
# the coordinator, gRPC's and SQLite's runtime packages (installed here, not -dev ones);
# a library no package owns is an error unless --skip-unowned leaves it to the base image.
# Usage: runtime_packages_test.sh SOURCE_DIR COORDINATOR_BINARY
set -euo pipefail
SRC="$1" COORDINATOR="$2"
SCRIPT="$SRC/deploy/docker/runtime-packages.sh"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail=0

mkdir -p "$TMP/prefix/bin"
cp "$COORDINATOR" "$TMP/prefix/bin/"
packages="$(bash "$SCRIPT" "$TMP/prefix")"
for want in libsqlite3-0 libgrpc++1.51 libc6; do
  grep -qx "$want" <<<"$packages" || { echo "runtime-packages: '$want' missing from: $packages"; fail=1; }
done
for p in $packages; do
  case "$p" in *-dev) echo "runtime-packages: lists a development package: $p"; fail=1 ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "runtime-packages: '$p' is not an installed package"; fail=1; }
done

# A program linked to a library outside any package, then to one that is gone.
mkdir -p "$TMP/unowned" "$TMP/own/bin"
echo 'int answer(void) { return 42; }' >"$TMP/unowned/answer.c"
echo 'int answer(void); int main(void) { return answer() != 42; }' >"$TMP/main.c"
cc -shared -fPIC -o "$TMP/unowned/libanswer.so" "$TMP/unowned/answer.c"
cc -o "$TMP/own/bin/ask" "$TMP/main.c" -L"$TMP/unowned" -lanswer -Wl,-rpath,"$TMP/unowned"
if err="$(bash "$SCRIPT" "$TMP/own" 2>&1 >/dev/null)"; then
  echo "runtime-packages: accepted a library no package owns"; fail=1
else
  grep -q "libanswer.so: no package owns it" <<<"$err" || { echo "runtime-packages: unclear error: $err"; fail=1; }
fi
bash "$SCRIPT" --skip-unowned "$TMP/own" 2>/dev/null | grep -qx libc6 ||
  { echo "runtime-packages: --skip-unowned lost the owned libraries"; fail=1; }
rm "$TMP/unowned/libanswer.so"  # now the loader cannot find it at all
err="$(bash "$SCRIPT" --skip-unowned "$TMP/own" 2>&1 >/dev/null)" && { echo "runtime-packages: accepted a missing library"; fail=1; }
grep -q "cannot find libanswer.so" <<<"$err" || { echo "runtime-packages: unclear error for a missing library: $err"; fail=1; }
bash "$SCRIPT" "$TMP/nowhere" 2>/dev/null && { echo "runtime-packages: accepted a missing prefix"; fail=1; }
((fail == 0)) && echo "runtime-packages: $(wc -w <<<"$packages") packages for the coordinator; unowned and missing libraries caught"
exit "$fail"
