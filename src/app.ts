/**
 * One running proxy: the two listeners, the cache, the current config and its routes. Reload
 * swaps the config atomically (requests in flight finish on the routes they started with).
 */
import { performance } from 'node:perf_hooks';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import { DiskStore } from './cache/disk-store.js';
import { JoinedEventBus } from './cache/joined-event-bus.js';
import { MemoryStore } from './cache/memory-store.js';
import { ScrapeCache, type ScrapeCacheParts } from './cache/scrape-cache.js';
import type { Store } from './cache/store.js';
import type { UpstreamProfiles } from './cache/upstream-profile.js';
import { UpstreamFiller } from './upstream/upstream-filler.js';
import { applyListenOverrides, type ListenOverrides } from './config/listen-overrides.js';
import { parseConfig, readConfigText } from './config/load.js';
import type { Config, ListenAddress, Route } from './config/types.js';
import { configWarnings } from './config/warnings.js';
import { INTERNAL_ERROR, ProxyError } from './errors.js';
import { Metrics } from './metrics.js';
import { addressText } from './net/host-port.js';
import { createAdminHandler, type AdminDeps } from './server/admin-listener.js';
import { writeError } from './server/respond.js';
import { warnExposedCredentials } from './server/exposed-credentials.js';
import { isHealthCheck, ListenerSecurity, type ListenerSecurityOptions } from './server/listener-security.js';
import { RouteTable } from './server/route-table.js';
import { createScrapeHandler } from './server/scrape-listener.js';
import type { SelfMetricsText } from './server/self-metrics.js';
import type { PassThrough } from './upstream/pass-through.js';
import type { RedisLevel } from './cache/redis/redis-level.js';
import { checkUpstreams, type ProbeResult } from './upstream/reachability.js';

export interface AppOptions {
  config: Config;
  log: Logger;
  /** Where reload reads from; defaults to config.file. */
  configFile?: string;
  /** Set false in tests that start many instances in one process. */
  defaultMetrics?: boolean;
  /** Keeps a --log.level from the command line over the file's on reload. */
  logLevelOverride?: boolean;
  /** --web.listen-address and --web.admin-listen-address: kept over the file's on reload. */
  listenOverrides?: ListenOverrides;
  /** Which listeners this process runs (a cluster primary runs only admin, a worker only scrape). */
  listeners?: { scrape: boolean; admin: boolean };
  /**
   * Parts a cluster gives the cache (cluster/): a worker's filler asks the primary, buses carry
   * stored records and invalidations between them. Without, this process fetches itself.
   */
  cacheParts?: Partial<Pick<ScrapeCacheParts, 'filler' | 'bus' | 'prefetch'>> & {
    /** False where another process keeps the second level (a cluster worker). */
    secondLevel?: boolean;
  };
  /** Cluster hooks for the admin listener: reach the workers too. */
  admin?: Pick<AdminDeps, 'metricsText' | 'cacheHits' | 'metricsJson' | 'lastFetches'>;
  /**
   * Called after a successful reload with the config text it applied (the primary hands it to
   * its workers); resolves to an error text when that failed somewhere, which the reload reports.
   */
  afterReload?: (source: string) => Promise<string | undefined>;
  /** What the upstreams speak (cluster/: the primary's, which it tells its workers); default: this process's own. */
  profiles?: UpstreamProfiles;
  /** The scrape listener's `GET /metrics` (a cluster worker asks its primary for the group's); default: this process's. */
  selfMetrics?: () => Promise<SelfMetricsText>;
  /** Client timeouts; tests shorten them. */
  limits?: ClientLimits;
  /** --web.config.file: TLS, basic auth, headers and rate limit for both listeners (SPEC 3.6). */
  webConfigFile?: string;
  webSecurity?: ListenerSecurityOptions;
  /**
   * The time every part reads (freshness, Age, back-off, prefetch, down-since, the status page);
   * default the real clock. Tests move it forward instead of sleeping.
   */
  clock?: Clock;
}

export interface App {
  /** Undefined where this process runs no such listener. */
  readonly scrapeAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  readonly table: () => RouteTable;
  readonly cache: ScrapeCache;
  readonly metrics: Metrics;
  config(): Config;
  /**
   * Re-reads the config file, or applies the given config text (a worker, from its primary).
   * Resolves to the error text when invalid; the running config stays.
   */
  reload(source?: string): Promise<string | undefined>;
  /** The connection check of every upstream made at start-up or by the last reload. */
  upstreamsChecked(): Promise<ProbeResult[]>;
  /** Stops accepting, lets requests in flight finish (bounded), then releases everything. */
  close(graceMs?: number): Promise<void>;
}

