// `npm run demo`: the demo program prints direct and proxied scrapes side by side and the
// exporter's fetch count, then keeps both running with the status page URL. Run here with free
// ports and a short collection time; `npm run demo` itself uses 2 s and fixed ports.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { get } from './helpers/proxy.js';

const demo = new URL('../src/demo/demo.js', import.meta.url).pathname;
const root = new URL('../../', import.meta.url);
let child: ChildProcess | undefined;

after(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
});

/** Reads stdout until the status page line, bounded. */
function runDemo(env: Record<string, string>): Promise<{ child: ChildProcess; out: string }> {
  const proc = spawn(process.execPath, [demo], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no status page line within 20 s:\n${out}\n${err}`)), 20_000);
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (/Ctrl-C stops both\.\n/.test(out)) {
        clearTimeout(timer);
        resolve({ child: proc, out });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`demo exited with ${code}:\n${out}\n${err}`));
    });
  });
}

test('npm run demo builds the product, then runs the demo program with the shipped flags', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts['demo'], 'tsc -p tsconfig.src.json && node scripts/write-build-info.mjs && node --max-semi-space-size=4 dist/src/demo/demo.js');
  assert.match(readFileSync(new URL('demo/proxy.yaml', root), 'utf8'), /upstream: http:\/\/\$\{SCRAPECACHE_DEMO_EXPORTER\}\/metrics/);
});

test("the demo's admin listener is on 9181 by default, as in proxy.yaml and every admin example of the README", () => {
  const demo = readFileSync(new URL('demo/proxy.yaml', root), 'utf8');
  assert.match(demo, /^ {2}listen: \$\{SCRAPECACHE_DEMO_ADMIN_LISTEN:-127\.0\.0\.1:9181\}$/m);
  assert.match(readFileSync(new URL('proxy.yaml', root), 'utf8'), /^ {2}listen: 127\.0\.0\.1:9181$/m);
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  assert.ok(readme.includes('its status page on <http://127.0.0.1:9181/>'));
  // Every admin call of the README goes to 9181; no other port of the README is an admin port.
  for (const m of readme.matchAll(/localhost:(\d+)\/(?:invalidate|cache|-\/reload)/g)) assert.equal(m[1], '9181');
});

test('the demo prints direct and proxied scrapes side by side: one upstream fetch for all proxied scrapes, then leaves both running', async () => {
  const { child: proc, out } = await runDemo({
    SCRAPECACHE_DEMO_EXPORTER: '127.0.0.1:0',
    SCRAPECACHE_DEMO_LISTEN: '127.0.0.1:0',
    SCRAPECACHE_DEMO_ADMIN_LISTEN: '127.0.0.1:0',
    SCRAPECACHE_DEMO_COLLECT_MS: '300',
  });
  const rows = [...out.matchAll(/^(\d)\s+(\d+\.\d{3}) s\s+(\d+\.\d{3}) s\s+(.*)$/gm)];
  assert.equal(rows.length, 3, out);
  assert.match(rows[0]![4]!, /^scrapecache; fwd=miss; stored$/);
  for (const row of rows.slice(1)) assert.match(row[4]!, /^scrapecache; hit; ttl=\d+$/);
  // Each direct scrape waits for the collection; the hits do not (no timing is asserted for them).
  for (const row of rows) assert.ok(Number(row[2]) >= 0.29, `direct scrape ${row[1]} took ${row[2]} s`);
  assert.match(out, /^upstream fetches: 3 for 3 direct scrapes, 1 for 3 scrapes through scrapecache \(counted by the exporter\)$/m);

  const url = (name: string) => new RegExp(`^  ${name}\\s+(http://\\S+)$`, 'm').exec(out)?.[1];
  const proxied = await get(url('proxied')!);
  assert.match(String(proxied.headers['cache-status']), /^scrapecache; hit/, 'the proxy keeps running and serves hits');
  const status = await get(url('status page')!);
  assert.equal(status.status, 200);
  assert.match(status.body.toString(), /<h3 id="route-demo">demo<\/h3>/);
  const own = await get(url('own metrics')!);
  assert.match(own.body.toString(), /^scrapecache_requests_total\{route="demo",cache="hit"\} 3$/m, "two hits of the demo, one of this test");
  const landing = await get(url('landing page')!);
  assert.match(landing.body.toString(), /<a href="\/demo\/metrics">/);
  const exporter = await get(url('exporter')!, { 'x-demo-client': 'direct' });
  assert.match(exporter.body.toString(), /^demo_scrapes_total\{client="proxy"\} 1$/m);

  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.kill('SIGINT');
  assert.equal(await exited, 0, 'Ctrl-C stops both and exits 0');
});

test('the demo says which address it cannot listen on and exits 1', async () => {
  const first = await runDemo({
    SCRAPECACHE_DEMO_EXPORTER: '127.0.0.1:0',
    SCRAPECACHE_DEMO_LISTEN: '127.0.0.1:0',
    SCRAPECACHE_DEMO_ADMIN_LISTEN: '127.0.0.1:0',
    SCRAPECACHE_DEMO_COLLECT_MS: '1',
  });
  const taken = /^  exporter\s+http:\/\/(\S+)\/metrics$/m.exec(first.out)![1]!;
  const second = spawn(process.execPath, [demo], { env: { ...process.env, SCRAPECACHE_DEMO_EXPORTER: taken }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  second.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((r) => second.once('exit', (c) => r(c)));
  assert.equal(code, 1);
  assert.match(err, new RegExp(`^scrapecache demo: demo exporter: cannot listen on ${taken.replace(/\./g, '\\.')}: .*EADDRINUSE`, 'm'));
  first.child.kill('SIGINT');
});
