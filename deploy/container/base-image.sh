#!/usr/bin/env bash
# Makes the Debian 12 base image the CPU image builds on, without a registry: bootstrap a
# minbase root file system (Debian's archive is the only download), keep it as a tarball
# and import it into podman. Each step is skipped when its result is already there, so only
# the first run on a machine pays for the bootstrap. mmdebstrap where installed (Debian's
# faster debootstrap: about 45 s here against 80-130 s), else debootstrap; the same minbase.
# Usage: deploy/container/base-image.sh [IMAGE]   (default localhost/spriteforge-base:bookworm)
#   SPRITEFORGE_CACHE   where the tarball is kept (default ~/.cache/spriteforge)
#   DEBIAN_MIRROR       (default http://deb.debian.org/debian)
#   BOOTSTRAP           mmdebstrap or debootstrap (default: mmdebstrap where installed)
set -euo pipefail
IMAGE="${1:-localhost/spriteforge-base:bookworm}"
CACHE="${SPRITEFORGE_CACHE:-$HOME/.cache/spriteforge}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TARBALL="$CACHE/debian12-minbase.tar"
PARTIAL="$CACHE/partial-minbase.tar"  # mmdebstrap writes a tarball for a name ending in .tar
# Point releases and security updates, like the host the binaries were built on.
SOURCES=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main"
         "deb http://deb.debian.org/debian-security bookworm-security main")

# Both leave dpkg skipping fsync, as Debian's official images do: an image build does not
# need it, and it costs most of the time apt takes there.
with_mmdebstrap() {
  mmdebstrap --variant=minbase --quiet --dpkgopt=force-unsafe-io bookworm "$PARTIAL" "${SOURCES[@]}" \
    >"$CACHE/bootstrap.log" 2>&1
}
with_debootstrap() {
  local root
  root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'umount -R "'"$root"'/proc" "'"$root"'/sys" 2>/dev/null || true; rm -rf --one-file-system "'"$root"'"' EXIT
  # The packages the host already downloaded are reused (the host is Debian 12 too).
  debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives bookworm "$root" "$MIRROR" \
    >"$CACHE/bootstrap.log" 2>&1 || return 1
  printf '%s\n' "${SOURCES[@]}" >"$root/etc/apt/sources.list"
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/unsafe-io"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --one-file-system --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -cf "$PARTIAL" .
}

if podman image exists "$IMAGE"; then
  echo "base-image: $IMAGE already there"
  exit 0
fi
if [ ! -s "$TARBALL" ]; then
  mkdir -p "$CACHE"
  start=$SECONDS
  tool="${BOOTSTRAP:-debootstrap}"
  [ -z "${BOOTSTRAP:-}" ] && command -v mmdebstrap >/dev/null && tool=mmdebstrap
  "with_$tool" || { tail -20 "$CACHE/bootstrap.log"; exit 1; }
  mv "$PARTIAL" "$TARBALL"
  echo "base-image: $tool took $((SECONDS - start)) s; $(du -h "$TARBALL" | cut -f1) tarball in $CACHE"
fi
podman import --quiet --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >/dev/null
echo "base-image: imported $TARBALL as $IMAGE"