export interface ClientLimits {
  /** Time a client has to send its request headers. */
  headersTimeoutMs: number;
  /** Time a client has to send its whole request (not the answer: fills may take the route's timeout). */
  requestTimeoutMs: number;
  /** Idle time before a keep-alive connection is closed: longer than Prometheus's reuse. */
  keepAliveTimeoutMs: number;
}

export const CLIENT_LIMITS: ClientLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000 };

/**
 * Limits that keep a slow or hostile client from holding a listener (slowloris). Header size,
 * request line included, is capped by node's 16 KiB maxHeaderSize (431).
 */
function hardened(server: Server, log: Logger, name: string, limits: ClientLimits): Server {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // No interim 100 Continue: no request body is ever read before the answer (GET and HEAD bodies
  // are refused), and node writes it ahead of the queue, inside a pipelined answer still being
  // written (after its headers, so the client reads it as that answer's body).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => server.emit('request', req, res));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // A response still being written (a pipelined request before the bad one, or our own 400 to a
    // GET with a body) must not be preceded or followed by a second answer nobody asked for: the
    // client would read it as the answer to the wrong request. Node keeps it on the socket.
    const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (pending) {
      if (!pending.headersSent) pending.shouldKeepAlive = false;
      pending.once('finish', () => socket.end());
      pending.once('close', () => socket.destroySoon());
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    log.debug({ listener: name, code: err.code }, 'bad request from client');
    const body = `${STATUS_CODES[status]}\n`;
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
  return server;
}

function listen(server: Server, address: ListenAddress, name: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${address.host}:${address.port} (${name} listener): ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`));
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** A bug of ours in a handler, thrown or rejected, is logged and answered 500; the process serves on. */
function guard(handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>, log: Logger) {
  const failed = (req: IncomingMessage, res: ServerResponse, err: unknown) => {
    log.error({ err, url: req.url }, 'request failed');
    writeError(res, INTERNAL_ERROR);
  };
  return (req: IncomingMessage, res: ServerResponse) => {
    try {
      // A hit is answered synchronously (no promise, no closure); anything that waits returns one.
      handler(req, res)?.catch((err: unknown) => failed(req, res, err));
    } catch (err) {
      failed(req, res, err);
    }
  };
}

const SHUTTING_DOWN = new ProxyError('SHUTTING_DOWN', 'scrapecache is shutting down; the upstream did not answer in time', { headers: { Connection: 'close' } });

/**
 * Clients still waiting when the grace period ends get a 503 before their sockets close, not an
 * empty reply; the writes are given a moment to reach them.
 */
async function answerWaiting(waiting: Set<ServerResponse>): Promise<void> {
  const flushed: Promise<unknown>[] = [];
  for (const res of waiting) {
    if (res.headersSent || res.destroyed) continue;
    flushed.push(new Promise((r) => res.once('close', r)));
    writeError(res, SHUTTING_DOWN, { head: res.req.method === 'HEAD' });
  }
  if (flushed.length > 0) await Promise.race([Promise.all(flushed), new Promise((r) => setTimeout(r, 1000).unref())]);
}

/** Everything a route is configured with, as comparable text (secrets and TLS material only through the fingerprint). */
function routeSettings(route: Route): string {
  const { upstream, queryKeys, headers: _headers, tls: _tls, recordFingerprint: _record, ...rest } = route;
  return JSON.stringify({ ...rest, upstream: upstream.href, queryKeys: queryKeys ? [...queryKeys] : null });
}

/** What startApp builds and reload swaps: read through these getters by the listeners. */
interface AppState {
  config: Config;
  table: RouteTable;
  /** False until both listeners listen, and again once closing starts (GET /-/ready). */
  ready: boolean;
  /** The last reload's error while it stands, for the status page. */
  reloadError: string | undefined;
  /** The last start-up or reload's connection check of the upstreams (tests wait for it). */
  upstreamsChecked: Promise<ProbeResult[]>;
  /** http-proxy (about 6 MiB of RSS) is loaded only once a config has a pass-through route. */
  passThrough: PassThrough | undefined;
  scrapeAddress: AddressInfo | undefined;
  adminAddress: AddressInfo | undefined;
}

/** The cache and the levels under it, opened before anything listens. */
interface CacheLevels {
  cache: ScrapeCache;
  redis: RedisLevel | undefined;
}

/** The parts of a running app that start-up, reload and close share. */
interface Parts extends CacheLevels {
  options: AppOptions;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  security: ListenerSecurity | undefined;
  configFile: string;
  run: { scrape: boolean; admin: boolean };
  state: AppState;
}

/**
 * The memory level, the second level (disk or Redis, SPEC 2.1 and 2.2) and the bus, joined in a
 * ScrapeCache; a second level's entries are loaded before anything listens.
 */
async function openCache(config: Config, options: AppOptions, metrics: Metrics, log: Logger, clock: Clock): Promise<CacheLevels> {
  const parts = options.cacheParts ?? {};
  const now = clock.now;
  // Opened before anything listens: an unwritable directory is a start-up error (SPEC 2.1).
  const disk: Store | undefined =
    config.cache.disk && parts.secondLevel !== false
      ? new DiskStore({ dir: config.cache.disk.path, maxBytes: config.cache.disk.maxBytes, log, metrics, now })
      : undefined;
  // node-redis and the Redis level are loaded only with cache.redis (SPEC 2.2). Redis need not
  // be up: the proxy starts without it and shares once it answers.
  const redis =
    config.cache.redis && parts.secondLevel !== false
      ? await (await import('./cache/redis/redis-level.js')).openRedisLevel(config.cache.redis, metrics, log, now)
      : undefined;
  const second = disk ?? redis?.store;
  // A cluster primary tells its workers and the other replicas; what the replicas say reaches its workers too.
  const bus = parts.bus && redis ? new JoinedEventBus([parts.bus, redis.bus]) : (parts.bus ?? redis?.bus);
  const memory = new MemoryStore(config.cache.maxBytes, {
    onEvict: (entry) => {
      metrics.evictions.inc();
      log.debug({ route: entry.route, path: entry.path, query: entry.query, representation: entry.representation, bytes: entry.bytes }, 'evicted');
      // SPEC 2.1: evicted entries leave the disk too, so the directory mirrors what is served.
      // (Not Redis: the other replicas still read them there.)
      void disk?.delete(entry.key);
    },
  }, now);
  const cache = new ScrapeCache({
    memory,
    filler: parts.filler ?? new UpstreamFiller(metrics, log, now),
    ...(second ? { second } : {}),
    ...(bus ? { bus } : {}),
    ...(redis ? { lease: redis.lease } : {}),
    prefetch: parts.prefetch !== false,
    metrics,
    log,
    clock,
  });
  if (second) {
    const started = performance.now();
    const { loaded, dropped } = await cache.load(config.routes);
    log.info({ store: second.name, loaded, dropped, ms: Math.round(performance.now() - started) }, 'cache loaded');
  }
  return { cache, redis };
}

/** Loads http-proxy the first time a config has a pass-through route. */
async function preparePassThrough(p: Parts, routes: readonly Route[]): Promise<void> {
  if (p.state.passThrough || routes.every((r) => r.cache)) return;
  const { PassThrough: Impl } = await import('./upstream/pass-through.js');
  p.state.passThrough ??= new Impl(p.metrics, p.log).install();
}

/** The settings a reload cannot change in a running process (SPEC 3.4): named in a warning, the running values stay. */
function restartOnlyChanges(next: Config, config: Config): string[] {
  const changed: string[] = [];
  const same = (a: ListenAddress, b: ListenAddress) => a.host === b.host && a.port === b.port;
  if (!same(next.listen, config.listen)) changed.push('listen');
  if (!same(next.admin.listen, config.admin.listen)) changed.push('admin.listen');
  if (next.workers !== config.workers) changed.push('workers');
  if (next.cache.maxBytes !== config.cache.maxBytes) changed.push('cache.max_bytes');
  if (JSON.stringify(next.cache.disk) !== JSON.stringify(config.cache.disk)) changed.push('cache.disk');
  if (JSON.stringify(next.cache.redis) !== JSON.stringify(config.cache.redis)) changed.push('cache.redis');
  return changed;
}

/**
 * Entries survive a reload while their route fetches the same way (fingerprint); the log names
 * every route whose settings changed (a ttl too), was added or was removed.
 */
function routeChanges(config: Config, next: Config) {
  const oldRoutes = new Map(config.routes.map((r) => [r.name, r]));
  const newRoutes = new Map(next.routes.map((r) => [r.name, r]));
  const refetching = new Set<string>();
  const changedRoutes: string[] = [];
  for (const [name, old] of oldRoutes) {
    const now = newRoutes.get(name);
    if (!now || now.fingerprint !== old.fingerprint) refetching.add(name);
    if (now && routeSettings(now) !== routeSettings(old)) changedRoutes.push(name);
  }
  const addedRoutes = next.routes.filter((r) => !oldRoutes.has(r.name)).map((r) => r.name);
  const removedRoutes = config.routes.filter((r) => !newRoutes.has(r.name)).map((r) => r.name);
  return { refetching, changedRoutes, addedRoutes, removedRoutes };
}

/** The new config with the running values of what only a restart changes. */
function keepRestartOnly(next: Config, config: Config): Config {
  return {
    ...next,
    listen: config.listen,
    admin: { ...next.admin, listen: config.admin.listen },
    workers: config.workers,
    cache: config.cache,
  };
}

/**
 * Re-reads the config file, or applies the given text (a worker, from its primary). Resolves to
 * the error text when invalid; the running config stays.
 */
async function reloadApp(p: Parts, given?: string): Promise<string | undefined> {
  const { state, log, metrics, cache, configFile, options } = p;
  let next: Config;
  let source: string;
  try {
    source = given ?? readConfigText(configFile);
    next = applyListenOverrides(parseConfig(source, configFile), options.listenOverrides);
  } catch (err) {
    state.reloadError = (err as Error).message;
    metrics.reloaded(false);
    log.error({ file: configFile, error: (err as Error).message }, 'config reload failed; the running config stays');
    return (err as Error).message;
  }
  await preparePassThrough(p, next.routes);
  const restartNeeded = restartOnlyChanges(next, state.config);
  if (restartNeeded.length > 0) {
    log.warn({ settings: restartNeeded }, 'these settings change only on restart; the running values stay');
  }
  const { refetching, changedRoutes, addedRoutes, removedRoutes } = routeChanges(state.config, next);
  const config = keepRestartOnly(next, state.config);
  state.config = config;
  state.table = new RouteTable(config.routes);
  const dropped = cache.dropRoutes(refetching);
  cache.setRoutes(config.routes);
  state.passThrough?.retain(config.routes);
  metrics.setRoutes(config.routes.map((r) => r.name));
  if (!options.logLevelOverride) log.level = config.log.level;
  log.info({ routes: config.routes.map((r) => r.name), changedRoutes, addedRoutes, removedRoutes, droppedEntries: dropped }, 'config reloaded');
  if (p.run.admin) state.upstreamsChecked = checkUpstreams(config.routes, log, 'reload');
  const elsewhere = await options.afterReload?.(source);
  metrics.reloaded(elsewhere === undefined);
  state.reloadError = elsewhere;
  if (elsewhere !== undefined) log.error({ file: configFile, error: elsewhere }, 'config reload failed in a worker');
  return elsewhere;
}

/** The scrape and admin servers, hardened, with TLS and auth from --web.config.file when given. */
function createServers(p: Parts, waiting: Set<ServerResponse>, reload: (source?: string) => Promise<string | undefined>) {
  const { state, log, metrics, cache, options, security } = p;
  const limits = options.limits ?? CLIENT_LIMITS;
  // Node enforces the timeouts on this interval (default 30 s): check often enough that they hold.
  const serverOptions = { connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs / 2) };
  const serve = (handler: (req: IncomingMessage, res: ServerResponse) => void, exempt?: (req: IncomingMessage) => boolean): Server =>
    security ? security.createServer(serverOptions, handler, { handshakeTimeoutMs: limits.headersTimeoutMs, ...(exempt ? { exempt } : {}) }) : createServer(serverOptions, handler);
  const scrapeHandler = createScrapeHandler({
    table: () => state.table,
    cache,
    passThrough: () => state.passThrough,
    metrics,
    log,
    clock: p.clock,
    waiting,
    // The bound port once listening (port 0 in tests), else the configured one (a worker's primary has it).
    adminAddress: () => (state.adminAddress ? { host: state.config.admin.listen.host, port: state.adminAddress.port } : state.config.admin.listen),
    selfMetrics: options.selfMetrics ?? (async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() })),
    ...(options.profiles ? { profiles: options.profiles } : {}),
  });
  const adminHandler = createAdminHandler({
    token: () => state.config.admin.token,
    allowedHosts: () => state.config.admin.allowedHosts,
    listenHost: () => state.config.admin.listen.host,
    ready: () => state.ready,
    reload,
    table: () => state.table,
    cache,
    metrics,
    log,
    clock: p.clock,
    configFile: () => p.configFile,
    reloadError: () => state.reloadError,
    ...options.admin,
  });
  return {
    scrapeServer: hardened(serve(guard(scrapeHandler, log)), log, 'scrape', limits),
    adminServer: hardened(serve(guard(adminHandler, log), isHealthCheck), log, 'admin', limits),
  };
}

/** Binds the listeners this process runs; when one cannot listen, everything opened so far is released. */
async function listenAll(p: Parts, scrapeServer: Server, adminServer: Server): Promise<void> {
  const { state, run } = p;
  try {
    if (run.scrape) state.scrapeAddress = await listen(scrapeServer, state.config.listen, 'scrape');
    if (run.admin) state.adminAddress = await listen(adminServer, state.config.admin.listen, 'admin');
  } catch (err) {
    scrapeServer.close();
    adminServer.close();
    p.security?.close();
    state.passThrough?.close();
    await p.cache.close();
    await p.redis?.close();
    throw err;
  }
}

/** Ready: routes in the cache, warnings, the upstream check (not awaited) and the listening line. */
function announceReady(p: Parts): void {
  const { state, run, log, security } = p;
  const config = state.config;
  p.cache.setRoutes(config.routes);
  p.metrics.reloaded(true);
  if (run.admin) for (const warning of configWarnings(config, security?.config())) log.warn(warning);
  state.ready = true;
  if (run.admin) warnExposedCredentials(config, security?.config(), log);
  // Not awaited: an upstream that is down must not hold up the start (one process of a group checks).
  if (run.admin) state.upstreamsChecked = checkUpstreams(config.routes, log, 'start-up');
  const where = (a: AddressInfo | undefined) => (a ? addressText(a) : undefined);
  log.info(
    {
      scrape: where(state.scrapeAddress),
      admin: where(state.adminAddress),
      routes: config.routes.map((r) => ({ name: r.name, path: r.path ?? `${r.pathPrefix}*`, upstream: r.upstream.href, cache: r.cache })),
    },
    run.scrape && run.admin ? 'scrapecache listening' : run.scrape ? 'worker listening' : 'primary listening',
  );
}

/** Stops accepting, lets requests in flight finish (bounded by graceMs), answers the rest 503, then releases everything. */
async function closeApp(p: Parts, servers: { scrapeServer: Server; adminServer: Server }, waiting: Set<ServerResponse>, graceMs: number): Promise<void> {
  const { scrapeServer, adminServer } = servers;
  p.state.ready = false;
  const closed = Promise.all([
    p.run.scrape ? new Promise((r) => scrapeServer.close(r)) : undefined,
    p.run.admin ? new Promise((r) => adminServer.close(r)) : undefined,
  ]);
  scrapeServer.closeIdleConnections();
  adminServer.closeIdleConnections();
  const grace = new Promise((r) => setTimeout(r, graceMs).unref());
  await Promise.race([Promise.all([closed, p.cache.drain()]), grace]);
  await answerWaiting(waiting);
  scrapeServer.closeAllConnections();
  adminServer.closeAllConnections();
  p.security?.close();
  p.state.passThrough?.close();
  await p.cache.close();
  await p.redis?.close();
}

export async function startApp(options: AppOptions): Promise<App> {
  const { log } = options;
  // First: a web config error stops the start before anything else is running.
  const security = options.webConfigFile ? await ListenerSecurity.open(options.webConfigFile, log, options.webSecurity) : undefined;
  const config = options.config;
  const clock = options.clock ?? systemClock;
  let cacheRef: ScrapeCache | undefined;
  const metrics = new Metrics(
    { usage: (route) => cacheRef?.usage(route) ?? { entries: 0, bytes: 0, oldestAgeSeconds: undefined } },
    { defaultMetrics: options.defaultMetrics !== false, storeGauges: options.listeners?.admin !== false, now: clock.now },
  );
  const { cache, redis } = await openCache(config, options, metrics, log, clock);
  cacheRef = cache;
  const state: AppState = {
    config,
    table: new RouteTable(config.routes),
    ready: false,
    reloadError: undefined,
    upstreamsChecked: Promise.resolve([]),
    passThrough: undefined,
    scrapeAddress: undefined,
    adminAddress: undefined,
  };
  const run = options.listeners ?? { scrape: true, admin: true };
  const p: Parts = { options, clock, log, metrics, security, configFile: options.configFile ?? config.file, run, state, cache, redis };
  await preparePassThrough(p, config.routes);
  metrics.setRoutes(config.routes.map((r) => r.name));

  const reload = (given?: string) => reloadApp(p, given);
  const waiting = new Set<ServerResponse>();
  const servers = createServers(p, waiting, reload);
  await listenAll(p, servers.scrapeServer, servers.adminServer);
  announceReady(p);

  return {
    scrapeAddress: state.scrapeAddress!,
    adminAddress: state.adminAddress!,
    table: () => state.table,
    cache,
    metrics,
    config: () => state.config,
    reload,
    upstreamsChecked: () => state.upstreamsChecked,
    close: (graceMs = 5000) => closeApp(p, servers, waiting, graceMs),
  };
}
