/**
 * Soak: a few thousand mixed scrapes against the real CLI in a child process (so that its RSS is
 * its own), while upstream faults switch on and off underneath. Checked for invariants, never for
 * timings: no request got a wrong body, none hung, the RSS stayed under cache.max_bytes plus a
 * stated margin, and the upstream saw no more fetches than one per key per ttl plus the retries
 * that failures allow. The mix comes from a seeded PRNG; the fake upstream keeps a ledger of
 * every answer it gave, so each served body can be traced to the exact answer it came from.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { metricsBody, OPENMETRICS_TYPE, TEXT_TYPE } from './helpers/fake-exporter.js';
import { PROMETHEUS_ACCEPT } from './helpers/proxy.js';

const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));

const SEED = 0x5c4a7e;
const REQUESTS = 4000;
/** Open-loop pacing: request i is due at i * SPACING_MS (about 400 per second), at most CONCURRENCY in flight. */
const SPACING_MS = 2.5;
const CONCURRENCY = 50;
const FAULT_PERIOD_MS = 300;
const MAX_BYTES = 2 * 1024 * 1024;
/**
 * RSS allowance beyond the stored bodies, for what any busy Node process grows into: V8 widens
 * its young generation to two 16 MiB semi-spaces under allocation load (32 MiB), old space grows
 * by some 20 MiB, Buffers in flight or not yet collected take ~12 MiB, and sockets, zlib
 * contexts and malloc arenas the rest. Measured on Node 20: +50..66 MiB over the start-up RSS,
 * flat from ~10 s on in a 40 s run (see the diagnostics), so 96 MiB leaves room without hiding
 * a store that ignores max_bytes for long.
 */
const RSS_MARGIN = 96 * 1024 * 1024;
/** No request may take longer than its route's timeout plus this: far past any legitimate wait. */
const HANG_MARGIN_MS = 8000;
/** The smallest stale-if-error / stale-while-revalidate back-off after a failed refresh (1 s, doubling). */
const BACKOFF_MIN_MS = 1000;

type Format = 'openmetrics' | 'text';
type Stale = 'none' | 'if-error' | 'while-revalidate';
/** slow: a whole answer after SLOW_MS; slow-500: a 500 after SLOW_MS (clients pile up on the fill). */
type Fault = 'none' | 'slow' | 'hang' | 'reset' | 'reset-mid-body' | 'truncate' | 'status-500' | 'slow-500';
const SLOW_MS = 150;
/** Sent by a tenth of the clients: shorter than a slow answer, so they give up waiting for it. */
const SCRAPE_TIMEOUT = '0.1';
/** Fault windows alternate with healthy ones, so that every key sees both every 600 ms. */
const HEALTHY: ReadonlyArray<readonly [Fault, number]> = [
  ['none', 7],
  ['slow', 3],
];
const FAULTY: ReadonlyArray<readonly [Fault, number]> = [
  ['reset', 1],
  ['reset-mid-body', 1],
  ['truncate', 1],
  ['hang', 1],
  ['status-500', 1],
  ['slow-500', 1],
];
interface RouteSpec {
  name: string;
  /** Path on the proxy; the upstream path is the same, so a body's path names its route. */
  path: string;
  prefix: boolean;
  ttlMs: number;
  timeoutMs: number;
  stale: Stale;
  cache: boolean;
  padding: number;
  weight: number;
}

const ROUTES: RouteSpec[] = [
  { name: 'plain', path: '/plain/metrics', prefix: false, ttlMs: 1000, timeoutMs: 500, stale: 'none', cache: true, padding: 0, weight: 25 },
  { name: 'sie', path: '/sie/metrics', prefix: false, ttlMs: 500, timeoutMs: 300, stale: 'if-error', cache: true, padding: 0, weight: 20 },
  { name: 'swr', path: '/swr/metrics', prefix: false, ttlMs: 500, timeoutMs: 300, stale: 'while-revalidate', cache: true, padding: 0, weight: 15 },
  // Many keys of ~50 KB text (~27 KB gzip) each: far more than max_bytes, so the LRU evicts.
  { name: 'probe', path: '/probe', prefix: false, ttlMs: 1000, timeoutMs: 500, stale: 'none', cache: true, padding: 50_000, weight: 28 },
  { name: 'pages', path: '/pages/', prefix: true, ttlMs: 0, timeoutMs: 500, stale: 'none', cache: false, padding: 0, weight: 12 },
];

function configYaml(upstream: string): string {
  const route = (r: RouteSpec) =>
    [
      `  - name: ${r.name}`,
      `    ${r.prefix ? 'path_prefix' : 'path'}: ${r.path}`,
      `    upstream: ${upstream}${r.path}`,
      `    timeout: ${r.timeoutMs}ms`,
      ...(r.cache ? [`    ttl: ${r.ttlMs}ms`] : ['    cache: false']),
      ...(r.stale === 'if-error' ? ['    stale_if_error: 1h'] : []),
      ...(r.stale === 'while-revalidate' ? ['    stale_while_revalidate: 1h'] : []),
      ...(r.name === 'probe' ? ['    query_keys: [target, module]'] : []),
    ].join('\n');
  return `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ncache:\n  max_bytes: ${MAX_BYTES}B\nroutes:\n${ROUTES.map(route).join('\n')}\n`;
}

