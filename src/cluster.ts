/**
 * `workers: N` (SPEC 2): N worker processes serve scrapes, each from its own copy of the cache;
 * the primary runs the admin listener and does every upstream fetch, so a key is fetched once
 * per TTL for the whole group. Every response the primary stores is sent to every worker;
 * invalidation and reload reach every worker the same way.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { startApp, type App } from './app.js';
import type { ListenOverrides } from './config/listen-overrides.js';
import { encodeRecord } from './cache/stored-record.js';
import { keyOf } from './cache/scrape-cache.js';
import { PrimaryLink } from './cluster/primary-link.js';
import { fetchesAnswer, hitsAnswer, metricsAnswer, parseToPrimary, parseToWorker, type ToPrimary, type ToWorker } from './cluster/messages.js';
import { WorkersBus } from './cluster/workers-bus.js';
import type { Config } from './config/types.js';
import type { ProxyError } from './errors.js';

type MetricsJson = object[];
import { LastFetchRecorder, type LastFetch } from './last-fetch.js';

export interface RunOptions {
  config: Config;
  /** The config text `config` was parsed from: the primary hands this same text to every worker. */
  source: string;
  file: string;
  log: Logger;
  logLevelOverride: boolean;
  /** --web.listen-address and --web.admin-listen-address, kept over the file on reload. */
  listenOverrides?: ListenOverrides;
  /** --web.config.file: every process that listens reads and watches it. */
  webConfigFile?: string;
}

