/**
 * The proxy.yaml schema (SPEC 2). Every object is strict: an unknown key is an error, as in
 * blackbox_exporter's KnownFields(true). Durations and sizes are parsed here, so the rest of
 * the program sees milliseconds and bytes.
 */
import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';

const duration = z
  // A bare 0 is a YAML number; Prometheus accepts it as a duration, so do we.
  .union([z.string(), z.literal(0)], { error: 'expected a duration such as 30s, 5m or 1h30m' })
  .transform((value, ctx) => {
    const text = String(value);
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid duration "${text}" (expected e.g. 500ms, 30s, 5m, 1h30m, 7d)` });
      return z.NEVER;
    }
    return ms;
  })
  .meta({
    description: 'Prometheus duration: 500ms, 30s, 5m, 6h, 1h30m, 7d',
    pattern: '^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$',
  });

const size = z
  .union([z.string(), z.number()], { error: 'expected a size such as 64MiB, 10MB or 1024' })
  .transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid size "${value}" (expected e.g. 512B, 64KiB, 256MiB, 1GB)` });
      return z.NEVER;
    }
    return bytes;
  })
  .meta({ description: 'Size in bytes, or with a unit: B, KiB, MiB, GiB (and KB, MB, GB as powers of 1000)' });

/** `host:port`, `[v6]:port`, or `:port` for every address (as in Go); undefined when it is none of these. */
export function parseListenAddress(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) return undefined;
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

const listenAddress = z
  .string({ error: 'expected host:port, e.g. 0.0.0.0:9180' })
  .transform((text, ctx) => {
    const address = parseListenAddress(text);
    if (!address) {
      ctx.addIssue({ code: 'custom', message: `invalid listen address "${text}" (expected host:port, e.g. 0.0.0.0:9180 or [::1]:9180)` });
      return z.NEVER;
    }
    return address;
  })
  .meta({ description: 'host:port, e.g. 0.0.0.0:9180 or [::1]:9180' });

const upstreamUrl = z.string({ error: 'expected an http:// or https:// URL' }).transform((text, ctx) => {
  // "localhost:9100" parses as a URL whose scheme is "localhost:": say what was meant.
  const bare = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(\/\S*)?$/.exec(text);
  if (bare && !/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(text)) {
    ctx.addIssue({ code: 'custom', message: `upstream must be an http:// or https:// URL, e.g. "http://${text}${bare[1] === undefined ? '/metrics' : ''}"; got "${text}"` });
    return z.NEVER;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `invalid upstream URL "${text}"` });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `upstream must be http:// or https://, got "${url.protocol}"` });
    return z.NEVER;
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'put upstream credentials in basic_auth, not in the URL' });
    return z.NEVER;
  }
  if (url.hash) {
    ctx.addIssue({ code: 'custom', message: 'upstream URL must not have a #fragment' });
    return z.NEVER;
  }
  return url;
}).meta({ description: 'http:// or https:// URL of the exporter; the client query is appended to its own' });

