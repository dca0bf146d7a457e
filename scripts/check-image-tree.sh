#!/usr/bin/env bash
# Checks a tree built by scripts/build-image-tree.sh the way the image runs it: the built entry
# with the shipped config, from a directory it cannot write, as a non-root user when run as root.
#   - the tree holds no dev dependencies and `npm ls --omit=dev` is satisfied
#   - --version and --check-config on the shipped config exit 0
#   - started with the shipped config, the HEALTHCHECK command passes, /-/ready is 200 and the
#     scrape listener answers
#   - SIGTERM makes it exit 0
#
# usage: scripts/check-image-tree.sh TREE [CONFIG]   (CONFIG defaults to deploy/proxy.docker.yaml)
# The shipped config takes its listen addresses from SCRAPECACHE_LISTEN and
# SCRAPECACHE_ADMIN_LISTEN; this script sets them to free loopback ports.
set -euo pipefail

tree=$(cd "${1:?usage: check-image-tree.sh TREE [CONFIG]}" && pwd)
config=$(realpath "${2:-$(dirname "$0")/../deploy/proxy.docker.yaml}")
entry="$tree/dist/src/cli.js"
log=$(mktemp)
# The image's VOLUME, as the image's user finds it: an empty directory it owns.
disk=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$log"
  rm -rf "$disk"
}
trap cleanup EXIT
fail() {
  echo "check-image-tree: FAIL: $*" >&2
  if [ -s "$log" ]; then echo "--- scrapecache output:" >&2; tail -n 40 "$log" >&2; fi
  exit 1
}
ok() { echo "check-image-tree: ok: $*"; }

[ -f "$entry" ] || fail "$entry is missing"
[ -f "$tree/healthcheck.mjs" ] || fail "$tree/healthcheck.mjs is missing"
for dev in typescript @types; do
  [ ! -e "$tree/node_modules/$dev" ] || fail "dev dependency $dev is in the tree"
done
(cd "$tree" && npm ls --omit=dev --all >/dev/null 2>"$log") || fail "npm ls --omit=dev: $(cat "$log")"
ok "production dependencies only"
# basic_auth_users needs the bcrypt binding: a prebuilt N-API module from the registry, installed
# with --ignore-scripts and no compiler, that must load from the tree as it is.
(cd "$tree" && node -e "require('@node-rs/bcrypt').verify('x', require('@node-rs/bcrypt').hashSync('x', 4)).then((ok) => process.exit(ok ? 0 : 1))" >"$log" 2>&1) \
  || fail "@node-rs/bcrypt does not load from the tree: $(cat "$log")"
ok "@node-rs/bcrypt (basic_auth_users) loads without a compiler"

# As in the image: a non-root user, in a working directory it cannot write.
as_user=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  # setpriv execs (runuser would fork and turn the child's clean exit on SIGTERM into a signal).
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  chmod o+rx "$tree"
  for dir in $(dirname "$config") "$tree"; do
    while [ "$dir" != / ]; do chmod o+x "$dir" 2>/dev/null || true; dir=$(dirname "$dir"); done
  done
  chmod o+r "$config"
  chown nobody:nogroup "$disk"
fi
node_bin=$(command -v node)
run() { (cd / && exec "${as_user[@]}" env HOME=/nonexistent "$@"); }

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
scrape_port=$(free_port)
admin_port=$(free_port)
export SCRAPECACHE_LISTEN="127.0.0.1:$scrape_port" SCRAPECACHE_ADMIN_LISTEN="127.0.0.1:$admin_port" SCRAPECACHE_DISK_PATH="$disk"
vars=(SCRAPECACHE_LISTEN="$SCRAPECACHE_LISTEN" SCRAPECACHE_ADMIN_LISTEN="$SCRAPECACHE_ADMIN_LISTEN" SCRAPECACHE_DISK_PATH="$SCRAPECACHE_DISK_PATH")

version=$(run "${vars[@]}" "$node_bin" "$entry" --version 2>"$log") || fail "--version exited $?"
ok "--version: $version"
run "${vars[@]}" "$node_bin" "$entry" --config.file "$config" --check-config >"$log" 2>&1 || fail "--check-config $config exited $?"
ok "--check-config $config"

# One fork only, so that $! is scrapecache itself and gets the SIGTERM below.
(cd / && exec "${as_user[@]}" env HOME=/nonexistent "${vars[@]}" "$node_bin" "$entry" --config.file "$config") >"$log" 2>&1 &
pid=$!
healthy=
for _ in $(seq 1 75); do
  kill -0 "$pid" 2>/dev/null || { wait "$pid" && status=0 || status=$?; pid=; fail "scrapecache exited ($status) during start-up"; }
  if run SCRAPECACHE_HEALTHCHECK_URL="http://127.0.0.1:$admin_port/-/healthy" "$node_bin" "$tree/healthcheck.mjs" 2>/dev/null; then
    healthy=1
    break
  fi
  sleep 0.2
done
[ -n "$healthy" ] || fail "the HEALTHCHECK command did not pass within 15 s"
ok "HEALTHCHECK (healthcheck.mjs) passes against /-/healthy"

status_of() { node -e "fetch(process.argv[1]).then(r=>console.log(r.status),e=>{console.log('error: '+(e.cause?.message??e.message))})" "$1"; }
ready=$(status_of "http://127.0.0.1:$admin_port/-/ready")
[ "$ready" = 200 ] || fail "/-/ready answered $ready"
ok "/-/ready 200"
no_route=$(status_of "http://127.0.0.1:$scrape_port/no-such-route")
[ "$no_route" = 404 ] || fail "the scrape listener answered $no_route for a path without a route (want 404)"
ok "scrape listener answers (404 for a path without a route)"
[ -f "$disk/scrapecache.lock" ] || fail "the disk level did not take $disk (cache.disk.path)"
ok "the disk level writes its directory"

kill -TERM "$pid"
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$pid" 2>/dev/null && fail "still running 10 s after SIGTERM"
wait "$pid" && status=0 || status=$?
pid=
[ "$status" = 0 ] || fail "exited $status after SIGTERM (want 0)"
ok "exits 0 on SIGTERM"