export interface Running {
  /** Re-reads the config; in the primary, workers follow a successful reload. */
  reload(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** The primary: admin listener, fills, prefetch; forks and supervises the workers. */
export async function runPrimary({ config, source, file, log, logLevelOverride, listenOverrides, webConfigFile }: RunOptions): Promise<Running> {
  // Let the kernel hand connections to the workers: the primary never touches a scrape.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ serialization: 'advanced' });
  const workers = new Set<Worker>();
  let stopping = false;
  let askId = 0;
  const answers = new Map<number, (value: unknown) => void>();

  const broadcast = (message: ToWorker) => {
    for (const w of workers) if (w.isConnected()) w.send(message);
  };

  /** Asks every live worker; one that does not answer within 2 s, or answers nonsense, counts as `none`. */
  function askWorkers<T>(what: 'metrics' | 'hits' | 'fetches', none: T, check: { safeParse(v: unknown): { success: boolean; data?: unknown } }, keys?: string[]): Promise<T[]> {
    const asked = [...workers].filter((w) => w.isConnected()).map(
      (w) =>
        new Promise<T>((resolve) => {
          const id = ++askId;
          const timer = setTimeout(() => {
            answers.delete(id);
            resolve(none);
          }, 2000);
          answers.set(id, (value) => {
            clearTimeout(timer);
            answers.delete(id);
            const parsed = check.safeParse(value);
            if (!parsed.success) log.warn({ worker: w.process.pid, what }, 'worker answered with a malformed message; counted as none');
            resolve(parsed.success ? (parsed.data as T) : none);
          });
          w.send((keys === undefined ? { t: 'ask', id, what } : { t: 'ask', id, what, keys }) satisfies ToWorker);
        }),
    );
    return Promise.all(asked);
  }

  async function aggregated() {
    const own = await app.metrics.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([own, ...(await askWorkers<MetricsJson>('metrics', [], metricsAnswer))]);
  }

  async function metricsText(): Promise<{ contentType: string; text: string }> {
    const registry = await aggregated();
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  /** The primary makes every fill; the workers make the pass-through fetches. */
  async function lastFetches(): Promise<Map<string, LastFetch>> {
    const merged = new LastFetchRecorder();
    merged.merge(app.metrics.lastFetch.entries());
    for (const fetches of await askWorkers<Array<[string, LastFetch]>>('fetches', [], fetchesAnswer)) merged.merge(fetches);
    return new Map(merged.entries());
  }

  /** Hits per key (of these keys, or of all), summed over the workers: the primary itself serves none. */
  async function cacheHits(keys?: string[]): Promise<Map<string, number>> {
    const total = new Map<string, number>();
    for (const hits of await askWorkers<Array<[string, number]>>('hits', [], hitsAnswer, keys)) {
      for (const [key, n] of hits) total.set(key, (total.get(key) ?? 0) + n);
    }
    return total;
  }

  const app: App = await startApp({
    config,
    log,
    configFile: file,
    logLevelOverride,
    ...(listenOverrides ? { listenOverrides } : {}),
    ...(webConfigFile !== undefined ? { webConfigFile } : {}),
    listeners: { scrape: false, admin: true },
    cacheParts: { bus: new WorkersBus(() => workers) },
    admin: {
      metricsText,
      cacheHits,
      metricsJson: async () => (await aggregated()).getMetricsAsJSON(),
      lastFetches,
    },
    afterReload: (text) => reloadWorkers(text),
  });

  // Workers never read proxy.yaml: an editor rewriting it mid-reload cannot split the group
  // between two configs. A worker that cannot apply the text makes the reload fail visibly.
  let current = source;
  let reloadId = 0;
  const confirmations = new Map<number, (error: string | undefined) => void>();
  async function reloadWorkers(text: string): Promise<string | undefined> {
    current = text;
    const asked = [...workers].filter((w) => w.isConnected()).map(
      (w) =>
        new Promise<string | undefined>((resolve) => {
          const id = ++reloadId;
          const timer = setTimeout(() => {
            confirmations.delete(id);
            resolve(`worker ${w.process.pid} did not confirm the reload within 5 s`);
          }, 5000);
          confirmations.set(id, (error) => {
            clearTimeout(timer);
            confirmations.delete(id);
            resolve(error === undefined ? undefined : `worker ${w.process.pid}: ${error}`);
          });
          w.send({ t: 'reload', id, source: text } satisfies ToWorker);
        }),
    );
    const errors = (await Promise.all(asked)).filter((e) => e !== undefined);
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  const readyScrape: string[] = [];
  let allReady: () => void;
  const ready = new Promise<void>((r) => (allReady = r));

  function onMessage(worker: Worker, raw: unknown): void {
    const message = parseToPrimary(raw);
    if (typeof message === 'string') {
      log.warn({ worker: worker.process.pid, problem: message }, 'malformed message from a worker; ignored');
      return;
    }
    switch (message.t) {
      case 'config?':
        if (worker.isConnected()) worker.send({ t: 'config', source: current } satisfies ToWorker);
        return;
      case 'reloaded':
        confirmations.get(message.id)?.(message.error);
        return;
      case 'ready':
        readyScrape.push(message.scrape);
        if (readyScrape.length === config.workers) allReady();
        return;
      case 'answer':
        answers.get(message.id)?.(message.value);
        return;
      case 'metrics?': {
        const { id } = message;
        metricsText().then(
          ({ contentType, text }) => worker.isConnected() && worker.send({ t: 'metrics', id, contentType, text } satisfies ToWorker),
          (err: unknown) => log.warn({ error: (err as Error).message }, 'cannot gather metrics for a worker'),
        );
        return;
      }
      case 'fill': {
        const { id, target } = message;
        const route = app.table().byName.get(target.route);
        const reply = (m: ToWorker) => worker.isConnected() && worker.send(m);
        if (!route || !route.cache) {
          reply({ t: 'failed', id, code: 'UPSTREAM_UNREACHABLE', message: `route ${target.route}: not a cached route in the primary's config` });
          return;
        }
        app.cache.fillFor({ ...target, accept: target.accept, route }).then(
          (result) => {
            // A record stored by its own fill reached every worker in its `stored` event just now;
            // not so with Redis, where that event waits for the shared write and lease (see ScrapeCache.store).
            // A fill is stored under what the upstream answered, which may be another key than
            // the one asked for (SPEC 3.2): the asker matches `stored` events by key, so send it.
            const sent = result.stored && result.via !== 'held' && !config.cache.redis && result.entry.key === keyOf({ ...target, accept: target.accept, route });
            reply({
              t: 'filled',
              id,
              stored: result.stored,
              ...(result.via ? { via: result.via } : {}),
              ...(sent ? {} : { record: encodeRecord(result.entry) }),
            });
          },
          (err: ProxyError) => reply({ t: 'failed', id, code: err.code, message: err.message }),
        );
        return;
      }
    }
  }

  const fork = () => {
    const worker = cluster.fork({ SCRAPECACHE_WORKER: '1' });
    workers.add(worker);
    worker.on('message', (m: unknown) => onMessage(worker, m));
    worker.on('exit', (code, signal) => {
      workers.delete(worker);
      if (stopping) return;
      log.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting another');
      setTimeout(fork, 500).unref();
    });
  };
  for (let i = 0; i < config.workers; i++) fork();

  const failed = new Promise<never>((_, reject) => {
    cluster.once('exit', (w, code) => {
      if (readyScrape.length < config.workers) reject(new Error(`worker ${w.process.pid} exited with code ${code} during start-up`));
    });
  });
  try {
    await Promise.race([ready, failed]);
  } catch (err) {
    stopping = true;
    for (const w of workers) w.kill();
    await app.close(0);
    throw err;
  }
  log.info(
    { scrape: readyScrape[0], admin: `${app.adminAddress.address}:${app.adminAddress.port}`, workers: config.workers },
    'scrapecache listening',
  );

  return {
    reload: () => app.reload(),
    async close() {
      stopping = true;
      const exits = [...workers].map((w) => new Promise((r) => (w.isDead() ? r(undefined) : w.once('exit', r))));
      broadcast({ t: 'shutdown' });
      const grace = new Promise((r) => setTimeout(r, 6000).unref());
      await Promise.race([Promise.all(exits), grace]);
      for (const w of workers) if (!w.isDead()) w.kill('SIGKILL');
      await app.close();
    },
  };
}

/** A worker: the scrape listener and a cache whose fills the primary makes. */
export async function runWorker({ config, file, log, logLevelOverride, listenOverrides, webConfigFile }: RunOptions): Promise<Running> {
  const send = (m: ToPrimary) => process.send?.(m);
  const link = new PrimaryLink(send, () => process.connected);

  // GET /metrics on a worker's scrape listener: the primary gathers the whole group's.
  let metricsId = 0;
  const metricsAsked = new Map<number, (answer: { contentType: string; text: string }) => void>();
  const selfMetrics = () =>
    new Promise<{ contentType: string; text: string }>((resolve, reject) => {
      const id = ++metricsId;
      const timer = setTimeout(() => {
        metricsAsked.delete(id);
        reject(new Error('the primary process did not answer within 5 s'));
      }, 5000);
      metricsAsked.set(id, (answer) => {
        clearTimeout(timer);
        metricsAsked.delete(id);
        resolve(answer);
      });
      send({ t: 'metrics?', id });
    });

  const app = await startApp({
    config,
    log,
    configFile: file,
    logLevelOverride,
    ...(listenOverrides ? { listenOverrides } : {}),
    ...(webConfigFile !== undefined ? { webConfigFile } : {}),
    selfMetrics,
    listeners: { scrape: true, admin: false },
    // The primary fetches, prefetches and keeps the disk level for the group.
    cacheParts: { filler: link, bus: link, prefetch: false, secondLevel: false },
  });

  process.on('message', (raw: unknown) => {
    const message = parseToWorker(raw);
    if (typeof message === 'string') {
      log.warn({ problem: message }, 'malformed message from the primary; ignored');
      return;
    }
    switch (message.t) {
      case 'event':
      case 'filled':
      case 'failed':
        try {
          link.receive(message);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'unreadable record from the primary; ignored');
        }
        return;
      case 'config':
        return; // answered before start-up (configFromPrimary)
      case 'reload':
        void app.reload(message.source).then((error) => send(error === undefined ? { t: 'reloaded', id: message.id } : { t: 'reloaded', id: message.id, error }));
        return;
      case 'ask':
        if (message.what === 'metrics') {
          void app.metrics.registry.getMetricsAsJSON().then((value) => send({ t: 'answer', id: message.id, value }));
        } else if (message.what === 'fetches') {
          send({ t: 'answer', id: message.id, value: app.metrics.lastFetch.entries() });
        } else {
          const held = message.keys === undefined ? [...app.cache.entries()] : message.keys.map((key) => app.cache.peekKey(key)).filter((e) => e !== undefined);
          send({ t: 'answer', id: message.id, value: held.map((e) => [e.key, e.hits]) });
        }
        return;
      case 'metrics':
        metricsAsked.get(message.id)?.({ contentType: message.contentType, text: message.text });
        return;
      case 'shutdown':
        void app.close().then(() => process.exit(0));
        return;
    }
  });
  process.on('disconnect', () => {
    link.disconnected();
    void app.close(1000).then(() => process.exit(0));
  });
  // The primary decides: a terminal's Ctrl-C or a SIGHUP to the group reaches it too.
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));

  const a: AddressInfo = app.scrapeAddress;
  send({ t: 'ready', scrape: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` });
  return { reload: () => app.reload(), close: () => app.close() };
}

export const isWorker = cluster.isWorker;

/** In a worker: the config text its primary runs, asked for before anything starts. */
export function configFromPrimary(): Promise<string> {
  return new Promise((resolve, reject) => {
    const onMessage = (raw: unknown) => {
      const message = parseToWorker(raw);
      if (typeof message === 'string' || message.t !== 'config') return;
      process.off('message', onMessage);
      resolve(message.source);
    };
    process.on('message', onMessage);
    process.once('disconnect', () => reject(new Error('the primary process is gone')));
    process.send?.({ t: 'config?' } satisfies ToPrimary);
  });
}
