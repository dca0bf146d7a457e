/**
 * The demo's exporter: the kind scrapecache is for, one that takes seconds to collect. Every
 * scrape sleeps for the collection time, then answers text-format metrics; it counts who asked.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DemoExporter {
  address: AddressInfo;
  /** Scrapes answered, by the X-Demo-Client header ("direct") or "proxy" without it. */
  scrapes: { direct: number; proxy: number };
  close(): Promise<void>;
}

export async function startDemoExporter(host: string, port: number, collectMs: number): Promise<DemoExporter> {
  const scrapes = { direct: 0, proxy: 0 };
  const started = Date.now();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('the demo exporter serves /metrics\n');
      return;
    }
    const client = req.headers['x-demo-client'] === 'direct' ? 'direct' : 'proxy';
    setTimeout(() => {
      scrapes[client]++;
      const body = [
        '# HELP demo_collection_seconds How long this exporter takes to collect, per scrape.',
        '# TYPE demo_collection_seconds gauge',
        `demo_collection_seconds ${collectMs / 1000}`,
        '# HELP demo_scrapes_total Scrapes this exporter answered, by client.',
        '# TYPE demo_scrapes_total counter',
        `demo_scrapes_total{client="direct"} ${scrapes.direct}`,
        `demo_scrapes_total{client="proxy"} ${scrapes.proxy}`,
        '# HELP demo_uptime_seconds Seconds since the demo exporter started.',
        '# TYPE demo_uptime_seconds gauge',
        `demo_uptime_seconds ${((Date.now() - started) / 1000).toFixed(3)}`,
        '',
      ].join('\n');
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    }, collectMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: server.address() as AddressInfo,
    scrapes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
