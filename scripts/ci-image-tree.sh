#!/usr/bin/env bash
# What `docker build` would do, where no Docker engine runs: lay out the build stage's files as
# the Dockerfile's COPY lines do, from a clean copy of the committed tree (git archive HEAD, so
# nothing untracked or uncommitted helps), run scripts/build-image-tree.sh there, then check the
# result with scripts/check-image-tree.sh and the shipped config.
#
# usage: scripts/ci-image-tree.sh [REV]     (REV defaults to HEAD)
set -euo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
rev=${1:-HEAD}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/checkout" "$tmp/build"
git -C "$repo" archive --format=tar "$rev" | tar -x -C "$tmp/checkout"
cd "$tmp/checkout"

fail() { echo "ci-image-tree: FAIL: $*" >&2; exit 1; }

# The build stage: from its FROM to the next FROM. Only WORKDIR /build, COPY SRC... DEST/ and
# the RUN of build-image-tree.sh are expected there; anything else needs teaching here.
stage=$(awk '/^FROM /{n++} n==1' Dockerfile)
[ -n "$stage" ] || fail "no build stage in Dockerfile"
grep -q '^RUN .*bash scripts/build-image-tree.sh /out$' <<<"$stage" || fail "the build stage does not RUN scripts/build-image-tree.sh /out"
grep -q '^WORKDIR /build$' <<<"$stage" || fail "the build stage's WORKDIR is not /build"

allowed=$(sed -n 's/^!\(.*\)$/\1/p' .dockerignore | sed 's:/$::')
while read -r -a words; do
  args=()
  for w in "${words[@]:1}"; do [[ $w == --* ]] || args+=("$w"); done
  dest=${args[-1]}
  unset 'args[-1]'
  [[ $dest == */ ]] || fail "COPY destination '$dest' should end with / (only that form is emulated)"
  mkdir -p "$tmp/build/$dest"
  for src in "${args[@]}"; do
    grep -qxF "${src%/}" <<<"$allowed" || fail "COPY source $src is not allowed by .dockerignore"
    [ -e "$src" ] || fail "COPY source $src is not in the committed tree"
    if [ -d "$src" ]; then cp -R "${src%/}/." "$tmp/build/$dest"; else cp "$src" "$tmp/build/$dest"; fi
  done
done < <(grep '^COPY ' <<<"$stage")
echo "ci-image-tree: build context laid out as the Dockerfile copies it:" $(cd "$tmp/build" && ls -A)

# The final stage's COPY of the config must be allowed as well.
grep -qxF deploy/proxy.docker.yaml <<<"$allowed" || fail "deploy/proxy.docker.yaml is not allowed by .dockerignore"

(cd "$tmp/build" && bash scripts/build-image-tree.sh "$tmp/out")
bash "$tmp/checkout/scripts/check-image-tree.sh" "$tmp/out" "$tmp/checkout/deploy/proxy.docker.yaml"
echo "ci-image-tree: ok"
