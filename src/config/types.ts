/** The validated configuration the rest of the program reads: milliseconds, bytes, URLs. */

export interface ListenAddress {
  host: string;
  port: number;
}

export interface UpstreamTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  serverName?: string;
  insecureSkipVerify: boolean;
}

/** An exposition format a route can be pinned to (SPEC 3.2 `format`). */
export type Format = 'text' | 'openmetrics' | 'protobuf';

/** One `overrides:` item (SPEC 2): windows for the keys whose query matches. */
export interface WindowOverride {
  /** Every parameter must have one of its values; a value with `*` is a pattern. */
  query: ReadonlyArray<{ name: string; values: readonly string[] }>;
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
}

export interface Route {
  name: string;
  /** Exactly one of path and pathPrefix is set. */
  path?: string;
  pathPrefix?: string;
  upstream: URL;
  ttlMs: number;
  timeoutMs: number;
  maxBodyBytes: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  /** Per-target windows by query parameter values; the first match wins, else the route's own. */
  overrides: readonly WindowOverride[];
  prefetch: boolean;
  cache: boolean;
  /** Allow-list of query parameter names; null admits any. */
  queryKeys: ReadonlySet<string> | null;
  /** Extra request headers sent upstream, including Authorization built from basic_auth or a token file. */
  headers: Record<string, string>;
  tls?: UpstreamTls;
  /** The one format fetched and served; undefined: negotiated per client (SPEC 3.2). */
  format?: Format;
  /**
   * Identity of everything that decides what the upstream returns (upstream, headers, auth, TLS).
   * Entries of a route survive a reload only while this stays the same.
   */
  fingerprint: string;
  /**
   * How the route fetches, written with every stored record (SPEC 2.1): upstream, extra
   * headers, the user name, token file or client certificate it authenticates with, hashed.
   * No secret goes in (no password, token or key), so it may sit on disk or in Redis.
   */
  recordFingerprint: string;
}

/** `cache.redis` (SPEC 2.2): where replicas share their cache. */
export interface RedisSettings {
  /** The URL without credentials: the only form that may appear in logs, errors or /cache. */
  url: string;
  host: string;
  port: number;
  database: number;
  username?: string;
  password?: string;
  /** Present for rediss:// */
  tls?: UpstreamTls;
  keyPrefix: string;
  timeoutMs: number;
}

export interface Config {
  file: string;
  listen: ListenAddress;
  workers: number;
  /** allowedHosts: lower-case names a Host header may carry besides the listener's own address (no token only). */
  admin: { listen: ListenAddress; token: string; allowedHosts: readonly string[] };
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' };
  cache: {
    maxBytes: number;
    /** The second level on disk (SPEC 2.1); path resolved against the config file's directory. */
    disk?: { path: string; maxBytes: number };
    /** The second level shared by replicas (SPEC 2.2). */
    redis?: RedisSettings;
  };
  routes: Route[];
}