/** mulberry32: small, seedable, good enough to pick a mix. */
function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, choices: ReadonlyArray<readonly [T, number]>): T {
  const total = choices.reduce((n, [, w]) => n + w, 0);
  let x = rand() * total;
  for (const [value, weight] of choices) if ((x -= weight) < 0) return value;
  return choices.at(-1)![0];
}

/** What promhttp answers for an Accept header (the exporter's choice, which the proxy must preserve). */
function formatFor(accept: string | undefined): Format {
  return accept?.includes('application/openmetrics-text') ? 'openmetrics' : 'text';
}

/** RFC 9110 12.5.3, enough for the headers sent here: gzip needs q > 0 on gzip or `*`. */
function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const member of header.split(',')) {
    const [name, ...params] = member.split(';').map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (name === 'gzip' || name === 'x-gzip') gzip = q;
    else if (name === '*') star = q;
  }
  return (gzip ?? star ?? 0) > 0;
}

/** Path plus the parameter set, sorted and decoded: how the proxy's canonical query compares. */
function canonical(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf('?');
  const path = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
  const params = [...new URLSearchParams(q === -1 ? '' : pathAndQuery.slice(q + 1))].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return params.length ? `${path}?${params.map(([k, v]) => `${k}=${v}`).join('&')}` : path;
}

/** Cache key as the test counts it: path + sorted query + representation. */
const keyOf = (pathAndQuery: string, format: Format) => `${canonical(pathAndQuery)} [${format}]`;

const sha = (text: string) => createHash('sha1').update(text).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The fake upstream: promhttp-like negotiation, per-route faults, and a ledger of every answer.

interface Arrival {
  route: string;
  key: string;
  fault: Fault;
}

interface Answer {
  key: string;
  sha: string;
  /** False for answers cut short on purpose (truncate, reset-mid-body): never to be served. */
  complete: boolean;
}

interface FakeUpstream {
  url: string;
  faults: Map<string, Fault>;
  arrivals: Arrival[];
  answers: Map<number, Answer>;
  close(): Promise<void>;
}

function routeOfPath(path: string): RouteSpec {
  const route = ROUTES.find((r) => (r.prefix ? path.startsWith(r.path) : path === r.path || path.startsWith(`${r.path}?`)));
  if (!route) throw new Error(`no route for ${path}`);
  return route;
}

async function startUpstream(): Promise<FakeUpstream> {
  const faults = new Map<string, Fault>();
  const arrivals: Arrival[] = [];
  const answers = new Map<number, Answer>();
  const sockets = new Set<Socket>();
  let version = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const route = routeOfPath(url);
    const format = formatFor(req.headers.accept);
    const key = keyOf(url, format);
    const fault = faults.get(route.name) ?? 'none';
    arrivals.push({ route: route.name, key, fault });
    if (fault === 'hang') return;
    if (fault === 'reset') {
      req.socket.resetAndDestroy(); // a TCP RST; a FIN before any answer on a reused connection is retried once (RFC 9112 9.3.1)
      return;
    }
    const answer = () => {
      if (fault === 'status-500' || fault === 'slow-500') {
        res.writeHead(500, { 'Content-Type': 'text/plain', 'Content-Length': 17 });
        res.end('collector failed\n');
        return;
      }
      const v = ++version;
      const text = metricsBody(format, v, url, route.padding);
      const complete = fault === 'none' || fault === 'slow';
      answers.set(v, { key, sha: sha(text), complete });
      const gzip = acceptsGzip(req.headers['accept-encoding']);
      const body = gzip ? gzipSync(text) : Buffer.from(text);
      const headers: Record<string, string | number> = {
        'Content-Type': format === 'openmetrics' ? OPENMETRICS_TYPE : TEXT_TYPE,
        'Content-Length': body.length,
      };
      if (gzip) headers['Content-Encoding'] = 'gzip';
      res.writeHead(200, headers);
      if (complete) {
        res.end(body);
        return;
      }
      res.write(body.subarray(0, Math.floor(body.length / 2)));
      setTimeout(() => (fault === 'truncate' ? req.socket.end() : req.socket.destroy()), 20);
    };
    if (fault === 'slow' || fault === 'slow-500') setTimeout(answer, SLOW_MS);
    else answer();
  };
  const server: Server = createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    faults,
    arrivals,
    answers,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// The client side: one planned request, and what became of it.

interface Planned {
  i: number;
  route: RouteSpec;
  pathAndQuery: string;
  headers: Record<string, string>;
  format: Format;
  key: string;
  gzipOk: boolean;
  deadlineMs: number;
}