const scrapePath = z
  .string({ error: 'expected a path starting with /' })
  .regex(/^\/[^?#\s]*$/, 'expected a path starting with /, without ? or #');

const routeName = z
  .string({ error: 'expected a route name' })
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'route names use letters, digits, _, . and - (they become metric labels)');

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** SPEC 3.2 `format`: the one exposition format a route fetches and serves. */
const format = z.enum(['text', 'openmetrics', 'protobuf']).meta({
  description: 'Pin the route to one exposition format: fetched once per ttl, served to every client whose Accept admits it; others get 406',
});

const freshnessFields = {
  ttl: duration,
  timeout: duration,
  max_body_bytes: size,
  stale_while_revalidate: duration,
  stale_if_error: duration,
};

export const tlsSchema = z.strictObject({
  ca_file: z.string().min(1).optional(),
  cert_file: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  server_name: z.string().min(1).optional(),
  insecure_skip_verify: z.boolean().optional(),
});

export const basicAuthSchema = z.strictObject({
  username: z.string({ error: 'basic_auth needs a username' }),
  password: z.string().optional(),
  password_file: z.string().min(1).optional(),
});

const queryValues = z
  .union([z.string(), z.array(z.string()).min(1, 'list at least one value')], { error: 'expected a value or a list of values' })
  .transform((v) => (typeof v === 'string' ? [v] : v))
  .meta({ description: 'Values of the query parameter that select this override; * matches any run of characters (10.1.*)' });

/** SPEC 2 `overrides`: freshness windows for the keys whose query parameters have given values. */
export const overrideSchema = z
  .strictObject({
    query: z.record(z.string().min(1), queryValues, { error: 'expected a mapping of query parameter names to values, e.g. { module: [inventory] }' }),
    ttl: duration.optional(),
    stale_while_revalidate: duration.optional(),
    stale_if_error: duration.optional(),
  })
  .meta({ description: 'Keys whose query has these parameter values (every listed parameter, any listed value) get these windows; the first matching override wins, else the route\'s own' });

export const routeSchema = z.strictObject({
  name: routeName,
  path: scrapePath.optional(),
  path_prefix: scrapePath.optional(),
  upstream: upstreamUrl,
  ...Object.fromEntries(Object.entries(freshnessFields).map(([k, v]) => [k, v.optional()])) as {
    [K in keyof typeof freshnessFields]: z.ZodOptional<(typeof freshnessFields)[K]>;
  },
  prefetch: z.boolean().optional(),
  cache: z.boolean().optional(),
  query_keys: z.array(z.string().min(1)).optional(),
  overrides: z.array(overrideSchema, { error: 'expected a list of overrides such as - { query: { module: [inventory] }, ttl: 6h }' }).optional(),
  headers: z
    .record(z.string().regex(headerName, 'invalid header name'), z.string({ error: 'header values are strings' }))
    .optional(),
  tls: tlsSchema.optional(),
  basic_auth: basicAuthSchema.optional(),
  bearer_token_file: z.string().min(1).optional(),
  format: format.optional(),
});

const redisUrl = z
  .string({ error: 'expected a redis:// or rediss:// URL' })
  .transform((text, ctx) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      // The text may hold a password: never repeat it.
      ctx.addIssue({ code: 'custom', message: 'invalid Redis URL (expected e.g. redis://127.0.0.1:6379/0)' });
      return z.NEVER;
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      ctx.addIssue({ code: 'custom', message: `Redis URL must be redis:// or rediss://, got "${url.protocol}"` });
      return z.NEVER;
    }
    if (url.hostname === '') {
      ctx.addIssue({ code: 'custom', message: 'Redis URL needs a host, e.g. redis://127.0.0.1:6379/0' });
      return z.NEVER;
    }
    if (!/^(\/(\d{1,5})?)?$/.test(url.pathname)) {
      ctx.addIssue({ code: 'custom', message: `Redis URL path must be a database number such as /0, got "${url.pathname}"` });
      return z.NEVER;
    }
    if (url.search || url.hash) {
      ctx.addIssue({ code: 'custom', message: 'Redis URL takes no ?query or #fragment: use username, password_file and tls' });
      return z.NEVER;
    }
    return url;
  })
  .meta({ description: 'redis:// or rediss:// URL: host, port, database number (Valkey speaks the same protocol)' });

export const redisSchema = z.strictObject({
  url: redisUrl,
  username: z.string().min(1).optional(),
  password_file: z.string().min(1).optional(),
  tls: tlsSchema.optional(),
  key_prefix: z.string().default('scrapecache:'),
  timeout: duration.default(250),
});

export const configSchema = z.strictObject({
  listen: listenAddress.default({ host: '0.0.0.0', port: 9180 }),
  workers: z.int().min(1).max(64).default(1),
  admin: z
    .strictObject({
      listen: listenAddress.default({ host: '127.0.0.1', port: 9181 }),
      // `token: ${VAR:-}` expands to an empty YAML value, which is null: the same as no token.
      token: z
        .string()
        .nullable()
        .default('')
        .transform((t) => t ?? ''),
      // The token in a file of its own (a Docker or Kubernetes secret), not in proxy.yaml.
      token_file: z.string().min(1).optional(),
      // Without a token, the Host names the admin listener answers besides its own address (DNS rebinding).
      allowed_hosts: z.array(z.string().regex(/^[A-Za-z0-9.-]+$/, 'a host name such as scrapecache.example.net (no port, no scheme)')).default([]),
    })
    .default({ listen: { host: '127.0.0.1', port: 9181 }, token: '', allowed_hosts: [] }),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
    })
    .default({ level: 'info' }),
  cache: z
    .strictObject({
      max_bytes: size.default(256 * 1024 * 1024),
      disk: z
        .strictObject({
          path: z.string().min(1, 'path must name a directory'),
          max_bytes: size.default(2 * 1024 * 1024 * 1024),
        })
        .optional(),
      redis: redisSchema.optional(),
    })
    .default({ max_bytes: 256 * 1024 * 1024 }),
  defaults: z
    .strictObject({
      ttl: duration.default(60_000),
      timeout: duration.default(30_000),
      max_body_bytes: size.default(64 * 1024 * 1024),
      stale_while_revalidate: duration.default(0),
      stale_if_error: duration.default(0),
      format: format.optional(),
    })
    .default({ ttl: 60_000, timeout: 30_000, max_body_bytes: 64 * 1024 * 1024, stale_while_revalidate: 0, stale_if_error: 0 }),
  routes: z.array(routeSchema, { error: 'expected a list of routes' }).min(1, 'at least one route is needed'),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawRoute = z.output<typeof routeSchema>;
export type RawRedis = z.output<typeof redisSchema>;
