/**
 * `workers: N` (SPEC 2), the primary: it runs the admin listener and does every upstream fetch,
 * so a key is fetched once per TTL for the whole group. Every response it stores is sent to every
 * worker; invalidation and reload reach every worker the same way. Scrapes never reach it.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { startApp, type App } from '../app.js';
import { keyOf } from '../cache/key.js';
import { encodeRecord } from '../cache/stored-record.js';
import { UpstreamProfiles } from '../cache/upstream-profile.js';
import type { Config } from '../config/types.js';
import type { ProxyError } from '../errors.js';
import { LastFetchRecorder, type LastFetch } from '../last-fetch.js';
import { fetchesAnswer, hitsAnswer, metricsAnswer, parseToPrimary, type ToPrimary, type ToWorker } from './messages.js';
import { appOptionsOf, type RunOptions, type Running } from './run-options.js';
import { WorkersBus } from './workers-bus.js';

type MetricsJson = object[];
type Check = { safeParse(v: unknown): { success: boolean; data?: unknown } };
type FillAsk = Extract<ToPrimary, { t: 'fill' }>;

/** The forked workers and the questions in flight to them. */
class WorkerGroup {
  readonly workers = new Set<Worker>();
  /** Workers that said `ready`: an invalidation's answer waits for each of them (WorkersBus). */
  readonly serving = new Set<Worker>();
  readonly bus = new WorkersBus(
    () => this.workers,
    (w) => this.serving.has(w),
  );
  /** The scrape address each worker reported when it was ready. */
  readonly readyScrape: string[] = [];
  stopping = false;
  /** The config text the group runs: what a worker asking `config?` is given. */
  current: string;
  private askId = 0;
  private readonly answers = new Map<number, (value: unknown) => void>();
  private reloadId = 0;
  private readonly confirmations = new Map<number, (error: string | undefined) => void>();

  constructor(
    source: string,
    private readonly log: Logger,
  ) {
    this.current = source;
  }

  connected(): Worker[] {
    return [...this.workers].filter((w) => w.isConnected());
  }

  broadcast(message: ToWorker): void {
    for (const w of this.connected()) w.send(message);
  }

  /** Asks every live worker; one that does not answer within 2 s, or answers nonsense, counts as `none`. */
  ask<T>(what: 'metrics' | 'hits' | 'fetches', none: T, check: Check, keys?: string[]): Promise<T[]> {
    return Promise.all(this.connected().map((w) => this.askOne(w, what, none, check, keys)));
  }

  private askOne<T>(w: Worker, what: 'metrics' | 'hits' | 'fetches', none: T, check: Check, keys?: string[]): Promise<T> {
    return new Promise<T>((resolve) => {
      const id = ++this.askId;
      const timer = setTimeout(() => {
        this.answers.delete(id);
        resolve(none);
      }, 2000);
      this.answers.set(id, (value) => {
        clearTimeout(timer);
        this.answers.delete(id);
        const parsed = check.safeParse(value);
        if (!parsed.success) this.log.warn({ worker: w.process.pid, what }, 'worker answered with a malformed message; counted as none');
        resolve(parsed.success ? (parsed.data as T) : none);
      });
      w.send((keys === undefined ? { t: 'ask', id, what } : { t: 'ask', id, what, keys }) satisfies ToWorker);
    });
  }

  answered(id: number, value: unknown): void {
    this.answers.get(id)?.(value);
  }

