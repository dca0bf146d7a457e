#!/usr/bin/env node
// The reference for scrapecache's hit path: bare node:http writing bytes it already holds, with
// the headers a scrapecache hit carries, as a flat header list built at most once a second. No
// routing table beyond one Map lookup, no cache logic:
// what is left is the runtime's own cost of answering a scrape, the limit for the hit path.
//
//   node bench/reference-server.mjs --port 0 [--workers N [--sched none|rr]] \
//     --route /p/node/metrics=http://127.0.0.1:9100/p/node/metrics ...
//
// With --workers N > 1, N cluster workers share the port; by default with cluster.SCHED_NONE
// (the kernel hands each connection to a worker), as scrapecache's `workers` does.
//
// At start it fetches each upstream twice (with and without Accept-Encoding: gzip) and keeps the
// raw bytes. The query string is ignored. Prints {"port": N} on stdout once listening.
//
// --tls-cert F --tls-key F serve https; --basic-auth USER:PASS also wants that Authorization
// header (compared in constant time, nothing cached or hashed beyond that: the floor for a hit
// behind basic auth).
import cluster from 'node:cluster';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    workers: { type: 'string', default: '1' },
    sched: { type: 'string', default: 'none' },
    route: { type: 'string', multiple: true, default: [] },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'basic-auth': { type: 'string' },
  },
});

// The TLS settings scrapecache gets from a tls_server_config with only cert_file and key_file
// (src/config/web-config.ts, src/server/listener-security.ts): TLS 1.2 to 1.3, the server's cipher
// order, ALPN http/1.1; Node's default ciphers, curves and session tickets on both.
const tls = values['tls-cert']
  ? {
    cert: readFileSync(values['tls-cert']),
    key: readFileSync(values['tls-key']),
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    honorCipherOrder: true,
    ALPNProtocols: ['http/1.1'],
  }
  : undefined;
const digest = (text) => createHash('sha256').update(text).digest();
const wanted = values['basic-auth'] ? digest(`Basic ${Buffer.from(values['basic-auth']).toString('base64')}`) : undefined;

const workers = Math.max(1, Number(values.workers));

function fetchRaw(url, gzip) {
  return new Promise((resolve, reject) => {
    const headers = gzip ? { 'accept-encoding': 'gzip' } : {};
    http.get(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${url}: status ${res.statusCode}`));
        else resolve({ body: Buffer.concat(chunks), type: res.headers['content-type'], encoding: res.headers['content-encoding'] });
      });
    }).on('error', reject);
  });
}

async function loadRoutes() {
  const routes = new Map();
  for (const spec of values.route) {
    const eq = spec.indexOf('=');
    const path = spec.slice(0, eq);
    const url = spec.slice(eq + 1);
    const [gzip, identity] = await Promise.all([fetchRaw(url, true), fetchRaw(url, false)]);
    routes.set(path, {
      fetchedAt: Date.now(),
      gzip: gzip.encoding === 'gzip' ? gzip : null,
      identity,
    });
  }
  return routes;
}

function serve(routes, port) {
  const handler = (req, res) => {
    if (wanted && !timingSafeEqual(digest(req.headers.authorization ?? ''), wanted)) {
      res.writeHead(401, { 'www-authenticate': 'Basic', 'content-length': 0 });
      res.end();
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const entry = routes.get(q === -1 ? url : url.slice(0, q));
    if (entry === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('no route\n');
      return;
    }
    const acceptEncoding = req.headers['accept-encoding'];
    const representation = entry.gzip && acceptEncoding?.includes('gzip')
      ? entry.gzip
      : entry.identity;
    // Strict reference (issue 9): the header block is built once and only rebuilt when Age
    // changes (once a second), as a cache can do too; a request only picks it.
    const age = Math.floor((Date.now() - entry.fetchedAt) / 1000);
    if (representation.age !== age) {
      representation.age = age;
      representation.head = [
        'content-type', representation.type,
        'content-length', String(representation.body.length),
        'vary', 'Accept, Accept-Encoding',
        ...(representation === entry.gzip ? ['content-encoding', 'gzip'] : []),
        'age', String(age),
        'cache-status', `scrapecache; hit; ttl=${86400 - age}`,
      ];
    }
    const headers = representation.head;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : representation.body);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.listen(port, values.host, () => {
    if (cluster.isPrimary) process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
    else process.send?.({ listening: server.address().port });
  });
  return server;
}

function onSignals(handler) {
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, handler);
}

if (workers === 1) {
  const server = serve(await loadRoutes(), Number(values.port));
  onSignals(() => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
} else if (cluster.isPrimary) {
  // A fixed port is needed so that every worker shares one listening socket.
  let port = Number(values.port);
  if (port === 0) {
    const probe = http.createServer();
    await new Promise((resolve) => probe.listen(0, values.host, resolve));
    port = probe.address().port;
    await new Promise((resolve) => probe.close(resolve));
  }
  cluster.schedulingPolicy = values.sched === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork({ REFERENCE_PORT: String(port) }).on('message', (message) => {
      if (message?.listening && ++ready === workers) process.stdout.write(`${JSON.stringify({ port })}\n`);
    });
  }
  onSignals(() => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const server = serve(await loadRoutes(), Number(process.env.REFERENCE_PORT));
  onSignals(() => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
