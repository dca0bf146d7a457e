/**
 * A fake exporter on loopback that negotiates like client_golang's promhttp (OpenMetrics or
 * text by Accept, gzip by Accept-Encoding, no Vary header) and counts its requests. Its
 * behaviour can be switched per test to inject faults.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { MetricFamilyType } from '../../src/expfmt/metrics-proto.js';

export type Fault =
  | 'none'
  | 'hang' // never answers
  | 'reset' // resets the connection (TCP RST) before answering
  | 'reset-mid-body' // sends headers and half the body, then destroys the socket
  | 'truncate' // declares a Content-Length, sends less, closes
  | 'garbage' // answers bytes that are not HTTP
  | 'status-500'
  | 'set-cookie';

export interface FakeExporter {
  url: string;
  port: number;
  /** Requests received, in order. */
  requests: IncomingMessage[];
  readonly count: number;
  fault: Fault;
  /** Delay before answering, ms. */
  delayMs: number;
  /** Body generation counter: changes the body on every answered request. */
  version: number;
  /** Extra body bytes (to exceed size limits). */
  padding: number;
  /**
   * Whether protobuf is offered to an Accept that asks for it. Off by default: the fake then
   * stands for an exporter without protobuf (OpenMetrics to an Accept that names it, else text),
   * whose answers the proxy keeps one entry each.
   */
  protobuf: boolean;
  /** Whether OpenMetrics is offered to an Accept that names it (on by default). */
  openmetrics: boolean;
  /**
   * Holds every answer from now on until the returned function is called, as an exporter that
   * takes minutes would: tests then see what happens while the upstream is blocked.
   */
  hold(): () => void;
  /** Resolves once `n` requests in all have arrived (count): a test knows a fetch is in flight without sleeping. */
  arrived(n: number): Promise<void>;
  close(): Promise<void>;
}

export const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
export const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const PROTOBUF_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

type Format = 'openmetrics' | 'text' | 'protobuf';

/**
 * An exporter's choice as non-Go client libraries make it (prometheus_client for Python looks
 * for the substring): protobuf or OpenMetrics when Accept names it anywhere, else text. Its
 * Content-Type has no escaping term: it ignores `escaping=`.
 */
function negotiate(accept: string | undefined, protobuf: boolean, openmetrics: boolean): Format {
  if (protobuf && accept?.includes('application/vnd.google.protobuf')) return 'protobuf';
  return openmetrics && accept?.includes('application/openmetrics-text') ? 'openmetrics' : 'text';
}

const CONTENT_TYPES: Record<Format, string> = { openmetrics: OPENMETRICS_TYPE, text: TEXT_TYPE, protobuf: PROTOBUF_TYPE };

/**
 * The delimited MetricFamily stream of the same families metricsBody writes (a gauge with HELP,
 * an untyped family without), as client_golang would encode them: each answer differs by version.
 */
export function protobufBody(version: number, path: string): Buffer {
  const families = [
    {
      name: 'fake_version',
      help: 'Which answer of the fake exporter this is.',
      type: 1,
      metric: [{ label: [{ name: 'path', value: path }], gauge: { value: version } }],
    },
    {
      name: 'fake_series',
      type: 3,
      metric: Array.from({ length: 50 }, (_, i) => ({ label: [{ name: 'i', value: String(i) }], untyped: { value: i * version } })),
    },
  ];
  return Buffer.concat(families.map((f) => MetricFamilyType.encodeDelimited(MetricFamilyType.fromObject(f)).finish()));
}

export function metricsBody(format: 'openmetrics' | 'text', version: number, path: string, padding = 0): string {
  let body = `# HELP fake_version Which answer of the fake exporter this is.\n# TYPE fake_version gauge\nfake_version{path="${path}"} ${version}\n`;
  for (let i = 0; i < 50; i++) body += `fake_series{i="${i}"} ${i * version}\n`;
  // Incompressible padding, so that gzip does not shrink it below a size limit under test.
  if (padding > 0) body += `# ${randomBytes(Math.ceil(padding / 2)).toString('hex').slice(0, padding)}\n`;
  return format === 'openmetrics' ? `${body}# EOF\n` : body;
}

export async function startFakeExporter(): Promise<FakeExporter> {
  const sockets = new Set<Socket>();
  const state = {
    requests: [] as IncomingMessage[],
    fault: 'none' as Fault,
    delayMs: 0,
    version: 0,
    padding: 0,
    protobuf: false,
    openmetrics: true,
    held: undefined as Promise<void> | undefined,
  };
  const waiters: Array<{ n: number; resolve: () => void }> = [];

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    state.requests.push(req);
    for (const w of waiters.filter((w) => state.requests.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    const fault = state.fault;
    if (fault === 'hang') return;
    if (fault === 'reset') {
      // A TCP RST: a connection closed with a FIN before any answer is what a keep-alive race
      // looks like, and the proxy sends such a GET once more (RFC 9112 9.3.1).
      req.socket.resetAndDestroy();
      return;
    }
    if (fault === 'garbage') {
      req.socket.end('this is not HTTP at all\r\n\r\n');
      return;
    }
    const answer = () => {
      state.version++;
      const format = negotiate(req.headers.accept, state.protobuf, state.openmetrics);
      const raw =
        format === 'protobuf' ? protobufBody(state.version, req.url ?? '') : Buffer.from(metricsBody(format, state.version, req.url ?? '', state.padding));
      const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
      const body = gzip ? gzipSync(raw) : raw;
      const headers: Record<string, string | number> = {
        'Content-Type': CONTENT_TYPES[format],
        'Content-Length': body.length,
      };
      if (gzip) headers['Content-Encoding'] = 'gzip';
      if (fault === 'set-cookie') headers['Set-Cookie'] = 'session=1';
      if (fault === 'status-500') {
        const err = 'collector failed\n';
        res.writeHead(500, { 'Content-Type': 'text/plain', 'Content-Length': err.length });
        res.end(err);
        return;
      }
      if (fault === 'reset-mid-body' || fault === 'truncate') {
        res.writeHead(200, headers);
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        setTimeout(() => (fault === 'truncate' ? req.socket.end() : req.socket.destroy()), 20);
        return;
      }
      res.writeHead(200, headers);
      res.end(body);
    };
    const go = () => (state.delayMs > 0 ? setTimeout(answer, state.delayMs) : answer());
    if (state.held) void state.held.then(go);
    else go();
  };

  const server: Server = createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return state.requests;
    },
    get count() {
      return state.requests.length;
    },
    get fault() {
      return state.fault;
    },
    set fault(f: Fault) {
      state.fault = f;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    get version() {
      return state.version;
    },
    set version(v: number) {
      state.version = v;
    },
    get padding() {
      return state.padding;
    },
    set padding(n: number) {
      state.padding = n;
    },
    get protobuf() {
      return state.protobuf;
    },
    get openmetrics() {
      return state.openmetrics;
    },
    set openmetrics(on: boolean) {
      state.openmetrics = on;
    },
    set protobuf(on: boolean) {
      state.protobuf = on;
    },
    hold() {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      state.held = held;
      return () => {
        if (state.held === held) state.held = undefined;
        release();
      };
    },
    arrived: (n) => (state.requests.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
