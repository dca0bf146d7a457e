/**
 * `npm run demo`: the point of scrapecache in a few seconds, with nothing else installed. A demo
 * exporter that takes 2 s per scrape, the proxy in front of it on demo/proxy.yaml, a few scrapes
 * of each side by side, then both keep running for a look at the status page.
 *
 * SCRAPECACHE_DEMO_EXPORTER, SCRAPECACHE_DEMO_LISTEN and SCRAPECACHE_DEMO_ADMIN_LISTEN move the
 * three listeners (port 0 picks a free one); SCRAPECACHE_DEMO_COLLECT_MS the exporter's time.
 */
import { request } from 'node:http';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { startApp, type App } from '../app.js';
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { startDemoExporter, type DemoExporter } from './demo-exporter.js';

const SCRAPES = 3;
const CONFIG_FILE = fileURLToPath(new URL('../../../demo/proxy.yaml', import.meta.url));
/** As the status page and the first line show it: relative to where the demo was started, when below it. */
const CONFIG = ((shown) => (shown.startsWith('..') || isAbsolute(shown) ? CONFIG_FILE : shown))(relative(process.cwd(), CONFIG_FILE));

interface Scrape {
  seconds: number;
  status: number;
  cacheStatus: string | undefined;
}

function scrape(url: string, headers: Record<string, string>): Promise<Scrape> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/plain', ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          seconds: Number(process.hrtime.bigint() - started) / 1e9,
          status: res.statusCode ?? 0,
          cacheStatus: res.headers['cache-status'] as string | undefined,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function series(url: string, headers: Record<string, string>): Promise<Scrape[]> {
  const out: Scrape[] = [];
  for (let i = 0; i < SCRAPES; i++) out.push(await scrape(url, headers));
  return out;
}

function hostPort(text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  if (!m) throw new Error(`expected host:port, got "${text}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

const where = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;
const secs = (s: number) => `${s.toFixed(3)} s`.padStart(9);

async function main(): Promise<void> {
  const collectMs = Number(process.env['SCRAPECACHE_DEMO_COLLECT_MS'] ?? 2000);
  const exporterAt = hostPort(process.env['SCRAPECACHE_DEMO_EXPORTER'] ?? '127.0.0.1:9279');
  let exporter: DemoExporter;
  try {
    exporter = await startDemoExporter(exporterAt.host, exporterAt.port, collectMs);
  } catch (err) {
    throw new Error(`demo exporter: cannot listen on ${where(exporterAt.host, exporterAt.port)}: ${(err as Error).message}`);
  }
  // The config names the exporter by this variable: the address it actually got.
  process.env['SCRAPECACHE_DEMO_EXPORTER'] = where(exporterAt.host, exporter.address.port);
  let app: App;
  try {
    const config = loadConfig(CONFIG);
    app = await startApp({ config, log: createLogger(config.log.level, pino.destination(2)), configFile: CONFIG });
  } catch (err) {
    await exporter.close();
    throw err instanceof ConfigError ? new Error(`invalid config: ${formatProblem(err.problems[0]!)}`) : err;
  }
  const direct = `http://${where(exporterAt.host, exporter.address.port)}/metrics`;
  const scrapeAt = `http://${where(app.config().listen.host, app.scrapeAddress.port)}`;
  const proxied = `${scrapeAt}/demo/metrics`;
  const statusPage = `http://${where(app.config().admin.listen.host, app.adminAddress.port)}/`;

  const out = process.stdout;
  out.write(`scrapecache demo: an exporter that takes ${collectMs / 1000} s per scrape, and scrapecache in front of it (${CONFIG})\n`);
  out.write(`scraping each ${SCRAPES} times, one after another, both at once...\n\n`);
  const [d, p] = await Promise.all([series(direct, { 'x-demo-client': 'direct' }), series(proxied, {})]);
  out.write(`scrape   direct     through scrapecache   Cache-Status\n`);
  for (let i = 0; i < SCRAPES; i++) {
    out.write(`${String(i + 1).padEnd(6)} ${secs(d[i]!.seconds)}  ${secs(p[i]!.seconds)}              ${p[i]!.status === 200 ? (p[i]!.cacheStatus ?? '') : `HTTP ${p[i]!.status}`}\n`);
  }
  const sum = (list: Scrape[]) => list.reduce((n, s) => n + s.seconds, 0);
  out.write(`total  ${secs(sum(d))}  ${secs(sum(p))}\n\n`);
  out.write(`upstream fetches: ${exporter.scrapes.direct} for ${SCRAPES} direct scrapes, ${exporter.scrapes.proxy} for ${SCRAPES} scrapes through scrapecache (counted by the exporter)\n\n`);
  out.write(`Both keep running; scrape again, or invalidate and refresh from the status page:\n`);
  out.write(`  exporter     ${direct}\n`);
  out.write(`  proxied      ${proxied}\n`);
  out.write(`  landing page ${scrapeAt}/\n`);
  out.write(`  own metrics  ${scrapeAt}/metrics\n`);
  out.write(`  status page  ${statusPage}\n`);
  out.write(`Ctrl-C stops both.\n`);

  const stop = () => {
    void Promise.all([app.close(1000), exporter.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`scrapecache demo: ${(err as Error).message}\n`);
  process.exit(1);
});
