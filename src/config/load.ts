/**
 * Reading proxy.yaml: expand the environment, parse YAML, validate against the schema, check
 * what spans fields, read referenced files. Every problem is collected with file:line:column,
 * so `--check-config` can print them all at once.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { expandEnv, type Expansion } from './env.js';
import { buildRedisSettings } from './redis-settings.js';
import { configSchema, type RawConfig, type RawRoute } from './schema.js';
import type { Config, Format, Route, UpstreamTls } from './types.js';

export interface ConfigProblem {
  file: string;
  line: number;
  column: number;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** `file:line:column: message`; a problem with the file as a whole (line 0) names only the file. */
export function formatProblem(p: ConfigProblem): string {
  return p.line > 0 ? `${p.file}:${p.line}:${p.column}: ${p.message}` : `${p.file}: ${p.message}`;
}

type PathKey = string | number;

/** Load and validate a config file. Throws ConfigError listing every problem found. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(readConfigText(file), file, env);
}

/** The config file's text, read once (a cluster primary hands the same text to its workers). Throws ConfigError. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError([{ file, line: 0, column: 0, message: `cannot read config: ${reason}` }]);
  }
}

/** Validate config text; `file` names it in errors and anchors relative paths. */
export function parseConfig(source: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const expansion = expandEnv(source, env);
  const lines = new LineCounter();
  const originalLines = new LineCounter();
  parseDocument(source, { lineCounter: originalLines });
  const doc = parseDocument(expansion.text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const locator = new Locator(file, doc, expansion, originalLines);
  const problems: ConfigProblem[] = [];

  // An unset variable expands to "" and parsing goes on, so that one run reports every problem;
  // what then fails on that same line is a consequence, not news, and is left out.
  const envProblems = expansion.errors.map((e) => locator.atOriginalOffset(e.offset, e.message));
  const fail = (more: ConfigProblem[]): never => {
    const envLines = new Set(envProblems.map((p) => p.line));
    const rest = more.filter((p) => !envLines.has(p.line));
    throw new ConfigError([...envProblems, ...rest].sort((a, b) => a.line - b.line || a.column - b.column));
  };
  for (const e of doc.errors) problems.push(locator.atExpandedOffset(e.pos[0], e.message.split('\n')[0]!));
  if (problems.length > 0) fail(problems);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // An alias to no anchor, or an alias bomb: yaml throws instead of reporting.
    let at: ConfigProblem | undefined;
    visit(doc, {
      Alias(_, node) {
        if (!at && node.resolve(doc) === undefined && node.range) {
          at = locator.atExpandedOffset(node.range[0], `alias *${node.source} names no anchor`);
        }
      },
    });
    fail([at ?? locator.at([], (err as Error).message.split('\n')[0]!)]);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    fail([locator.at([], 'the config must be a YAML mapping with at least a routes: list')]);
  }

  // Checks across routes run on the raw data too, so one run reports them beside schema errors.
  const report: Report = (path, message) => problems.push(locator.at(path, message));
  checkRouteIdentity(data, report);
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    return fail([...problems, ...parsed.error.issues.flatMap((issue) => describeIssue(issue, data, locator))]);
  }

  const baseDir = dirname(resolve(file));
  const config = normalize(parsed.data, resolve(file), baseDir, report);
  if (problems.length > 0 || envProblems.length > 0) fail(problems);
  return config;
}

export function describeIssue(issue: z.core.$ZodIssue, data: unknown, locator: Locator): ConfigProblem[] {
  const path = issue.path.filter((k): k is PathKey => typeof k !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => locator.atKey([...path, key], `unknown key "${key}" in ${describePath(path) || 'the top level'}`));
  }
  const label = describePath(path);
  if (issue.code === 'invalid_type' && valueAt(data, path) === undefined) {
    const parent = path.slice(0, -1);
    return [locator.at(parent, `${describePath(parent) || 'the top level'}: missing required key "${String(path.at(-1))}"`)];
  }
  let message = issue.message;
  if (issue.code === 'invalid_value' && 'values' in issue) {
    message = `expected one of ${issue.values.map(String).join(', ')}`;
  }
  return [locator.at(path, label ? `${label}: ${message}` : message)];
}

