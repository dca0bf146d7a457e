#!/usr/bin/env bash
# CI: the command as people install it. `npm pack`, then `npm install -g` of that tarball into a
# temporary prefix; the `scrapecache` on that PATH must print its version, pass --check-config on
# the shipped proxy.yaml, and start and answer on it. The tarball must hold what the command
# needs (package.json, README.md, dist/src/**/*.js, dist/src/build-info.json) and nothing else:
# no tests, no source maps, no TypeScript, no demo, no schema generator.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f dist/src/cli.js ] || npm run build
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

tarball=$(npm pack --silent --pack-destination "$work")
echo "packed $tarball"

echo "-- the tarball's files"
files=$(tar -tzf "$work/$tarball")
unexpected=$(grep -Ev '^package/(package\.json|README\.md|LICENSE|dist/src/.+\.js|dist/src/build-info\.json)$' <<<"$files" || true)
misplaced=$(grep -E '^package/dist/src/demo/|json-schema\.js$|\.map$|\.ts$|/test/' <<<"$files" || true)
if [ -n "$unexpected$misplaced" ]; then
  echo "files the command does not need:" >&2
  echo "$unexpected$misplaced" >&2
  exit 1
fi
grep -qx 'package/dist/src/cli.js' <<<"$files"
grep -qx 'package/dist/src/build-info.json' <<<"$files"
echo "$(wc -l <<<"$files") files: package.json, README.md, LICENSE, dist/src/**/*.js, dist/src/build-info.json"

echo "-- npm install -g into $work/prefix"
npm install -g --prefix "$work/prefix" --no-audit --no-fund "$work/$tarball"
export PATH="$work/prefix/bin:$PATH"
[ "$(command -v scrapecache)" = "$work/prefix/bin/scrapecache" ]

echo "-- scrapecache --version"
version=$(scrapecache --version)
echo "$version"
grep -qE "^scrapecache $(node -p 'require("./package.json").version') " <<<"$version"

echo "-- scrapecache --check-config on the shipped proxy.yaml"
scrapecache --config.file proxy.yaml --check-config

echo "-- scrapecache started on a copy of it (loopback, free ports), /-/ready and /metrics answer"
cp proxy.yaml "$work/proxy.yaml"
cd "$work"
scrapecache --config.file proxy.yaml --web.listen-address 127.0.0.1:0 --web.admin-listen-address 127.0.0.1:0 > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q '"msg":"scrapecache listening"' "$work/log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.1
done
line=$(grep '"msg":"scrapecache listening"' "$work/log")
scrape=$(node -e 'console.log(JSON.parse(process.argv[1]).scrape)' "$line")
admin=$(node -e 'console.log(JSON.parse(process.argv[1]).admin)' "$line")
curl -fsS "http://$admin/-/ready"; echo
curl -fsS "http://$scrape/metrics" > "$work/metrics"
grep -q '^scrapecache_build_info{' "$work/metrics"
kill -TERM "$pid"
wait "$pid"
pid=
echo "-- the installed command works"
