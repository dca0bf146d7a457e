#!/usr/bin/env bash
# Builds the tree that the container image ships, into OUT_DIR:
#   package.json, package-lock.json, dist/ (compiled, without tests), healthcheck.mjs,
#   node_modules/ with production dependencies only.
# The Dockerfile's build stage runs this; scripts/ci-image-tree.sh runs it in a clean copy,
# so that what the image does is tested where no image can be built.
#
# usage: scripts/build-image-tree.sh OUT_DIR     (from the source root)
set -euo pipefail

out=${1:?usage: build-image-tree.sh OUT_DIR}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
npm_flags=(--no-audit --no-fund --loglevel=warn)

npm ci "${npm_flags[@]}"
npm run build

rm -rf "$out"
mkdir -p "$out"
cp package.json package-lock.json "$out/"
cp -R dist "$out/dist"
rm -rf "$out/dist/test"
# Source maps point at TypeScript that the image does not ship.
find "$out/dist" -name '*.map' -delete
cp scripts/healthcheck.mjs "$out/healthcheck.mjs"

# A fresh install from the lockfile rather than a prune of the build tree: nothing the build
# left in node_modules can reach the image. --ignore-scripts: the runtime dependencies are plain
# JavaScript, and a "prepare" script of ours would need the dev tools this install leaves out.
# The packages are in npm's cache from the first install, so this needs no network.
(cd "$out" && npm ci --omit=dev --ignore-scripts --prefer-offline "${npm_flags[@]}")

for dev in typescript @types; do
  if [ -e "$out/node_modules/$dev" ]; then
    echo "build-image-tree: dev dependency $dev is in the production tree" >&2
    exit 1
  fi
done
echo "build-image-tree: $(du -sh "$out" | cut -f1) in $out"