interface Outcome {
  status?: number;
  headers?: IncomingHttpHeaders;
  body?: Buffer;
  /** The connection failed or closed before the response ended. */
  error?: string;
  hung?: boolean;
  startedAt: number;
  endedAt: number;
}

const ACCEPTS: ReadonlyArray<readonly [string | undefined, number]> = [
  [PROMETHEUS_ACCEPT, 40],
  ['text/plain;version=0.0.4', 20],
  [undefined, 15],
  ['*/*', 10],
  ['application/openmetrics-text;version=1.0.0', 15],
];
const ENCODINGS: ReadonlyArray<readonly [string | undefined, number]> = [
  ['gzip', 50],
  [undefined, 25],
  ['identity', 10],
  ['gzip;q=0, identity', 5],
  ['deflate, gzip;q=0.5', 10],
];

function plan(): Planned[] {
  const rand = prng(SEED);
  const planned: Planned[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const route = pick(rand, ROUTES.map((r) => [r, r.weight] as const));
    let pathAndQuery = route.path;
    if (route.name === 'probe') {
      const n = Math.floor(rand() * 30);
      // Same key, spelled differently: parameter order and percent-encoding vary.
      const target = rand() < 0.3 ? `target=host%2D${n}` : `target=host-${n}`;
      const module = `module=${n % 2 ? 'http_2xx' : 'tcp_connect'}`;
      pathAndQuery += rand() < 0.5 ? `?${target}&${module}` : `?${module}&${target}`;
    } else if (route.name === 'pages') {
      pathAndQuery += `${rand() < 0.5 ? 'alpha' : 'beta'}?page=${Math.floor(rand() * 3)}`;
    }
    const accept = pick(rand, ACCEPTS);
    const encoding = pick(rand, ENCODINGS);
    const headers: Record<string, string> = {};
    if (accept !== undefined) headers['accept'] = accept;
    if (encoding !== undefined) headers['accept-encoding'] = encoding;
    // Prometheus sends its scrape timeout; a short one makes clients give up on slow fills.
    if (rand() < 0.1) headers['x-prometheus-scrape-timeout-seconds'] = SCRAPE_TIMEOUT;
    const format = formatFor(accept);
    planned.push({
      i,
      route,
      pathAndQuery,
      headers,
      format,
      key: keyOf(pathAndQuery, format),
      gzipOk: acceptsGzip(encoding),
      deadlineMs: route.timeoutMs + HANG_MARGIN_MS,
    });
  }
  return planned;
}

/** A raw GET on a fresh connection, never decoded, abandoned (and marked hung) at the deadline. */
function scrape(base: URL, p: Planned): Promise<Outcome> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    let settled = false;
    const done = (o: Omit<Outcome, 'startedAt' | 'endedAt'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...o, startedAt, endedAt: performance.now() });
    };
    const req = request({ host: base.hostname, port: base.port, path: p.pathAndQuery, headers: p.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (err: NodeJS.ErrnoException) => done({ status: res.statusCode!, error: `response ${err.code ?? err.message}` }));
      res.on('close', () => {
        if (!res.complete) done({ status: res.statusCode!, error: 'response closed before its end' });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => done({ error: `request ${err.code ?? err.message}` }));
    const timer = setTimeout(() => {
      done({ hung: true });
      req.destroy();
    }, p.deadlineMs);
    req.end();
  });
}

/** Everything wrong with one answer's body, as sentences; empty when it is right. */
function bodyProblems(p: Planned, o: Outcome, answers: Map<number, Answer>): string[] {
  const problems: string[] = [];
  const h = o.headers!;
  const raw = o.body!;
  if (o.status !== 200) {
    const text = raw.toString();
    if (o.status === 500 && text === 'collector failed\n') return problems; // the upstream's 500, passed through
    if (!new RegExp(`^route ${p.route.name}: [^\\n]+\\n$`).test(text)) problems.push(`error body is not one line naming the route: ${JSON.stringify(text.slice(0, 120))}`);
    return problems;
  }
  const wantType = p.format === 'openmetrics' ? OPENMETRICS_TYPE : TEXT_TYPE;
  if (h['content-type'] !== wantType) problems.push(`Content-Type ${h['content-type']} for Accept ${p.headers['accept'] ?? '(none)'}, the exporter gives ${wantType}`);
  const coding = h['content-encoding'];
  if (coding !== undefined && coding !== 'gzip') problems.push(`Content-Encoding ${coding}`);
  if (coding === 'gzip' && !p.gzipOk) problems.push(`gzip to a client with Accept-Encoding ${p.headers['accept-encoding'] ?? '(none)'}`);
  if (h['content-length'] !== undefined && Number(h['content-length']) !== raw.length) problems.push(`Content-Length ${h['content-length']} but ${raw.length} bytes`);
  let text: string;
  try {
    text = coding === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
  } catch (err) {
    problems.push(`body does not gunzip: ${(err as Error).message}`);
    return problems;
  }
  const m = /^fake_version\{path="([^"]*)"\} (\d+)$/m.exec(text);
  if (!m) {
    problems.push(`no fake_version line in ${JSON.stringify(text.slice(0, 80))}`);
    return problems;
  }
  if (canonical(m[1]!) !== canonical(p.pathAndQuery)) problems.push(`body is for ${m[1]}, asked for ${p.pathAndQuery}`);
  const answer = answers.get(Number(m[2]));
  if (!answer) problems.push(`version ${m[2]} was never answered by the upstream`);
  else {
    if (!answer.complete) problems.push(`served answer ${m[2]}, which the upstream cut short`);
    if (answer.key !== p.key) problems.push(`served answer ${m[2]} of ${answer.key} for ${p.key}`);
    if (answer.sha !== sha(text)) problems.push(`body of answer ${m[2]} differs from what the upstream sent`);
  }
  if (p.format === 'openmetrics' ? !text.endsWith('# EOF\n') : text.includes('# EOF')) problems.push(`${p.format} body with a wrong end: ${JSON.stringify(text.slice(-40))}`);
  if (!text.includes('fake_series{i="49"}')) problems.push('body lacks the last fake_series line');
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The child process.

