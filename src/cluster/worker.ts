/**
 * `workers: N` (SPEC 2), a worker: the scrape listener and a cache whose fills the primary makes.
 * It reads no config file: the primary hands it the text it runs, at start and on every reload.
 */
import cluster from 'node:cluster';
import { startApp, type App } from '../app.js';
import { UpstreamProfiles } from '../cache/upstream-profile.js';
import { addressText } from '../net/host-port.js';
import { parseToWorker, type ToPrimary, type ToWorker } from './messages.js';
import { PrimaryLink } from './primary-link.js';
import { appOptionsOf, type RunOptions, type Running } from './run-options.js';

type Send = (m: ToPrimary) => void;
type MetricsAnswer = { contentType: string; text: string };

/** GET /metrics on a worker's scrape listener: the primary gathers the whole group's. */
class MetricsFromPrimary {
  private metricsId = 0;
  private readonly asked = new Map<number, (answer: MetricsAnswer) => void>();

  constructor(private readonly send: Send) {}

  readonly ask = (): Promise<MetricsAnswer> =>
    new Promise<MetricsAnswer>((resolve, reject) => {
      const id = ++this.metricsId;
      const timer = setTimeout(() => {
        this.asked.delete(id);
        reject(new Error('the primary process did not answer within 5 s'));
      }, 5000);
      this.asked.set(id, (answer) => {
        clearTimeout(timer);
        this.asked.delete(id);
        resolve(answer);
      });
      this.send({ t: 'metrics?', id });
    });

  answered(id: number, answer: MetricsAnswer): void {
    this.asked.get(id)?.(answer);
  }
}

/** The primary asks a worker for its metrics, its last fetches or its hits per key. */
function answerAsk(app: App, send: Send, message: Extract<ToWorker, { t: 'ask' }>): void {
  if (message.what === 'metrics') {
    void app.metrics.registry.getMetricsAsJSON().then((value) => send({ t: 'answer', id: message.id, value }));
  } else if (message.what === 'fetches') {
    send({ t: 'answer', id: message.id, value: app.metrics.lastFetch.entries() });
  } else {
    const held = message.keys === undefined ? [...app.cache.entries()] : message.keys.map((key) => app.cache.peekKey(key)).filter((e) => e !== undefined);
    send({ t: 'answer', id: message.id, value: held.map((e) => [e.key, app.cache.hitsOf(e)]) });
  }
}

function onPrimaryMessage(app: App, link: PrimaryLink, metrics: MetricsFromPrimary, send: Send, log: RunOptions['log'], raw: unknown): void {
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
    case 'profiles':
      return; // taken by followProfiles
    case 'reload':
      void app.reload(message.source).then((error) => send(error === undefined ? { t: 'reloaded', id: message.id } : { t: 'reloaded', id: message.id, error }));
      return;
    case 'ask':
      answerAsk(app, send, message);
      return;
    case 'metrics':
      metrics.answered(message.id, { contentType: message.contentType, text: message.text });
      return;
    case 'shutdown':
      void app.close().then(() => process.exit(0));
      return;
  }
}

/** The primary decides when the group stops: a terminal's Ctrl-C or a SIGHUP to the group reaches it too. */
function followPrimaryLifecycle(app: App, link: PrimaryLink): void {
  process.on('disconnect', () => {
    link.disconnected();
    void app.close(1000).then(() => process.exit(0));
  });
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

/**
 * The primary's profiles, followed for the worker's life: every worker plans a client as the
 * others do, a new one too (it starts from all the primary knows). Resolves once that is here.
 */
function followProfiles(profiles: UpstreamProfiles, send: Send, log: RunOptions['log']): Promise<void> {
  return new Promise((resolve) => {
    process.on('message', (raw: unknown) => {
      if ((raw as { t?: unknown } | null)?.t !== 'profiles') return;
      const message = parseToWorker(raw);
      if (typeof message === 'string' || message.t !== 'profiles') {
        log.warn({ problem: message }, 'malformed profiles from the primary; ignored');
        return;
      }
      for (const news of message.list) profiles.assign(news);
      if (message.whole) resolve();
    });
    process.once('disconnect', () => resolve());
    send({ t: 'profiles?' });
  });
}

/** A worker: the scrape listener and a cache whose fills the primary makes. */
export async function runWorker(run: RunOptions): Promise<Running> {
  const { log } = run;
  const send: Send = (m) => process.send?.(m);
  const link = new PrimaryLink(send, () => process.connected);
  const metrics = new MetricsFromPrimary(send);
  const profiles = new UpstreamProfiles({ follows: true });
  await followProfiles(profiles, send, log);
  const app = await startApp({
    ...appOptionsOf(run),
    selfMetrics: metrics.ask,
    profiles,
    listeners: { scrape: true, admin: false },
    // The primary fetches, prefetches and keeps the disk level for the group.
    cacheParts: { filler: link, bus: link, prefetch: false, secondLevel: false },
  });
  process.on('message', (raw: unknown) => onPrimaryMessage(app, link, metrics, send, log, raw));
  followPrimaryLifecycle(app, link);
  send({ t: 'ready', scrape: addressText(app.scrapeAddress) });
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
