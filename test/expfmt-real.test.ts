/**
 * Byte for byte against real client_golang processes: what src/expfmt renders from a process's
 * protobuf answer (`escaping=allow-utf-8`, as the proxy fetches it) equals what the process itself
 * answers for each Accept, family by family, and the Content-Type is the one promhttp writes.
 * Pushgateway 1.11 holds a pushed set of every metric type (native histograms and exemplars
 * pushed as protobuf, UTF-8 names); Prometheus 3.5 serves its own /metrics. Neither enables
 * OpenMetrics in promhttp (both answer an OpenMetrics Accept with text), so OpenMetrics is
 * checked against expfmt's own expected outputs in expfmt-render.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentTypeOf, renderFamilies, type Escaping, type WireFormat } from '../src/expfmt/index.js';
import { decodeFamilies, type DecodedFamilies } from '../src/expfmt/decode.js';
import { MetricFamilyType } from '../src/expfmt/metrics-proto.js';
import { pushedFamilies } from './fixtures/expfmt/pushed-families.js';
import { startPushgateway, type Pushgateway } from './helpers/pushgateway.js';
import { Child, freePort, waitFor } from './helpers/processes.js';
import { skipUnlessUnstable, unstableBinary } from './helpers/unstable-binaries.js';

const ESCAPINGS: Escaping[] = ['allow-utf-8', 'underscores', 'dots', 'values'];
const PB_ACCEPT = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

/** Each target with the Accept header a scraper sends for it (no escaping= means the default). */
const targets: { target: WireFormat; accept: string }[] = [
  ...ESCAPINGS.flatMap((escaping) => [
    { target: { kind: 'protobuf', escaping } as WireFormat, accept: `${PB_ACCEPT};escaping=${escaping}` },
    { target: { kind: 'text', version: '0.0.4', escaping } as WireFormat, accept: `text/plain;version=0.0.4;escaping=${escaping}` },
  ]),
  { target: { kind: 'protobuf', escaping: 'underscores' }, accept: PB_ACCEPT },
  { target: { kind: 'text', version: '0.0.4', escaping: 'underscores' }, accept: 'text/plain;version=0.0.4' },
  // Prometheus 3's header: expfmt has no text 1.0.0 and answers 0.0.4 with the escaping asked.
  { target: { kind: 'text', version: '0.0.4', escaping: 'allow-utf-8' }, accept: 'text/plain;version=1.0.0;escaping=allow-utf-8;q=0.9,*/*;q=0.1' },
];

function nameAt(line: string, prefix: string): string {
  const rest = line.slice(prefix.length);
  if (!rest.startsWith('"')) return rest.slice(0, rest.indexOf(' ') < 0 ? undefined : rest.indexOf(' '));
  let i = 1;
  let name = '';
  while (i < rest.length && rest[i] !== '"') {
    if (rest[i] === '\\') i++;
    name += rest[i];
    i++;
  }
  return name;
}

/** A text exposition cut into family blocks (HELP/TYPE and samples), by announced name. */
function textBlocks(body: string): Map<string, string> {
  const blocks = new Map<string, string>();
  let current: string | undefined;
  for (const line of body.split(/(?<=\n)/)) {
    const prefix = line.startsWith('# HELP ') ? '# HELP ' : line.startsWith('# TYPE ') ? '# TYPE ' : undefined;
    if (prefix) {
      const name = nameAt(line, prefix);
      if (name !== current) {
        assert.ok(!blocks.has(name), `family ${name} appears twice`);
        current = name;
        blocks.set(name, '');
      }
    }
    if (current === undefined) {
      if (line.trim() === '') continue;
      current = `(samples before any TYPE)`;
      blocks.set(current, '');
    }
    blocks.set(current, blocks.get(current)! + line);
  }
  return blocks;
}

/** A delimited protobuf body cut into its families' bytes, by family name. */
function protobufBlocks(body: Uint8Array): Map<string, Buffer> {
  const d = decodeFamilies(body) as DecodedFamilies;
  return new Map(d.list.map((f, i) => [f.name ?? '', Buffer.from(d.raw[i]!)]));
}

function blocksOf(target: WireFormat, body: Buffer): Map<string, string | Buffer> {
  return target.kind === 'protobuf' ? protobufBlocks(body) : textBlocks(body.toString('utf8'));
}

function describeTarget(t: WireFormat, accept: string): string {
  return `${contentTypeOf(t)} (Accept: ${accept})`;
}

/** Compares the selected families of the process's answer with the rendering; returns how many. */
function compareFamilies(
  target: WireFormat,
  theirs: Buffer,
  ours: Buffer,
  select: (name: string) => boolean,
): number {
  const want = blocksOf(target, theirs);
  const got = blocksOf(target, ours);
  const names = [...want.keys()].filter(select);
  for (const name of names) {
    const w = want.get(name)!;
    const g = got.get(name);
    assert.ok(g !== undefined, `family ${name} is missing from the rendering`);
    if (Buffer.isBuffer(w)) assert.ok(w.equals(g as Buffer), `family ${name}: protobuf bytes differ\n want ${w.toString('hex')}\n  got ${(g as Buffer).toString('hex')}`);
    else assert.equal(g, w, `family ${name} differs`);
  }
  return names.length;
}

