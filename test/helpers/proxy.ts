/** Starts a real proxy on loopback ports from a YAML text, and a raw HTTP client for it. */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startApp, type App, type ClientLimits } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import type { ListenerSecurityOptions } from '../../src/server/listener-security.js';

export interface TestProxy {
  app: App;
  url: string;
  adminUrl: string;
  file: string;
  /** Log lines written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Writes the YAML (listeners on port 0 unless it says otherwise) and starts the app in this process. */
export async function startProxy(
  yaml: string,
  options: { listen?: boolean; limits?: ClientLimits; webConfigFile?: string; webSecurity?: ListenerSecurityOptions; clock?: Clock } = {},
): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-test-'));
  const file = join(dir, 'proxy.yaml');
  const head = options.listen === false ? '' : 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';
  writeFileSync(file, head + yaml);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger('debug', sink);
  const app = await startApp({
    config: loadConfig(file),
    log,
    defaultMetrics: false,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.webConfigFile ? { webConfigFile: options.webConfigFile } : {}),
    ...(options.webSecurity ? { webSecurity: options.webSecurity } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return {
    app,
    url: `http://127.0.0.1:${app.scrapeAddress.port}`,
    adminUrl: `http://127.0.0.1:${app.adminAddress.port}`,
    file,
    logs,
    close: () => app.close(1000),
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The bytes as sent, not decoded. */
  body: Buffer;
}

/** A plain HTTP request that does not decode content codings, so tests see what was sent. */
export function get(
  url: string,
  headers: Record<string, string> = {},
  options: { method?: string; body?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // Split by hand: new URL() would normalise away the `..` and `%2e` that tests send on purpose.
    const m = /^http:\/\/([^/:]+):(\d+)(\/.*)?$/.exec(url);
    if (!m) throw new Error(`test URL ${url}`);
    const target = { host: m[1], port: Number(m[2]), path: m[3] ?? '/' };
    const req = httpRequest({ ...target, method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function post(url: string, body?: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return get(url, text === undefined ? headers : { 'content-type': 'application/json', ...headers }, {
    method: 'POST',
    ...(text === undefined ? {} : { body: text }),
  });
}

export const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/** What Prometheus sends on a scrape. */
export const SCRAPE_HEADERS = { accept: PROMETHEUS_ACCEPT, 'accept-encoding': 'gzip' };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
