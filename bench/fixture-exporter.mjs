#!/usr/bin/env node
// Fixture exporter for the benchmarks: serves deterministic metric text of configured sizes and
// negotiates like client_golang's promhttp. Like undici's benchmarks/server.js, latency and sizes
// come from arguments.
//
//   node bench/fixture-exporter.mjs --port 0 --latency 0 \
//     --profile node=61440 --profile big=20971520 --profile plain=102400:identity [--openmetrics]
//
// Serves GET /p/<name>/metrics (any query string; every key gets the same body).
// `:identity` makes a profile never compress, like exporters that don't do gzip.
// GET /-/stats answers {"requests": N, "byPath": {...}} (stats requests are not counted).
// Prints one JSON line {"port": N, "profiles": {...}} on stdout once listening.
import { createServer } from 'node:http';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { generateExposition } from './metric-text.mjs';

const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    latency: { type: 'string', default: '0' },
    profile: { type: 'string', multiple: true, default: ['node=61440'] },
    openmetrics: { type: 'boolean', default: false },
  },
});

const latencyMs = Number(values.latency);
const profiles = new Map();
for (const spec of values.profile) {
  const match = /^([\w.-]+)=(\d+)(:identity)?$/.exec(spec);
  if (!match) throw new Error(`bad --profile ${spec}: want name=bytes[:identity]`);
  const [, name, bytes, identity] = match;
  const text = Buffer.from(generateExposition(Number(bytes)));
  const openMetrics = Buffer.concat([text, Buffer.from('# EOF\n')]);
  profiles.set(name, {
    gzip: !identity,
    text: { identity: text, gzip: identity ? null : gzipSync(text) },
    openMetrics: { identity: openMetrics, gzip: identity ? null : gzipSync(openMetrics) },
  });
}

let requests = 0;
const byPath = {};

/** client_golang's expfmt.Negotiate, reduced: OpenMetrics only when enabled and asked for. */
function wantsOpenMetrics(accept) {
  return values.openmetrics && typeof accept === 'string' && accept.includes('application/openmetrics-text');
}

/** promhttp gzips when Accept-Encoding names gzip (it ignores q-values too). */
function acceptsGzip(acceptEncoding) {
  return typeof acceptEncoding === 'string' && /\bgzip\b/i.test(acceptEncoding);
}

const server = createServer((req, res) => {
  const [pathname] = (req.url ?? '/').split('?');
  if (pathname === '/-/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ requests, byPath }));
    return;
  }
  requests++;
  byPath[pathname] = (byPath[pathname] ?? 0) + 1;
  const match = /^\/p\/([\w.-]+)\/metrics$/.exec(pathname);
  const profile = match && profiles.get(match[1]);
  if (!profile) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('no such profile\n');
    return;
  }
  const openMetrics = wantsOpenMetrics(req.headers.accept);
  const bodies = openMetrics ? profile.openMetrics : profile.text;
  const gzip = profile.gzip && acceptsGzip(req.headers['accept-encoding']);
  // promhttp sends no Vary header.
  const headers = {
    'content-type': openMetrics ? OPENMETRICS_TYPE : TEXT_TYPE,
    'content-length': (gzip ? bodies.gzip : bodies.identity).length,
  };
  if (gzip) headers['content-encoding'] = 'gzip';
  const send = () => {
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : gzip ? bodies.gzip : bodies.identity);
  };
  if (latencyMs > 0) setTimeout(send, latencyMs);
  else send();
});
server.keepAliveTimeout = 60_000;

server.listen(Number(values.port), values.host, () => {
  const summary = {};
  for (const [name, p] of profiles) {
    summary[name] = { bytes: p.text.identity.length, gzipBytes: p.text.gzip?.length ?? null };
  }
  process.stdout.write(`${JSON.stringify({ port: server.address().port, profiles: summary })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
