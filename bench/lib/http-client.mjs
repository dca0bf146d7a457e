// A tiny HTTP/1.1 client for warming, filling and checking (not for load: that is wrk's job).
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';

/** Prometheus 2.42's scrape request headers. */
export const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

export function scrapeHeaders({ gzip }) {
  const headers = { accept: PROMETHEUS_ACCEPT, 'user-agent': 'Prometheus/2.42.0' };
  if (gzip) headers['accept-encoding'] = 'gzip';
  return headers;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
// The bench's https peers use a certificate made for the run: what is measured is the cost of TLS, not trust.
const tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 256, rejectUnauthorized: false });

/** GET (or another method) returning status, headers and the raw (still encoded) body. */
export function request(url, { method = 'GET', headers = {}, body, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const req = (secure ? https : http).request(url, { method, headers, agent: secure ? tlsAgent : agent, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `url` until `accept(response)` holds; rejects after `timeoutMs` or when `alive()` turns false. */
export async function waitForHttp(url, { accept = () => true, timeoutMs = 30_000, alive = () => true, headers } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`gave up waiting for ${url}: process exited`);
    try {
      const response = await request(url, { headers, timeoutMs: 5000 });
      if (accept(response)) return response;
      last = `status ${response.status}`;
    } catch (error) {
      last = error.message;
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

/** Runs `task(i)` for i in [from, to) with at most `concurrency` in flight; returns failures. */
export async function forEachConcurrent(from, to, concurrency, task) {
  let next = from;
  let failures = 0;
  let firstError;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      try {
        await task(i);
      } catch (error) {
        failures++;
        firstError ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { failures, firstError };
}

export function closeClient() {
  agent.destroy();
  tlsAgent.destroy();
}