interface Child {
  proc: ChildProcess;
  scrapeUrl: URL;
  adminUrl: URL;
  logs(): Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startChild(configFile: string): Promise<Child> {
  // debug: the store logs each eviction, which the fetch budget allows for.
  const proc = spawn(process.execPath, [cli, '--config.file', configFile, '--log.level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on('close', (code, signal) => r({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  const logs = () =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const end = Date.now() + 15_000;
  for (;;) {
    const line = logs().find((l) => l['msg'] === 'scrapecache listening');
    if (line) {
      return { proc, scrapeUrl: new URL(`http://${String(line['scrape'])}`), adminUrl: new URL(`http://${String(line['admin'])}`), logs, stderr: () => stderr, exited };
    }
    if (gone || Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`scrapecache did not start; stderr: ${stderr}`);
    }
    await sleep(25);
  }
}

function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function getText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
}

const MiB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------

describe('soak: a few thousand mixed scrapes while the upstream fails now and then', () => {
  let upstream: FakeUpstream;
  let child: Child;
  let dir: string;
  const planned = plan();
  const outcomes: Outcome[] = [];
  let durationMs = 0;
  /** Date.now() - performance.now(), to compare the proxy's log times with request times. */
  let epochOffset = 0;
  let arrivals: Arrival[] = [];
  let fetchLogs: Array<Record<string, unknown>> = [];
  let evictions = new Map<string, number>();
  const memory = { baseline: 0, baselineHwm: 0, maxSampled: 0, hwm: 0, samples: [] as number[], idle: 0, heap: '' };
  const cacheBytesSamples: number[] = [];
  const externalSamples: number[] = [];

  before(async () => {
    upstream = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'scrapecache-soak-'));
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, configYaml(upstream.url));
    child = await startChild(file);
    const pid = child.proc.pid!;
    await sleep(500);
    ({ rss: memory.baseline, hwm: memory.baselineHwm } = memoryOf(pid));

    const sampler = setInterval(() => {
      try {
        const { rss } = memoryOf(pid);
        memory.samples.push(rss);
        memory.maxSampled = Math.max(memory.maxSampled, rss);
      } catch {
        // the child is gone; the tests below say so
      }
    }, 200);
    const metricsSampler = setInterval(() => {
      getText(`${child.adminUrl.origin}/metrics`).then(
        ({ text }) => {
          // One series per route; the bound is on their sum.
          const lines = [...text.matchAll(/^scrapecache_cache_bytes(?:\{[^}]*\})? (\S+)$/gm)];
          if (lines.length) cacheBytesSamples.push(lines.reduce((n, m) => n + Number(m[1]), 0));
          const external = /^nodejs_external_memory_bytes (\S+)$/m.exec(text);
          if (external) externalSamples.push(Number(external[1]));
        },
        () => undefined,
      );
    }, 1000);
    const faultRand = prng(SEED ^ 0xfa17);
    let tick = 0;
    const flipper = setInterval(() => {
      tick++;
      ROUTES.forEach((r, n) => upstream.faults.set(r.name, pick(faultRand, (tick + n) % 2 ? FAULTY : HEALTHY)));
    }, FAULT_PERIOD_MS);