describe('renderings equal a real Pushgateway 1.11 answer, byte for byte', { skip: skipUnlessUnstable('pushgateway') }, () => {
  let pg: Pushgateway;
  let source: Buffer;

  before(async () => {
    pg = await startPushgateway();
    await pg.push('demo', Buffer.concat(pushedFamilies.map((f) => MetricFamilyType.encodeDelimited(f as never).finish())));
    const answer = await pg.scrape(`${PB_ACCEPT};escaping=allow-utf-8`);
    assert.equal(answer.status, 200);
    source = answer.body;
  });
  after(async () => {
    await pg?.stop();
  });

  for (const { target, accept } of targets) {
    test(`${describeTarget(target, accept)}`, async (t) => {
      const theirs = await pg.scrape(accept);
      assert.equal(theirs.status, 200);
      assert.equal(theirs.contentType, contentTypeOf(target));
      const ours = renderFamilies(decodeFamilies(source), target, source);
      const compared = compareFamilies(target, theirs.body, ours, (name) => name.includes('demo'));
      assert.equal(compared, pushedFamilies.length, 'every pushed family is compared');
      t.diagnostic(`${compared} pushed families byte-equal`);
    });
  }

  test('an OpenMetrics Accept gets text from it (promhttp without EnableOpenMetrics)', async () => {
    const theirs = await pg.scrape('application/openmetrics-text;version=1.0.0;escaping=allow-utf-8');
    assert.equal(theirs.contentType, contentTypeOf({ kind: 'text', version: '0.0.4', escaping: 'allow-utf-8' }));
  });
});

describe("renderings equal Prometheus 3.5's own /metrics, byte for byte", { skip: skipUnlessUnstable('prometheus3') }, () => {
  let prometheus: Child;
  let dir: string;
  let url: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'expfmt-prom-'));
    await writeFile(join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1h\nscrape_configs: []\n');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    prometheus = new Child('prometheus', unstableBinary('prometheus3')!, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ]);
    await waitFor('prometheus ready', async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), { watch: [prometheus], timeoutMs: 30_000 });
  });
  after(async () => {
    await prometheus?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const scrape = async (accept: string) => {
    const res = await fetch(`${url}/metrics`, { headers: { accept }, signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    return { contentType: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
  };

  // Goroutine and thread counts go up while a scrape is served and back down after it, so they
  // can look still around a scrape that saw other values; they are gauges like many others kept.
  const VOLATILE = /^go_(sched_goroutines_|goroutines$|threads$)/;

  for (const { target, accept } of targets) {
    test(`${describeTarget(target, accept)}`, async (t) => {
      // Prometheus's own gauges (goroutines, memory) move between requests. A family whose bytes
      // are the same just before and just after the scrape under test did not change in between
      // and is compared; one that moves back and forth gets a few more tries, and must match in
      // one of them where it held still.
      const matched = new Set<string>();
      const failures = new Map<string, string>();
      for (let attempt = 0; attempt < 8; attempt++) {
        const before = (await scrape(`${PB_ACCEPT};escaping=allow-utf-8`)).body;
        const theirs = await scrape(accept);
        assert.equal(theirs.contentType, contentTypeOf(target));
        const afterwards = protobufBlocks((await scrape(`${PB_ACCEPT};escaping=allow-utf-8`)).body);
        const decoded = decodeFamilies(before) as DecodedFamilies;
        const want = blocksOf(target, theirs.body);
        decoded.list.forEach((family, i) => {
          const raw = decoded.raw[i]!;
          if (VOLATILE.test(family.name ?? '') || !afterwards.get(family.name ?? '')?.equals(raw)) return;
          // The family alone, rendered; its block name is the one it has in the answer under test.
          const ours = blocksOf(target, renderFamilies(decodeFamilies(raw), target, raw));
          for (const [name, block] of ours) {
            const w = want.get(name);
            const same = Buffer.isBuffer(block) ? w !== undefined && block.equals(w as Buffer) : block === w;
            if (same) {
              matched.add(name);
              failures.delete(name);
            } else if (!matched.has(name)) {
              failures.set(name, `want ${Buffer.isBuffer(w) ? w.toString('hex') : JSON.stringify(w)}\n got ${Buffer.isBuffer(block) ? block.toString('hex') : JSON.stringify(block)}`);
            }
          }
        });
        if (failures.size === 0 && matched.size >= 50) break;
      }
      assert.deepEqual([...failures].map(([name, diff]) => `${name}: ${diff}`), []);
      assert.ok(matched.size >= 50, `only ${matched.size} families held still long enough to compare`);
      t.diagnostic(`${matched.size} families byte-equal`);
    });
  }
});