  /**
   * Workers never read proxy.yaml: an editor rewriting it mid-reload cannot split the group
   * between two configs. A worker that cannot apply the text makes the reload fail visibly.
   */
  async reload(text: string): Promise<string | undefined> {
    this.current = text;
    const errors = (await Promise.all(this.connected().map((w) => this.reloadOne(w, text)))).filter((e) => e !== undefined);
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  private reloadOne(w: Worker, text: string): Promise<string | undefined> {
    return new Promise<string | undefined>((resolve) => {
      const id = ++this.reloadId;
      const timer = setTimeout(() => {
        this.confirmations.delete(id);
        resolve(`worker ${w.process.pid} did not confirm the reload within 5 s`);
      }, 5000);
      this.confirmations.set(id, (error) => {
        clearTimeout(timer);
        this.confirmations.delete(id);
        resolve(error === undefined ? undefined : `worker ${w.process.pid}: ${error}`);
      });
      w.send({ t: 'reload', id, source: text } satisfies ToWorker);
    });
  }

  reloaded(id: number, error: string | undefined): void {
    this.confirmations.get(id)?.(error);
  }
}

/** What the primary's admin listener shows for the whole group: its own numbers and the workers'. */
function groupAdmin(group: WorkerGroup, app: () => App) {
  async function aggregated() {
    const own = await app().metrics.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([own, ...(await group.ask<MetricsJson>('metrics', [], metricsAnswer))]);
  }
  async function metricsText(): Promise<{ contentType: string; text: string }> {
    const registry = await aggregated();
    return { contentType: registry.contentType, text: await registry.metrics() };
  }
  /** The primary makes every fill; the workers make the pass-through fetches. */
  async function lastFetches(): Promise<Map<string, LastFetch>> {
    const merged = new LastFetchRecorder();
    merged.merge(app().metrics.lastFetch.entries());
    for (const fetches of await group.ask<Array<[string, LastFetch]>>('fetches', [], fetchesAnswer)) merged.merge(fetches);
    return new Map(merged.entries());
  }
  /** Hits per key (of these keys, or of all), summed over the workers: the primary itself serves none. */
  async function cacheHits(keys?: string[]): Promise<Map<string, number>> {
    const total = new Map<string, number>();
    for (const hits of await group.ask<Array<[string, number]>>('hits', [], hitsAnswer, keys)) {
      for (const [key, n] of hits) total.set(key, (total.get(key) ?? 0) + n);
    }
    return total;
  }
  return { metricsText, cacheHits, metricsJson: async () => (await aggregated()).getMetricsAsJSON(), lastFetches };
}

/**
 * A worker's `fill`: the primary fills (or joins a fill) and answers with the record unless the
 * worker has it already. What a fill teaches the profiles reaches the workers before the answer
 * (the scrape handler learns in onAnswer, and `profiles` tells them); so does what a copy held
 * here teaches (one loaded from disk, say), so that the asking worker plans the next scrape as
 * the others do.
 */
function fillForWorker(app: App, config: Config, profiles: UpstreamProfiles, worker: Worker, { id, target }: FillAsk): void {
  const route = app.table().byName.get(target.route);
  const reply = (m: ToWorker) => worker.isConnected() && worker.send(m);
  if (!route?.cache) {
    reply({ t: 'failed', id, code: 'UPSTREAM_UNREACHABLE', message: `route ${target.route}: not a cached route in the primary's config` });
    return;
  }
  app.cache.fillFor({ ...target, accept: target.accept, route }).then(
    (result) => {
      if (result.via === 'held' && result.entry.status === 200) {
        const { entry } = result;
        const now = Date.now();
        profiles.learn(route, target.path, profiles.get(route, target.path, now), entry.accept, entry.representation, entry.contentType, now);
      }
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
}

interface Dispatch {
  group: WorkerGroup;
  config: Config;
  profiles: UpstreamProfiles;
  log: Logger;
  app: () => App;
  metricsText: () => Promise<{ contentType: string; text: string }>;
  allReady: () => void;
}

function onWorkerMessage(d: Dispatch, worker: Worker, raw: unknown): void {
  const message = parseToPrimary(raw);
  if (typeof message === 'string') {
    d.log.warn({ worker: worker.process.pid, problem: message }, 'malformed message from a worker; ignored');
    return;
  }
  switch (message.t) {
    case 'config?':
      if (worker.isConnected()) worker.send({ t: 'config', source: d.group.current } satisfies ToWorker);
      return;
    case 'reloaded':
      d.group.reloaded(message.id, message.error);
      return;
    case 'ready':
      d.group.serving.add(worker);
      d.group.readyScrape.push(message.scrape);
      if (d.group.readyScrape.length === d.config.workers) d.allReady();
      return;
    case 'answer':
      d.group.answered(message.id, message.value);
      return;
    case 'applied':
      d.group.bus.applied(message.id, worker);
      return;
    case 'profiles?':
      if (worker.isConnected()) worker.send({ t: 'profiles', list: d.profiles.known(), whole: true } satisfies ToWorker);
      return;
    case 'metrics?': {
      const { id } = message;
      d.metricsText().then(
        ({ contentType, text }) => worker.isConnected() && worker.send({ t: 'metrics', id, contentType, text } satisfies ToWorker),
        (err: unknown) => d.log.warn({ error: (err as Error).message }, 'cannot gather metrics for a worker'),
      );
      return;
    }
    case 'fill':
      fillForWorker(d.app(), d.config, d.profiles, worker, message);
      return;
  }
}

/** Forks the workers; one that exits is replaced half a second later unless the group is stopping. */
function forkWorkers(d: Dispatch): void {
  const fork = () => {
    const worker = cluster.fork({ SCRAPECACHE_WORKER: '1' });
    d.group.workers.add(worker);
    worker.on('message', (m: unknown) => onWorkerMessage(d, worker, m));
    worker.on('exit', (code, signal) => {
      d.group.workers.delete(worker);
      d.group.serving.delete(worker);
      d.group.bus.gone(worker);
      if (d.group.stopping) return;
      d.log.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting another');
      setTimeout(fork, 500).unref();
    });
  };
  for (let i = 0; i < d.config.workers; i++) fork();
}

/** Waits until every worker listens; a worker that exits first fails the start-up and stops the rest. */
async function awaitWorkersReady(group: WorkerGroup, config: Config, ready: Promise<void>, app: App): Promise<void> {
  const failed = new Promise<never>((_, reject) => {
    cluster.once('exit', (w, code) => {
      if (group.readyScrape.length < config.workers) reject(new Error(`worker ${w.process.pid} exited with code ${code} during start-up`));
    });
  });
  try {
    await Promise.race([ready, failed]);
  } catch (err) {
    group.stopping = true;
    for (const w of group.workers) w.kill();
    await app.close(0);
    throw err;
  }
}

/** Asks the workers to shut down, gives them 6 s, then kills what is left and closes the primary's app. */
async function closeGroup(group: WorkerGroup, app: App): Promise<void> {
  group.stopping = true;
  const exits = [...group.workers].map((w) => new Promise((r) => (w.isDead() ? r(undefined) : w.once('exit', r))));
  group.broadcast({ t: 'shutdown' });
  const grace = new Promise((r) => setTimeout(r, 6000).unref());
  await Promise.race([Promise.all(exits), grace]);
  for (const w of group.workers) if (!w.isDead()) w.kill('SIGKILL');
  await app.close();
}

/** The primary: admin listener, fills, prefetch; forks and supervises the workers. */
export async function runPrimary(run: RunOptions): Promise<Running> {
  const { config, source, log } = run;
  // Let the kernel hand connections to the workers: the primary never touches a scrape.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ serialization: 'advanced' });
  const group = new WorkerGroup(source, log);
  let app: App | undefined;
  const appNow = () => app!;
  const admin = groupAdmin(group, appNow);
  // The group's one set of profiles: learned here from every fill, told to every worker.
  const profiles = new UpstreamProfiles({ learned: (news) => group.broadcast({ t: 'profiles', list: [news] }) });
  app = await startApp({
    ...appOptionsOf(run),
    listeners: { scrape: false, admin: true },
    cacheParts: { bus: group.bus },
    profiles,
    admin,
    afterReload: (text) => group.reload(text),
  });

  let allReady!: () => void;
  const ready = new Promise<void>((r) => (allReady = r));
  forkWorkers({ group, config, profiles, log, app: appNow, metricsText: admin.metricsText, allReady });
  await awaitWorkersReady(group, config, ready, app);
  log.info({ scrape: group.readyScrape[0], admin: `${app.adminAddress.address}:${app.adminAddress.port}`, workers: config.workers }, 'scrapecache listening');

  const started = app;
  return { reload: () => started.reload(), close: () => closeGroup(group, started) };
}
