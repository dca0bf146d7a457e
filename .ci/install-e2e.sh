#!/usr/bin/env bash
# Installs the real parts the tests run against (Debian packages, bookworm):
# prometheus 2.42, node_exporter 1.5, blackbox_exporter 0.23 (test/e2e), redis-server 7.0
# (the Redis store), chromium (the pages, driven by playwright-core), victoria-metrics
# (vmagent, a second kind of scraper), apache2-utils (htpasswd, for basic-auth hashes) and
# curl (the README's commands, run by test/readme.test.ts and scripts/ci-pack-install.sh).
#
# CI runs as root on a machine without systemd. The packages' postinst scripts try to
# enable and start their services; a policy-rc.d that answers 101 ("action forbidden")
# makes invoke-rc.d skip that, and deb-systemd-invoke is a no-op without a running
# systemd. The e2e test starts its own processes with its own arguments, so the
# system services are never needed.
set -euo pipefail

packages=(prometheus prometheus-node-exporter prometheus-blackbox-exporter redis-server chromium victoria-metrics apache2-utils curl)
binaries=(/usr/bin/prometheus /usr/bin/prometheus-node-exporter /usr/bin/prometheus-blackbox-exporter /usr/bin/redis-server /usr/bin/chromium /usr/bin/vmagent /usr/bin/htpasswd /usr/bin/curl)

have_all=1
for bin in "${binaries[@]}"; do
  [ -x "$bin" ] || have_all=0
done
if [ "$have_all" = 1 ]; then
  echo "install-e2e: ${packages[*]} already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -n -- bash "$0" "$@"
  fi
  echo "install-e2e: must run as root (apt-get install ${packages[*]})" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
restore_policy() { :; }
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by scrapecache .ci/install-e2e.sh for the duration of the install\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  restore_policy() { rm -f "$policy"; }
fi
trap restore_policy EXIT

apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get install "${apt_opts[@]}" "${packages[@]}"

for bin in "${binaries[@]}"; do
  case "$bin" in
    */htpasswd) [ -x "$bin" ] && echo "htpasswd: $(dpkg-query -W -f='${Version}' apache2-utils)" ;;
    */vmagent) echo "vmagent: $(dpkg-query -W -f='${Version}' victoria-metrics)" ;;
    *) "$bin" --version 2>&1 | head -n 1 ;;
  esac
done
