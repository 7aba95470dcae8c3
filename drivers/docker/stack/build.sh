#!/usr/bin/env bash
# Builds the manifold-24 stack image with no registry: a root filesystem made from
# Debian's busybox-static package, imported into the Docker Engine and labelled with
# its version. Does nothing when the image with this version is already there.
# Usage: build.sh [IMAGE]   (default manifold/stack:24)
set -euo pipefail
image=${1:-manifold/stack:24}
version=1

if ! docker info >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "stack-image: the Docker Engine is not reachable (docker info failed)" >&2
    exit 1
  fi
  echo "stack-image: no Docker Engine here; skipping (the Docker tests will skip too)" >&2
  exit 0
fi
have=$(docker image inspect "$image" --format '{{ index .Config.Labels "org.manifold.stack.version" }}' 2>/dev/null || true)
if [ "$have" = "$version" ]; then
  exit 0
fi

busybox=$(command -v busybox || true)
if [ -z "$busybox" ]; then
  echo "stack-image: busybox is missing: apt-get install busybox-static (or run .ci/deps)" >&2
  exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "stack-image: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,app,var/tmp,root,proc,sys,dev}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"

tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change "LABEL org.manifold.stack=manifold-24 org.manifold.stack.version=$version" \
  --change 'ENV PATH=/app/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/app' \
  --change 'WORKDIR /app' \
  --change 'CMD ["/bin/sh"]' \
  - "$image" >/dev/null
echo "stack-image: built $image (version $version)"
