/**
 * At start-up and on reload the proxy opens one TCP connection to each upstream address and
 * sends nothing on it, so an exporter that is down or mistyped is named in the log before the
 * first scrape gets 502, and an expensive exporter pays for no collection.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startRawOrigin, type RawOrigin } from './helpers/raw-origin.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';

let origin: RawOrigin;
let closedPort: number;
let proxy: TestProxy;

/** A port nothing listens on: bound, then released. */
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const routes = (extra = '') => `routes:
  - name: up
    path: /up
    upstream: ${origin.url}/metrics
  - name: down
    path: /down
    upstream: http://127.0.0.1:${closedPort}/metrics
  - name: down-too
    path: /down-too
    upstream: http://127.0.0.1:${closedPort}/other
${extra}`;

const warnings = () => proxy.logs.filter((l) => l['level'] === 40 && typeof l['upstream'] === 'string' && /is not reachable/.test(String(l['msg'])));

before(async () => {
  origin = await startRawOrigin();
  closedPort = await unusedPort();
  proxy = await startProxy(routes());
});
after(async () => {
  await proxy.close();
  await origin.close();
});

test('at start-up: one warning per unreachable address, naming it and its routes; a reachable exporter gets a connection and no request', async () => {
  const results = await proxy.app.upstreamsChecked();
  assert.equal(results.length, 2, 'one connection attempt per distinct address');
  const found = warnings();
  assert.equal(found.length, 1, JSON.stringify(found));
  assert.equal(found[0]!['upstream'], `127.0.0.1:${closedPort}`);
  assert.deepEqual(found[0]!['routes'], ['down', 'down-too']);
  assert.equal(found[0]!['code'], 'ECONNREFUSED');
  assert.equal(found[0]!['when'], 'start-up');
  assert.match(String(found[0]!['msg']), new RegExp(`^upstream 127\\.0\\.0\\.1:${closedPort} is not reachable \\(ECONNREFUSED\\): scrapes of routes down, down-too get 502 until it is$`));
  assert.equal(origin.connections, 1);
  assert.equal(origin.received(), '', 'no byte of a request');
  assert.equal(origin.requests.length, 0);
});

test('on reload: the upstreams are checked again, the new one too', async () => {
  const other = await unusedPort();
  writeFileSync(proxy.file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${routes(`  - name: new\n    path: /new\n    upstream: http://127.0.0.1:${other}/metrics\n`)}`);
  assert.equal(await proxy.app.reload(), undefined);
  const results = await proxy.app.upstreamsChecked();
  assert.equal(results.length, 3);
  const reloadWarnings = warnings().filter((l) => l['when'] === 'reload');
  assert.deepEqual(reloadWarnings.map((l) => l['upstream']).sort(), [`127.0.0.1:${closedPort}`, `127.0.0.1:${other}`].sort());
  assert.equal(origin.connections, 2);
  assert.equal(origin.requests.length, 0);
});
