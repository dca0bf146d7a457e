/**
 * Issue 16: the scrapers in the field (test/helpers/scrapers.ts, each header from its own
 * source), alone and as a mixed fleet sharing one key in both orders, each get from the proxy
 * the status, Content-Type and metric-name spelling they get directly from the exporter, and the
 * fleet costs one upstream fetch per TTL for an exporter that speaks protobuf, one per format it
 * answers for one that does not.
 *
 * Exporters: a real client_golang process (Pushgateway 1.11, promhttp without OpenMetrics, with
 * a pushed set of every metric type and UTF-8 names), and the fake exporter as one without
 * protobuf (OpenMetrics when named, no escaping term) and as one that answers text only.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, inflateSync } from 'node:zlib';
import { decodeFamilies, type DecodedFamilies } from '../src/expfmt/decode.js';
import { MetricFamilyType } from '../src/expfmt/metrics-proto.js';
import { pushedFamilies } from './fixtures/expfmt/pushed-families.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, startProxy, type RawResponse, type TestProxy } from './helpers/proxy.js';
import { startPushgateway, type Pushgateway } from './helpers/pushgateway.js';
import { headersOf, SCRAPERS, type Scraper } from './helpers/scrapers.js';
import { skipUnlessUnstable } from './helpers/unstable-binaries.js';

/** A loopback forwarder that counts the requests it passes on (the proxy's upstream fetches). */
async function countingForwarder(target: string): Promise<{ url: string; count: () => number; close: () => Promise<void> }> {
  let count = 0;
  const to = new URL(target);
  const server: Server = createServer((req, res) => {
    count++;
    const headers = { ...req.headers, host: to.host };
    const out = httpRequest({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    count: () => count,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function decoded(res: RawResponse): Buffer {
  const coding = res.headers['content-encoding'];
  return coding === 'gzip' ? gunzipSync(res.body) : coding === 'deflate' ? inflateSync(res.body) : res.body;
}

interface Answer {
  status: number;
  contentType: string;
  /** What must be equal: the pushed group's samples as written, or the body with numbers masked. */
  essence: string;
}

/** The pushed job's samples (text) or families (protobuf, as bytes): where names are spelled. */
function pushedEssence(contentType: string, body: Buffer): string {
  if (contentType.startsWith('application/vnd.google.protobuf')) {
    const d = decodeFamilies(body) as DecodedFamilies;
    return d.list
      .map((f, i) => ({ f, raw: d.raw[i]! }))
      .filter(({ f }) => f.metric?.some((m) => m.label?.some((l) => l.name === 'job' && l.value === 'fleet')))
      .map(({ f, raw }) => `${f.name} ${Buffer.from(raw).toString('hex')}`)
      .sort()
      .join('\n');
  }
  return body
    .toString('utf8')
    .split('\n')
    .filter((line) => line.includes('job="fleet"'))
    .join('\n');
}

const masked = (_contentType: string, body: Buffer) => body.toString('utf8').replace(/\d+/g, 'N');

interface Upstream {
  name: string;
  url: () => string;
  fetches: () => number;
  direct: (s: Scraper) => Promise<Answer>;
  essence: (contentType: string, body: Buffer) => string;
}

async function directAnswer(url: string, s: Scraper, essence: Upstream['essence']): Promise<Answer> {
  const res = await get(url, headersOf(s));
  const contentType = String(res.headers['content-type'] ?? '');
  return { status: res.status, contentType, essence: res.status === 200 ? essence(contentType, decoded(res)) : '' };
}

describe('every scraper gets what the exporter would give it, from one fetch per format the exporter speaks', { skip: skipUnlessUnstable('pushgateway') }, () => {
  let pg: Pushgateway;
  let pgFront: Awaited<ReturnType<typeof countingForwarder>>;
  let noProtobuf: FakeExporter;
  let textOnly: FakeExporter;
  let proxy: TestProxy;
  const upstreams: Upstream[] = [];
  const counts: string[] = [];

  before(async () => {
    pg = await startPushgateway();
    await pg.push('fleet', Buffer.concat(pushedFamilies.map((f) => MetricFamilyType.encodeDelimited(f as never).finish())));
    pgFront = await countingForwarder(pg.url);
    noProtobuf = await startFakeExporter();
    textOnly = await startFakeExporter();
    textOnly.openmetrics = false;
    upstreams.push(
      {
        name: 'client_golang',
        url: () => `${pgFront.url}/metrics`,
        fetches: pgFront.count,
        direct: (s) => directAnswer(`${pg.url}/metrics`, s, pushedEssence),
        essence: pushedEssence,
      },
      {
        name: 'no-protobuf',
        url: () => `${noProtobuf.url}/metrics`,
        fetches: () => noProtobuf.count,
        direct: (s) => directAnswer(`${noProtobuf.url}/metrics`, s, masked),
        essence: masked,
      },
      {
        name: 'text-only',
        url: () => `${textOnly.url}/metrics`,
        fetches: () => textOnly.count,
        direct: (s) => directAnswer(`${textOnly.url}/metrics`, s, masked),
        essence: masked,
      },
    );
    let routes = 'defaults:\n  ttl: 1h\nroutes:\n';
    for (const u of upstreams) {
      for (const [i] of SCRAPERS.entries()) routes += `  - { name: ${u.name}-alone-${i}, path: /${u.name}/alone/${i}, upstream: "${u.url()}" }\n`;
      for (const order of ['forward', 'reverse']) routes += `  - { name: ${u.name}-${order}, path: /${u.name}/${order}, upstream: "${u.url()}" }\n`;
    }
    proxy = await startProxy(routes);
  });

  after(async () => {
    await proxy?.close();
    await pgFront?.close();
    await pg?.stop();
    await noProtobuf?.close();
    await textOnly?.close();
    if (counts.length > 0) console.log(`# fleet fetch counts\n${counts.map((c) => `#   ${c}`).join('\n')}`);
  });

  async function viaProxy(path: string, s: Scraper, u: Upstream): Promise<Answer> {
    const res = await get(`${proxy.url}${path}`, headersOf(s));
    const contentType = String(res.headers['content-type'] ?? '');
    return { status: res.status, contentType, essence: res.status === 200 ? u.essence(contentType, decoded(res)) : res.body.toString() };
  }

  function assertSame(got: Answer, want: Answer, what: string): void {
    assert.equal(got.status, want.status, `${what}: status`);
    assert.equal(got.contentType, want.contentType, `${what}: Content-Type`);
    assert.equal(got.essence, want.essence, `${what}: body (names as spelled)`);
  }

  for (const [i, s] of SCRAPERS.entries()) {
    test(`${s.name} alone gets what each exporter gives it directly, at most one fetch to learn and one to answer`, async () => {
      for (const u of upstreams) {
        const want = await u.direct(s);
        const before = u.fetches();
        for (let round = 0; round < 2; round++) assertSame(await viaProxy(`/${u.name}/alone/${i}`, s, u), want, `${s.name} from ${u.name}, scrape ${round + 1}`);
        assert.ok(u.fetches() - before <= 2, `${s.name} from ${u.name}: ${u.fetches() - before} fetches`);
      }
    });
  }

  test('Prometheus 3 and 2.42 on one key of a client_golang exporter: quoted UTF-8 names for 3, underscores for 2, from one fetch, in both orders', async () => {
    const prom3 = SCRAPERS.find((s) => s.name === 'Prometheus 3.4+')!;
    const prom2 = SCRAPERS.find((s) => s.name === 'Prometheus 2.42')!;
    const u = upstreams[0]!;
    for (const first of [prom3, prom2]) {
      await proxy.app.cache.invalidate({ route: 'client_golang-forward' });
      // Once learned (the forward fleet test ran on this route, or the first round here).
      await get(`${proxy.url}/client_golang/forward`, headersOf(first));
      await proxy.app.cache.invalidate({ route: 'client_golang-forward' });
      const before = u.fetches();
      for (const s of first === prom3 ? [prom3, prom2] : [prom2, prom3]) {
        const res = await get(`${proxy.url}/client_golang/forward`, headersOf(s));
        const body = decoded(res).toString('utf8');
        if (s === prom3) {
          assert.match(String(res.headers['content-type']), /escaping=allow-utf-8$/);
          assert.match(body, /^\{"app\.demo\.requests_total",/m);
        } else {
          assert.match(String(res.headers['content-type']), /escaping=underscores$/);
          assert.match(body, /^app_demo_requests_total\{/m);
          assert.doesNotMatch(body, /"app\.demo/);
        }
      }
      assert.equal(u.fetches() - before, 1);
    }
  });

  for (const order of ['forward', 'reverse'] as const) {
    test(`the whole fleet on one key (${order} order): each gets its own answer; a protobuf exporter is fetched once per TTL, the others once per format they answer`, async () => {
      const fleet = order === 'forward' ? [...SCRAPERS] : [...SCRAPERS].reverse();
      for (const u of upstreams) {
        const wants = new Map<Scraper, Answer>();
        for (const s of fleet) wants.set(s, await u.direct(s));
        const formats = new Set([...wants.values()].map((a) => a.contentType)).size;
        const perRound: number[] = [];
        for (let round = 0; round < 3; round++) {
          // A new TTL window: the entries go, what was learned of the upstream stays.
          await proxy.app.cache.invalidate({ route: `${u.name}-${order}` });
          const before = u.fetches();
          for (const s of fleet) for (let k = 0; k < 2; k++) assertSame(await viaProxy(`/${u.name}/${order}`, s, u), wants.get(s)!, `${s.name} from ${u.name}, round ${round + 1}`);
          perRound.push(u.fetches() - before);
        }
        counts.push(`${u.name}, ${order}: ${perRound.join(', ')} fetches per TTL for ${fleet.length} scrapers (${formats} answers directly: ${[...new Set([...wants.values()].map((a) => a.contentType))].join(' | ')})`);
        const expected = u.name === 'client_golang' ? 1 : formats;
        assert.equal(perRound[1], expected, `${u.name}, ${order}: fetches in a TTL once learned (${perRound.join(', ')})`);
        assert.equal(perRound[2], expected);
        assert.ok(perRound[0]! <= expected + 2, `${u.name}, ${order}: the first TTL, while learning: ${perRound[0]}`);
      }
    });
  }
});