function describePath(path: readonly PathKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${key}` : key;
  return out;
}

function valueAt(data: unknown, path: readonly PathKey[]): unknown {
  let cur: unknown = data;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PathKey, unknown>)[key];
  }
  return cur;
}

/** Maps a path in the parsed data to line:column in the file as the operator wrote it. */
export class Locator {
  constructor(
    private readonly file: string,
    private readonly doc: Document,
    private readonly expansion: Expansion,
    private readonly originalLines: LineCounter,
  ) {}

  atOriginalOffset(offset: number, message: string): ConfigProblem {
    const { line, col } = this.originalLines.linePos(offset);
    return { file: this.file, line, column: col, message };
  }

  atExpandedOffset(offset: number, message: string): ConfigProblem {
    return this.atOriginalOffset(this.expansion.originalOffset(offset), message);
  }

  /** The value at path, or its nearest existing ancestor. */
  at(path: readonly PathKey[], message: string): ConfigProblem {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? this.doc.contents : (this.doc.getIn(path.slice(0, n), true) as YamlNode | undefined);
      if (node && typeof node === 'object' && 'range' in node && node.range) {
        return this.atExpandedOffset(node.range[0], message);
      }
    }
    return { file: this.file, line: 1, column: 1, message };
  }

  /** The key (not the value) of the last path element: where an unknown key is written. */
  atKey(path: readonly PathKey[], message: string): ConfigProblem {
    const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    if (isMap(parent)) {
      for (const pair of parent.items) {
        if (isScalar(pair.key) && pair.key.value === path.at(-1) && pair.key.range) {
          return this.atExpandedOffset(pair.key.range[0], message);
        }
      }
    }
    return this.at(path.slice(0, -1), message);
  }
}

type Report = (path: PathKey[], message: string) => void;

/** Unique names, unique paths, exactly one of path and path_prefix: on the raw routes. */
function checkRouteIdentity(data: unknown, report: Report): void {
  const routes = (data as { routes?: unknown }).routes;
  if (!Array.isArray(routes)) return;
  const names = new Map<string, number>();
  const paths = new Map<string, number>();
  routes.forEach((r: Record<string, unknown> | null, i) => {
    if (r === null || typeof r !== 'object') return;
    const at = (...rest: PathKey[]): PathKey[] => ['routes', i, ...rest];
    if (typeof r['name'] === 'string') {
      const first = names.get(r['name']);
      if (first !== undefined) report(at('name'), `duplicate route name "${r['name']}" (also routes[${first}])`);
      else names.set(r['name'], i);
    }
    if ((r['path'] === undefined) === (r['path_prefix'] === undefined)) {
      report(at(), `routes[${i}]${typeof r['name'] === 'string' ? ` ("${r['name']}")` : ''}: set exactly one of path and path_prefix`);
    }
    const key = r['path'] !== undefined ? 'path' : 'path_prefix';
    const match = r[key];
    if (typeof match === 'string') {
      const id = `${key} ${match}`;
      const first = paths.get(id);
      if (first !== undefined) report(at(key), `duplicate ${id} (also routes[${first}])`);
      else paths.set(id, i);
    }
  });
}

function normalize(raw: RawConfig, file: string, baseDir: string, report: Report): Config {
  const routes: Route[] = [];

  raw.routes.forEach((r, i) => {
    const at = (...rest: PathKey[]): PathKey[] => ['routes', i, ...rest];
    const cache = r.cache ?? true;
    if (r.prefetch && !cache) report(at('prefetch'), 'prefetch needs a cached route (cache: false is set)');
    if (r.prefetch && r.path_prefix !== undefined) report(at('prefetch'), 'prefetch needs an exact path, not path_prefix');
    if (r.tls && r.upstream.protocol !== 'https:') report(at('tls'), 'tls applies to https:// upstreams only');
    if (r.tls && (r.tls.cert_file === undefined) !== (r.tls.key_file === undefined)) {
      report(at('tls'), 'tls needs both cert_file and key_file, or neither');
    }
    if (r.basic_auth && r.bearer_token_file) report(at('bearer_token_file'), 'set basic_auth or bearer_token_file, not both');
    if (r.basic_auth && (r.basic_auth.password === undefined) === (r.basic_auth.password_file === undefined)) {
      report(at('basic_auth'), 'basic_auth needs exactly one of password and password_file');
    }
    if (r.format !== undefined && !cache) report(at('format'), 'format needs a cached route (cache: false streams whatever the upstream sends)');
    if (r.query_keys && r.query_keys.length === 0) report(at('query_keys'), 'query_keys is empty: leave it out to admit any query');
    r.overrides?.forEach((o, j) => {
      const names = Object.keys(o.query);
      if (!cache) report(at('overrides', j), 'overrides need a cached route (cache: false is set)');
      if (names.length === 0) report(at('overrides', j, 'query'), 'an override needs at least one query parameter to match');
      if (o.ttl === undefined && o.stale_while_revalidate === undefined && o.stale_if_error === undefined) {
        report(at('overrides', j), 'an override sets at least one of ttl, stale_while_revalidate, stale_if_error');
      }
      for (const name of names) {
        if (r.query_keys && !r.query_keys.includes(name)) {
          report(at('overrides', j, 'query', name), `query parameter "${name}" is not in query_keys (${r.query_keys.join(', ')}): this override could never match`);
        }
      }
    });

    routes.push(buildRoute(r, raw, baseDir, (path, message) => report(at(...path), message)));
  });

  let token = raw.admin.token;
  if (raw.admin.token_file !== undefined) {
    if (token !== '') report(['admin', 'token_file'], 'set admin.token or admin.token_file, not both');
    const name = resolve(baseDir, raw.admin.token_file);
    try {
      token = readFileSync(name, 'utf8').trim();
      if (token === '') report(['admin', 'token_file'], `${name} is empty: leave admin.token_file out for no token`);
    } catch (err) {
      report(['admin', 'token_file'], `cannot read ${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  const cache: Config['cache'] = { maxBytes: raw.cache.max_bytes };
  if (raw.cache.disk) cache.disk = { path: resolve(baseDir, raw.cache.disk.path), maxBytes: raw.cache.disk.max_bytes };
  if (raw.cache.redis) cache.redis = buildRedisSettings(raw.cache.redis, baseDir, report);
  // One second level: the disk keeps one process warm, Redis shares one cache among many.
  if (raw.cache.disk && raw.cache.redis) report(['cache', 'redis'], 'set cache.disk or cache.redis, not both: there is one second level');
  return {
    file,
    listen: raw.listen,
    workers: raw.workers,
    admin: { listen: raw.admin.listen, token, allowedHosts: raw.admin.allowed_hosts.map((h) => h.toLowerCase().replace(/\.$/, '')) },
    log: raw.log,
    cache,
    routes,
  };
}

type ReadFile = (key: PathKey[], path: string) => Buffer | undefined;

/** Reads a file the config names (relative to the config's directory); a failure is a problem at that key. */
function fileReader(baseDir: string, report: Report): ReadFile {
  return (key, path) => {
    try {
      return readFileSync(resolve(baseDir, path));
    } catch (err) {
      report(key, `cannot read ${resolve(baseDir, path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  };
}

/** The headers an upstream gets: the route's own, and Authorization from basic_auth or bearer_token_file. */
function upstreamHeaders(r: RawRoute, readFile: ReadFile): Record<string, string> {
  const headers: Record<string, string> = { ...r.headers };
  if (r.basic_auth) {
    const password =
      r.basic_auth.password ?? readFile(['basic_auth', 'password_file'], r.basic_auth.password_file ?? '')?.toString('utf8').trim() ?? '';
    headers['authorization'] = `Basic ${Buffer.from(`${r.basic_auth.username}:${password}`).toString('base64')}`;
  } else if (r.bearer_token_file) {
    const token = readFile(['bearer_token_file'], r.bearer_token_file)?.toString('utf8').trim() ?? '';
    headers['authorization'] = `Bearer ${token}`;
  }
  return headers;
}

function upstreamTls(r: RawRoute, readFile: ReadFile): UpstreamTls | undefined {
  if (!r.tls) return undefined;
  const tls: UpstreamTls = { insecureSkipVerify: r.tls.insecure_skip_verify ?? false };
  if (r.tls.ca_file) tls.ca = readFile(['tls', 'ca_file'], r.tls.ca_file);
  if (r.tls.cert_file) tls.cert = readFile(['tls', 'cert_file'], r.tls.cert_file);
  if (r.tls.key_file) tls.key = readFile(['tls', 'key_file'], r.tls.key_file);
  if (r.tls.server_name) tls.serverName = r.tls.server_name;
  return tls;
}

/**
 * `fingerprint`: everything about how a route fetches (a reload that changes it starts the route
 * afresh). `recordFingerprint`: what makes a stored answer this route's, secrets only by name.
 */
function routeFingerprints(r: RawRoute, headers: Record<string, string>, tls: UpstreamTls | undefined, format: Format | undefined, baseDir: string) {
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify([
        r.upstream.href,
        Object.entries(headers).sort(),
        tls && [tls.ca?.toString('base64'), tls.cert?.toString('base64'), tls.key?.toString('base64'), tls.serverName, tls.insecureSkipVerify],
        r.path ?? null,
        r.path_prefix ?? null,
        r.cache ?? true,
        format ?? null,
      ]),
    )
    .digest('base64url');
  const recordFingerprint = createHash('sha256')
    .update(
      JSON.stringify([
        r.upstream.href,
        Object.entries(r.headers ?? {}).sort(),
        r.basic_auth ? ['basic', r.basic_auth.username] : r.bearer_token_file ? ['bearer', resolve(baseDir, r.bearer_token_file)] : null,
        tls && [tls.cert && createHash('sha256').update(tls.cert).digest('base64url'), tls.serverName ?? null],
        format ?? null,
      ]),
    )
    .digest('base64url');
  return { fingerprint, recordFingerprint };
}

function buildRoute(r: RawRoute, raw: RawConfig, baseDir: string, report: Report): Route {
  const readFile = fileReader(baseDir, report);
  const headers = upstreamHeaders(r, readFile);
  const tls = upstreamTls(r, readFile);
  // A pass-through route streams what the upstream sends: a format from defaults does not apply.
  const format = (r.cache ?? true) ? (r.format ?? raw.defaults.format) : undefined;
  const { fingerprint, recordFingerprint } = routeFingerprints(r, headers, tls, format, baseDir);
  const route: Route = {
    name: r.name,
    upstream: r.upstream,
    ttlMs: r.ttl ?? raw.defaults.ttl,
    timeoutMs: r.timeout ?? raw.defaults.timeout,
    maxBodyBytes: r.max_body_bytes ?? raw.defaults.max_body_bytes,
    staleWhileRevalidateMs: r.stale_while_revalidate ?? raw.defaults.stale_while_revalidate,
    staleIfErrorMs: r.stale_if_error ?? raw.defaults.stale_if_error,
    overrides: [],
    prefetch: r.prefetch ?? false,
    cache: r.cache ?? true,
    queryKeys: r.query_keys ? new Set(r.query_keys) : null,
    headers,
    fingerprint,
    recordFingerprint,
  };
  // An override inherits what it leaves out from the route (its own windows, then defaults).
  route.overrides = (r.overrides ?? []).map((o) => ({
    query: Object.entries(o.query).map(([name, values]) => ({ name, values })),
    ttlMs: o.ttl ?? route.ttlMs,
    staleWhileRevalidateMs: o.stale_while_revalidate ?? route.staleWhileRevalidateMs,
    staleIfErrorMs: o.stale_if_error ?? route.staleIfErrorMs,
  }));
  if (r.path !== undefined) route.path = r.path;
  if (r.path_prefix !== undefined) route.pathPrefix = r.path_prefix;
  if (tls) route.tls = tls;
  if (format !== undefined) route.format = format;
  if (route.timeoutMs <= 0) report(r.timeout !== undefined ? ['timeout'] : [], 'timeout must be more than 0');
  // Node's timers cannot wait longer (setTimeout would fire at once).
  if (route.timeoutMs > 2 ** 31 - 1) report(r.timeout !== undefined ? ['timeout'] : [], 'timeout must be at most 24d');
  return route;
}