    const t0 = performance.now();
    epochOffset = Date.now() - t0;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const running: Promise<void>[] = [];
    for (const p of planned) {
      const wait = t0 + p.i * SPACING_MS - performance.now();
      if (wait > 1) await sleep(wait);
      while (inFlight >= CONCURRENCY) await new Promise<void>((r) => (wake = r));
      inFlight++;
      running.push(
        scrape(child.scrapeUrl, p).then((o) => {
          outcomes[p.i] = o;
          inFlight--;
          wake?.();
        }),
      );
    }
    await Promise.all(running);
    clearInterval(flipper);
    for (const r of ROUTES) upstream.faults.set(r.name, 'none');
    clearInterval(sampler);
    clearInterval(metricsSampler);
    // Let fills that outlived their clients (scrape-timeout header) end, and their log lines
    // arrive: the proxy logs one line per upstream fetch of a cached route.
    await sleep(Math.max(...ROUTES.map((r) => r.timeoutMs)) + 300);
    const isFetchLog = (l: Record<string, unknown>) => l['msg'] === 'upstream fetch' || l['msg'] === 'upstream fetch failed';
    const cachedArrivals = () => upstream.arrivals.filter((a) => ROUTES.find((r) => r.name === a.route)!.cache).length;
    for (let waited = 0; waited < 5000 && child.logs().filter(isFetchLog).length < cachedArrivals(); waited += 100) await sleep(100);
    durationMs = performance.now() - t0;
    ({ hwm: memory.hwm, rss: memory.idle } = memoryOf(pid));
    memory.heap = await getText(`${child.adminUrl.origin}/metrics`).then(
      ({ text }) =>
        [...text.matchAll(/^(nodejs_heap_space_size_total_bytes\{space="(?:new|old)"\}|nodejs_heap_size_(?:total|used)_bytes|nodejs_external_memory_bytes) (\S+)$/gm)]
          .map((m) => `${m[1]!.replace(/^nodejs_/, '')} ${MiB(Number(m[2]))}`)
          .join(', '),
      () => 'unavailable',
    );
    arrivals = upstream.arrivals.slice();
    const logs = child.logs();
    fetchLogs = logs.filter(isFetchLog);
    evictions = new Map();
    // The log names path and query but not the representation: an eviction counts for every
    // representation of its path and query (a little generous to the budget).
    for (const l of logs.filter((l) => l['msg'] === 'evicted')) {
      const base = canonical(`${String(l['path'])}${l['query'] ? `?${String(l['query'])}` : ''}`);
      evictions.set(base, (evictions.get(base) ?? 0) + 1);
    }
  });

  after(async () => {
    if (child && child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every request ended, within its route timeout plus a margin: none hung', (t) => {
    const hung = planned.filter((p) => outcomes[p.i]?.hung);
    const slowest = Math.max(...outcomes.map((o) => o.endedAt - o.startedAt));
    t.diagnostic(`${outcomes.length} requests in ${(durationMs / 1000).toFixed(1)} s, slowest ${slowest.toFixed(0)} ms`);
    assert.equal(outcomes.filter(Boolean).length, REQUESTS);
    assert.deepEqual(
      hung.slice(0, 5).map((p) => `${p.pathAndQuery} ${JSON.stringify(p.headers)}`),
      [],
      `${hung.length} requests got no answer within timeout + ${HANG_MARGIN_MS} ms`,
    );
  });

  test('no request got a wrong body, a wrong type or a coding it did not accept', (t) => {
    const problems: string[] = [];
    const statuses = new Map<string, number>();
    let transportErrors = 0;
    for (const p of planned) {
      const o = outcomes[p.i]!;
      if (o.hung) continue;
      const label = o.error ? 'connection cut' : String(o.status);
      statuses.set(label, (statuses.get(label) ?? 0) + 1);
      if (o.error) {
        // Only a pass-through route may cut a response: its status was sent before the upstream failed.
        if (p.route.cache) problems.push(`#${p.i} ${p.pathAndQuery}: ${o.error}`);
        else transportErrors++;
        continue;
      }
      if (![200, 500, 502, 504].includes(o.status!)) {
        problems.push(`#${p.i} ${p.pathAndQuery}: status ${o.status}`);
        continue;
      }
      for (const problem of bodyProblems(p, o, upstream.answers)) problems.push(`#${p.i} ${p.pathAndQuery} ${JSON.stringify(p.headers)}: ${problem}`);
    }
    const passThrough = ROUTES.filter((r) => !r.cache).map((r) => r.name);
    const cutUpstream = arrivals.filter((a) => passThrough.includes(a.route) && (a.fault === 'reset-mid-body' || a.fault === 'truncate')).length;
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    t.diagnostic(`pass-through connections cut: ${transportErrors}, upstream answers cut short on that route: ${cutUpstream}`);
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} wrong answers`);
    assert.ok(transportErrors <= cutUpstream, `${transportErrors} pass-through responses cut, but only ${cutUpstream} upstream answers were`);
    assert.ok((statuses.get('200') ?? 0) > REQUESTS / 2, 'most requests should succeed, or the mix tests little');
  });

  test('the proxy RSS stayed under its baseline plus max_bytes plus a margin', (t) => {
    // VmHWM is the true peak; when it did not rise past start-up, the run peaked below it.
    const peak = memory.hwm > memory.baselineHwm ? memory.hwm : memory.maxSampled;
    const bound = memory.baseline + MAX_BYTES + RSS_MARGIN;
    t.diagnostic(
      `RSS baseline ${MiB(memory.baseline)}, max sampled ${MiB(memory.maxSampled)}, VmHWM ${MiB(memory.hwm)} (at start ${MiB(memory.baselineHwm)}), ` +
        `bound ${MiB(bound)} = baseline + max_bytes ${MiB(MAX_BYTES)} + margin ${MiB(RSS_MARGIN)}`,
    );
    const at = (f: number) => MiB(memory.samples[Math.min(memory.samples.length - 1, Math.floor(f * memory.samples.length))] ?? 0);
    t.diagnostic(`RSS over the run: ${at(0.25)} at a quarter, ${at(0.5)} at half, ${at(0.75)} at three quarters, ${MiB(memory.idle)} idle after it`);
    t.diagnostic(`heap after the run: ${memory.heap}`);
    t.diagnostic(`external memory samples: ${externalSamples.map(MiB).join(', ')}`);
    t.diagnostic(`scrapecache_cache_bytes samples: max ${Math.max(0, ...cacheBytesSamples)} of ${cacheBytesSamples.length}`);
    assert.ok(memory.maxSampled > 0, 'RSS was sampled');
    assert.ok(peak <= bound, `peak RSS ${MiB(peak)} over ${MiB(bound)}`);
    assert.ok(cacheBytesSamples.length > 0 && cacheBytesSamples.every((b) => b <= MAX_BYTES), `cache bytes over max_bytes: ${cacheBytesSamples.join(' ')}`);
  });

  /*
   * The fetch budget, per key (path + sorted query + representation), over the run's duration D:
   *
   *   fetches(key) = S + F, counted by the upstream; S = fetches the proxy stored, F = the others
   *   (per the proxy's log, which must account for every upstream arrival).
   *
   *   S <= ceil(D / ttl) + 1 + E         an entry is fresh for ttl after its fetch, and no fetch
   *                                       starts while it is; E = evictions of the key (a miss again)
   *   no stale window (plain, probe):
   *     F <= W                           every failed fill had a client waiting that got the error;
   *                                       W = responses >= 500 (or cut) for the key
   *   stale windows (sie, swr): F = F0 + R, F0 failures before the key's first stored fetch,
   *     F0 <= W                          as above (no entry to serve yet)
   *     S*ttl + R*b <= D + (1+E)*max(ttl, b) (+ W*b if E > 0)
   *                                       after a stored fetch no fetch for ttl, after a failed
   *                                       refresh none for the back-off (>= b = 1 s, doubling),
   *                                       so the gaps that follow each fetch fit into D
   *   pass-through (pages): fetches = requests, each forwarded exactly once.
   *
   *   Fetches under an exact-Accept key (X, none expected: see the collapsed-waiter test) are counted apart.
   *   So fetches(key) <= ceil(D / ttl) + 1 + E + allowed retries (+ X), and each part holds alone.
   *
   * With scrapes far more often than the ttl, this keeps fetches near one per ttl, not one per scrape.
   */
  test('the upstream saw at most one fetch per key per ttl plus the retries that failures allow', (t) => {
    const arrivalsByKey = new Map<string, Arrival[]>();
    for (const a of arrivals) arrivalsByKey.set(a.key, [...(arrivalsByKey.get(a.key) ?? []), a]);
    const requestsByKey = new Map<string, Planned[]>();
    for (const p of planned) requestsByKey.set(p.key, [...(requestsByKey.get(p.key) ?? []), p]);
    const logsByKey = new Map<string, Array<Record<string, unknown>>>();
    const exactByKey = new Map<string, number>();
    for (const l of fetchLogs) {
      const representation = String(l['representation']);
      const pathAndQuery = `${String(l['path'])}${l['query'] ? `?${String(l['query'])}` : ''}`;
      // A fetch for one exact Accept header (`accept:...`) is never needed here and has a test of
      // its own (collapsed waiters, below); this one only accounts for it.
      if (representation.startsWith('accept:')) {
        const key = keyOf(pathAndQuery, formatFor(representation.slice('accept:'.length)));
        exactByKey.set(key, (exactByKey.get(key) ?? 0) + 1);
        continue;
      }
      // Entries are keyed by the answer (`text;0.0.4`, `openmetrics;1.0.0`); a fill planned as a
      // protobuf probe that failed keeps `protobuf`: its client's format is in the Accept it sent.
      const format = representation === 'protobuf' ? formatFor(l['accept'] as string | undefined) : representation.slice(0, representation.indexOf(';') >>> 0);
      assert.ok(format === 'openmetrics' || format === 'text', `fetch for representation ${representation}`);
      const key = keyOf(pathAndQuery, format);
      logsByKey.set(key, [...(logsByKey.get(key) ?? []), l]);
    }
    const problems: string[] = [];
    const perRoute = new Map<string, { requests: number; fetches: number; stored: number; failed: number; exact: number; budget: number; keys: number; evictions: number }>();
    for (const route of ROUTES) {
      const summary = { requests: 0, fetches: 0, stored: 0, failed: 0, exact: 0, budget: 0, keys: 0, evictions: 0 };
      perRoute.set(route.name, summary);
      const keys = new Set([...requestsByKey.keys(), ...arrivalsByKey.keys()].filter((k) => routeOfPath(k.slice(0, k.indexOf(' '))) === route));
      for (const key of keys) {
        const requests = requestsByKey.get(key) ?? [];
        const fetches = arrivalsByKey.get(key) ?? [];
        summary.keys++;
        summary.requests += requests.length;
        summary.fetches += fetches.length;
        if (!route.cache) {
          summary.budget += requests.length;
          if (fetches.length !== requests.length) problems.push(`${key}: ${requests.length} requests but ${fetches.length} upstream fetches (pass-through forwards each once)`);
          continue;
        }
        const logged = logsByKey.get(key) ?? [];
        const storedIdx = logged.flatMap((l, i) => (l['stored'] === true ? [i] : []));
        const S = storedIdx.length;
        const F = logged.length - S;
        const E = evictions.get(key.slice(0, key.indexOf(' '))) ?? 0;
        const W = requests.filter((p) => outcomes[p.i]!.error || (outcomes[p.i]!.status ?? 0) >= 500).length;
        summary.stored += S;
        summary.failed += F;
        summary.evictions += E;
        const X = exactByKey.get(key) ?? 0;
        summary.exact += X;
        if (logged.length + X !== fetches.length) problems.push(`${key}: the upstream saw ${fetches.length} fetches, the proxy logged ${logged.length + X}`);
        const clean = fetches.filter((a) => a.fault === 'none' || a.fault === 'slow').length;
        if (S > clean) problems.push(`${key}: ${S} fetches stored but only ${clean} were answered whole`);
        const maxStored = Math.ceil(durationMs / route.ttlMs) + 1 + E;
        if (S > maxStored) problems.push(`${key}: ${S} stored fetches in ${durationMs.toFixed(0)} ms, over ceil(D/ttl) + 1 + E = ${maxStored}`);
        let allowedFailures = W;
        if (route.stale === 'none') {
          if (F > W) problems.push(`${key}: ${F} failed fetches, more than the ${W} error responses clients got`);
        } else {
          const firstStored = storedIdx[0] ?? logged.length;
          const F0 = firstStored;
          const R = F - F0;
          if (F0 > W) problems.push(`${key}: ${F0} failed fetches before the first stored one, more than the ${W} error responses clients got`);
          const slack = (1 + E) * Math.max(route.ttlMs, BACKOFF_MIN_MS) + (E > 0 ? W * BACKOFF_MIN_MS : 0);
          const used = S * route.ttlMs + R * BACKOFF_MIN_MS;
          if (used > durationMs + slack) {
            problems.push(`${key}: ${S} stored and ${R} failed refreshes need ${used} ms of ttl and back-off, more than D + slack = ${(durationMs + slack).toFixed(0)} ms`);
          }
          allowedFailures = F0 + Math.floor((durationMs + slack) / BACKOFF_MIN_MS);
        }
        const budget = maxStored + allowedFailures + X;
        if (fetches.length > budget) problems.push(`${key}: ${fetches.length} fetches, over the budget of ${budget}`);
        summary.budget += budget;
      }
    }
    for (const [name, s] of perRoute) {
      t.diagnostic(
        `${name}: ${s.requests} requests, ${s.keys} keys, ${s.fetches} upstream fetches (${s.stored} stored, ${s.failed} failed, ${s.exact} for an exact Accept), ` +
          `budget ${s.budget}, evictions ${s.evictions}`,
      );
    }
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} keys over budget`);
    const plain = perRoute.get('plain')!;
    assert.ok(plain.stored * 5 < plain.requests, `plain: ${plain.stored} stored fetches for ${plain.requests} scrapes is not one per ttl`);
    assert.ok(perRoute.get('probe')!.evictions > 0, 'the probe route should push the cache past max_bytes');
  });

  /**
   * Requests to a stale route that started after the proxy logged the first stored fetch of their
   * key (so an entry was there to serve from), on keys never evicted.
   */
  function afterFirstEntry(stale: Stale): Array<{ p: Planned; o: Outcome }> {
    const firstStored = new Map<string, number>();
    for (const l of fetchLogs) {
      const representation = String(l['representation']);
      if (l['stored'] !== true || representation.startsWith('accept:')) continue;
      const format = representation === 'protobuf' ? formatFor(l['accept'] as string | undefined) : (representation.slice(0, representation.indexOf(';') >>> 0) as Format);
      const key = keyOf(`${String(l['path'])}${l['query'] ? `?${String(l['query'])}` : ''}`, format);
      if (!firstStored.has(key)) firstStored.set(key, Date.parse(String(l['time'])));
    }
    return planned
      .filter((p) => p.route.stale === stale && !evictions.has(p.key.slice(0, p.key.indexOf(' '))))
      .map((p) => ({ p, o: outcomes[p.i]! }))
      .filter(({ p, o }) => o.startedAt + epochOffset > (firstStored.get(p.key) ?? Infinity) + 5);
  }

  const describeOutcome = ({ p, o }: { p: Planned; o: Outcome }) =>
    `#${p.i} ${p.key} ${JSON.stringify(p.headers)}: ${o.hung ? 'hung' : (o.status ?? o.error)} ${o.headers?.['cache-status'] ?? ''} ${o.status === 200 ? '' : (o.body?.toString().trim() ?? '')}`;

  test('stale-while-revalidate: once a key has an entry, every client gets it at once', (t) => {
    const checked = afterFirstEntry('while-revalidate');
    const waited = checked.filter(({ o }) => o.status !== 200 || !String(o.headers!['cache-status']).startsWith('scrapecache; hit'));
    t.diagnostic(`${checked.length} requests checked, ${waited.length} got an error or waited for the upstream`);
    assert.ok(checked.length > 100, 'too few requests found an entry to be served from');
    assert.deepEqual(waited.slice(0, 5).map(describeOutcome), [], `${waited.length} requests`);
  });

  test('stale-if-error: once a key has an entry, a failed refresh is answered from it, not with an error', (t) => {
    const checked = afterFirstEntry('if-error').filter(({ p }) => p.headers['x-prometheus-scrape-timeout-seconds'] === undefined);
    const failed = checked.filter(({ o }) => o.status !== 200);
    const stale = checked.filter(({ o }) => String(o.headers?.['cache-status']).includes('fwd=stale')).length;
    t.diagnostic(`${checked.length} requests checked, ${stale} answered stale, ${failed.length} got an error`);
    assert.ok(stale > 0, 'no refresh failed while an entry was there: the faults missed');
    assert.deepEqual(failed.slice(0, 5).map(describeOutcome), [], `${failed.length} requests`);
  });

  // Regression: a client whose own scrape deadline ended during a slow refresh got 504 although
  // stale_if_error had an entry to serve.
  test('stale-if-error: a client whose scrape timeout ends before the refresh does gets the stale entry, not 504', (t) => {
    const checked = afterFirstEntry('if-error').filter(({ p }) => p.headers['x-prometheus-scrape-timeout-seconds'] !== undefined);
    const failed = checked.filter(({ o }) => o.status !== 200);
    // Not asserted: how many clients hit a slow refresh with their short deadline varies by run.
    const gaveUp = checked.filter(({ o }) => String(o.headers?.['cache-status']).includes('fwd-status=504')).length;
    t.diagnostic(`${checked.length} requests with a ${SCRAPE_TIMEOUT} s scrape timeout checked, ${gaveUp} answered stale after a timed-out wait, ${failed.length} got an error`);
    assert.deepEqual(failed.slice(0, 5).map(describeOutcome), [], `${failed.length} requests`);
  });

  // Regression: a client collapsed onto a fill that got a 500 fetched again under an exact-Accept
  // key when its Accept did not admit the error's text/plain (Accept: text/plain;version=0.0.4).
  test('a client collapsed onto a failed fill gets that fill\'s answer and causes no second fetch', (t) => {
    // The fake exporter always answers a type the client's Accept admits, so a fetch for one
    // exact Accept header is never needed.
    const exact = fetchLogs.filter((l) => String(l['representation']).startsWith('accept:'));
    t.diagnostic(`${exact.length} fetches for an exact Accept header`);
    assert.deepEqual(
      exact.slice(0, 5).map((l) => `${String(l['route'])} ${String(l['path'])} ${String(l['representation'])} status ${String(l['status'] ?? 'failed')}`),
      [],
      `${exact.length} fetches`,
    );
  });

  test('afterwards the proxy is healthy, serves a normal scrape, and exits 0 on SIGTERM', async () => {
    const healthy = await getText(`${child.adminUrl.origin}/-/healthy`);
    assert.equal(healthy.status, 200);
    const p = planned.find((p) => p.route.name === 'plain' && p.headers['accept'] === PROMETHEUS_ACCEPT)!;
    const o = await scrape(child.scrapeUrl, { ...p, headers: { accept: PROMETHEUS_ACCEPT, 'accept-encoding': 'gzip' }, gzipOk: true, deadlineMs: 5000 });
    assert.equal(o.status, 200);
    assert.deepEqual(bodyProblems(p, o, upstream.answers), []);
    child.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([child.exited, new Promise((r) => (timer = setTimeout(() => r({ code: 'no exit within 10 s', signal: null }), 10_000)))]);
    clearTimeout(timer);
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${child.stderr()}`);
  });
});
