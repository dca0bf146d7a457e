#!/usr/bin/env bash
# Fetches current Go binaries from Debian's unstable suite without touching the system:
# prometheus 3.5, victoria-metrics 1.145 (vmagent), prometheus-pushgateway 1.11 and kustomize 5.8.
# apt-get runs with a sources list, state and cache of its own (nothing of the system's apt
# configuration or package database changes), `apt-get download` fetches the .deb files and
# `dpkg -x` unpacks each into its own folder under $SCRAPECACHE_UNSTABLE_ROOT
# (default /opt/scrapecache-unstable), for example
#   /opt/scrapecache-unstable/prometheus/usr/bin/prometheus
# Tests find them through test/helpers/unstable-binaries.ts; nothing is installed over
# the system's bookworm packages.
# Usage: .ci/install-unstable.sh [package ...]   (default: all four)
set -euo pipefail

root=${SCRAPECACHE_UNSTABLE_ROOT:-/opt/scrapecache-unstable}
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(prometheus victoria-metrics prometheus-pushgateway kustomize)

need=()
for pkg in "${packages[@]}"; do
  [ -f "$root/$pkg/.unpacked" ] || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "install-unstable: ${packages[*]} already unpacked under $root"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$root")" ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -n -- env SCRAPECACHE_UNSTABLE_ROOT="$root" bash "$0" "$@"
  fi
  echo "install-unstable: cannot write $root (run as root or set SCRAPECACHE_UNSTABLE_ROOT)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/debs"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main\n' >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State=$work/state"
  -o "Dir::Cache=$work/cache"
  -o APT::Sandbox::User=root
  -q
)
apt-get "${apt_opts[@]}" update
(cd "$work/debs" && apt-get "${apt_opts[@]}" download "${need[@]}")

for pkg in "${need[@]}"; do
  deb=$(ls "$work/debs/${pkg}_"*.deb)
  rm -rf "$root/$pkg"
  mkdir -p "$root/$pkg"
  dpkg -x "$deb" "$root/$pkg"
  dpkg-deb -f "$deb" Version >"$root/$pkg/.unpacked"
  echo "install-unstable: $pkg $(cat "$root/$pkg/.unpacked") -> $root/$pkg"
done
