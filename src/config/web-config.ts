/**
 * `--web.config.file` (SPEC 3.6): exporter-toolkit's web configuration format, same keys, same
 * defaults (TLS 1.2 minimum, server cipher order), same refusals, each with file:line:column.
 * Loading reads every file the config names, so a config that loads is one that can be served.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, describeIssue, Locator, type ConfigProblem } from './load.js';
import { parseDuration } from './units.js';

export type ClientAuthType =
  | 'NoClientCert'
  | 'RequestClientCert'
  | 'RequireAnyClientCert'
  | 'VerifyClientCertIfGiven'
  | 'RequireAndVerifyClientCert';

/** Go's crypto/tls names (tls.CipherSuites()) to OpenSSL's. */
const CIPHER_SUITES: Record<string, string> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  // TLS 1.3 suites: Go accepts the names but never lets them be configured; neither do we.
  TLS_AES_128_GCM_SHA256: '',
  TLS_AES_256_GCM_SHA384: '',
  TLS_CHACHA20_POLY1305_SHA256: '',
};
const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

/** Go's tls.CurveID names (the toolkit's list) to OpenSSL's group names. */
const CURVES: Record<string, string> = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

const TLS_VERSIONS: Record<string, SecureVersion> = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };
const VERSION_ORDER = ['TLS10', 'TLS11', 'TLS12', 'TLS13'];

/** exporter-toolkit's extraHTTPHeaders: only these may be set, some only to these values. */
const ALLOWED_HEADERS: Record<string, readonly string[] | null> = {
  'Strict-Transport-Security': null,
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': null,
  'Content-Security-Policy': null,
};

/** What `htpasswd -B` and the bcrypt libraries write: $2a$, $2b$ or $2y$, cost 04..31. */
const BCRYPT_RE = /^\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}$/;

const goDuration = z
  .union([z.string(), z.literal(0)], { error: 'expected a duration such as 1s or 100ms' })
  .transform((value, ctx) => {
    const ms = parseGoDuration(String(value));
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid duration "${value}" (expected e.g. 100ms, 1s, 1m30s)` });
      return z.NEVER;
    }
    return ms;
  });

const enumOf = (values: readonly string[], what: string) =>
  z.string({ error: `expected a ${what}` }).refine((v) => values.includes(v), { message: `unknown ${what}` });

const webConfigSchema = z
  .strictObject({
    tls_server_config: z
      .strictObject({
        cert: z.string().optional(),
        key: z.string().optional(),
        client_ca: z.string().optional(),
        cert_file: z.string().optional(),
        key_file: z.string().optional(),
        client_auth_type: z
          .enum(['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'RequireClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'])
          .optional(),
        client_ca_file: z.string().optional(),
        client_allowed_sans: z.array(z.string()).nullable().optional(),
        min_version: enumOf(VERSION_ORDER, 'TLS version (TLS10, TLS11, TLS12, TLS13)').optional(),
        max_version: enumOf(VERSION_ORDER, 'TLS version (TLS10, TLS11, TLS12, TLS13)').optional(),
        cipher_suites: z.array(enumOf(Object.keys(CIPHER_SUITES), 'cipher suite (Go crypto/tls names)')).nullable().optional(),
        prefer_server_cipher_suites: z.boolean().optional(),
        curve_preferences: z.array(enumOf(Object.keys(CURVES), 'curve (CurveP256, CurveP384, CurveP521, X25519)')).nullable().optional(),
      })
      .nullable()
      .optional(),
    http_server_config: z
      .strictObject({
        http2: z.boolean().optional(),
        headers: z.record(z.string(), z.string({ error: 'header values are strings' })).nullable().optional(),
      })
      .nullable()
      .optional(),
    basic_auth_users: z.record(z.string(), z.string({ error: 'expected a bcrypt hash' })).nullable().optional(),
    rate_limit: z
      .strictObject({
        interval: goDuration.optional(),
        burst: z.int({ error: 'expected a whole number' }).min(0).optional(),
      })
      .nullable()
      .optional(),
  })
  .nullable();

export interface WebTls {
  /** For tls.createServer and server.setSecureContext. */
  options: SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean };
  clientAuth: ClientAuthType;
  /** null: any client certificate that passed client_auth_type; else one of its SANs must be here. */
  allowedSans: ReadonlySet<string> | null;
}

export interface WebConfig {
  file: string;
  tls?: WebTls;
  /** User name to bcrypt hash; empty: no basic auth. */
  users: ReadonlyMap<string, string>;
  /** http_server_config.headers, for every response. */
  headers: ReadonlyArray<readonly [string, string]>;
  rateLimit?: { intervalMs: number; burst: number };
  http2: boolean;
  /** Every file this config was read from, the config itself first: a change to any means re-read. */
  files: readonly string[];
  /** Identity of what was read, so that an unchanged re-read changes nothing. */
  fingerprint: string;
}

/** Milliseconds for a Go time.ParseDuration string (`1.5s`, `100ms`, `1m30s`), or a Prometheus one (`1d`). */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return parseDuration(text);
    ms += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  return at > 0 && Number.isFinite(ms) ? ms : undefined;
}

/** The cost a bcrypt hash was made with, or undefined when the text is not a bcrypt hash. */
export function bcryptCost(hash: string): number | undefined {
  const m = BCRYPT_RE.exec(hash);
  const cost = m ? Number(m[1]) : NaN;
  return cost >= 4 && cost <= 31 ? cost : undefined;
}

/** Reads and validates a web config file. Throws ConfigError listing every problem. */
export function loadWebConfig(file: string): WebConfig {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError([{ file, line: 0, column: 0, message: `cannot read web config: ${reason}` }]);
  }
  return parseWebConfig(source, file);
}

type RawWebConfig = NonNullable<z.infer<typeof webConfigSchema>>;
type RawServerTls = NonNullable<RawWebConfig['tls_server_config']>;

/** Where the checks of one web config put their problems, and what it read (for the fingerprint). */
interface WebConfigReading {
  report(path: Array<string | number>, message: string): void;
  /** A problem with a key itself (an unknown header name, a user name), pointed at the key. */
  atKey(path: string[], message: string): void;
  problems: ConfigProblem[];
  baseDir: string;
  /** Every file read, the config itself first. */
  files: string[];
  read: Array<Buffer | string>;
}

/** The YAML, checked against the schema: a syntax or shape error stops here with every problem found. */
function readWebYaml(source: string, file: string): { raw: RawWebConfig; locator: Locator } {
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const locator = new Locator(file, doc, { text: source, originalOffset: (o) => o, errors: [] }, lines);
  const problems: ConfigProblem[] = [];
  for (const e of doc.errors) problems.push(locator.atExpandedOffset(e.pos[0], e.message.split('\n')[0]!));
  if (problems.length > 0) throw new ConfigError(problems);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([locator.at([], (err as Error).message.split('\n')[0]!)]);
  }
  if (data !== null && data !== undefined && (typeof data !== 'object' || Array.isArray(data))) {
    throw new ConfigError([locator.at([], 'the web config must be a YAML mapping (tls_server_config, basic_auth_users, ...)')]);
  }
  const parsed = webConfigSchema.safeParse(data ?? null);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.flatMap((issue) => describeIssue(issue, data, locator)));
  return { raw: parsed.data ?? {}, locator };
}

/** http_server_config.headers: only the names and values exporter-toolkit allows; an empty value sends nothing. */
function parseHeaders(raw: RawWebConfig, r: WebConfigReading): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(raw.http_server_config?.headers ?? {})) {
    const allowed = ALLOWED_HEADERS[name];
    if (allowed === undefined) {
      r.atKey(['http_server_config', 'headers', name], `HTTP header "${name}" can not be configured (allowed: ${Object.keys(ALLOWED_HEADERS).join(', ')})`);
    } else if (allowed !== null && !allowed.includes(value)) {
      r.report(['http_server_config', 'headers', name], `invalid value for ${name}: expected one of ${allowed.join(', ')}, got "${value}"`);
    } else if (value !== '') {
      headers.push([name, value]);
    }
  }
  return headers;
}

/** basic_auth_users: user names basic auth can send, bcrypt hashes only. */
function parseUsers(raw: RawWebConfig, r: WebConfigReading): Map<string, string> {
  const users = new Map<string, string>();
  for (const [user, hash] of Object.entries(raw.basic_auth_users ?? {})) {
    if (user.includes(':')) r.atKey(['basic_auth_users', user], `user name "${user}" contains ":", which basic auth cannot send`);
    else if (bcryptCost(hash) === undefined) r.report(['basic_auth_users', user], `the password of "${user}" is not a bcrypt hash (make one with: htpasswd -nBC 10 "" | tr -d ':\\n')`);
    else users.set(user, hash);
  }
  return users;
}

function parseRateLimit(raw: RawWebConfig, r: WebConfigReading): WebConfig['rateLimit'] {
  const interval = raw.rate_limit?.interval ?? 0;
  if (interval <= 0) return undefined;
  const burst = raw.rate_limit?.burst ?? 0;
  if (burst < 1) r.report(['rate_limit'], 'rate_limit: burst must be at least 1 when interval is set (0 would refuse every request)');
  return { intervalMs: interval, burst };
}

/** Any of these set turns TLS on (as exporter-toolkit does); all empty: plain HTTP. */
function tlsWanted(t: RawServerTls | null | undefined): t is RawServerTls {
  return t != null && [t.cert, t.key, t.cert_file, t.key_file, t.client_ca, t.client_ca_file, t.client_auth_type].some((v) => v !== undefined && v !== '');
}

/** The PEM material: inline text or a file (relative to the web config), not both. */
function readTlsMaterial(t: RawServerTls, r: WebConfigReading) {
  const path = (key: string) => ['tls_server_config', key];
  const readPem = (key: 'cert_file' | 'key_file' | 'client_ca_file'): Buffer | undefined => {
    const name = resolve(r.baseDir, t[key]!);
    r.files.push(name);
    try {
      const bytes = readFileSync(name);
      r.read.push(bytes);
      return bytes;
    } catch (err) {
      r.report(path(key), `cannot read ${key} ${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  };
  const pick = (inline: 'cert' | 'key' | 'client_ca', fileKey: 'cert_file' | 'key_file' | 'client_ca_file', required: boolean) => {
    const hasInline = t[inline] !== undefined && t[inline] !== '';
    const hasFile = t[fileKey] !== undefined && t[fileKey] !== '';
    if (hasInline && hasFile) r.report(path(fileKey), `set ${inline} or ${fileKey}, not both`);
    if (hasFile) return readPem(fileKey);
    if (hasInline) return Buffer.from(t[inline]!);
    if (required) r.report(['tls_server_config'], `tls_server_config: missing one of ${inline} or ${fileKey}`);
    return undefined;
  };
  return { cert: pick('cert', 'cert_file', true), key: pick('key', 'key_file', true), ca: pick('client_ca', 'client_ca_file', false) };
}

/** A client CA is only of use with a client_auth_type that asks for certificates, and must be a certificate. */
function checkClientCa(t: RawServerTls, ca: Buffer | undefined, clientAuth: ClientAuthType, r: WebConfigReading): void {
  const caKey = ['tls_server_config', t.client_ca_file ? 'client_ca_file' : 'client_ca'];
  if (ca && clientAuth === 'NoClientCert') {
    r.report(caKey, 'a client CA is configured without a client_auth_type that asks for client certificates (e.g. RequireAndVerifyClientCert)');
  }
  if (ca) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      r.report(caKey, `the client CA is not a PEM certificate: ${(err as Error).message}`);
    }
  }
}

/** tls_server_config as exporter-toolkit reads it, turned into tls.createServer options. */
function parseServerTls(t: RawServerTls, r: WebConfigReading): WebTls {
  const { cert, key, ca } = readTlsMaterial(t, r);
  const clientAuth: ClientAuthType = t.client_auth_type === 'RequireClientCert' ? 'RequireAnyClientCert' : (t.client_auth_type ?? 'NoClientCert');
  checkClientCa(t, ca, clientAuth, r);
  const min = t.min_version ?? 'TLS12';
  const max = t.max_version ?? 'TLS13';
  if (VERSION_ORDER.indexOf(min) > VERSION_ORDER.indexOf(max)) r.report(['tls_server_config', 'min_version'], `min_version ${min} is above max_version ${max}`);
  const options: WebTls['options'] = {
    minVersion: TLS_VERSIONS[min]!,
    maxVersion: TLS_VERSIONS[max]!,
    honorCipherOrder: t.prefer_server_cipher_suites ?? true,
    requestCert: clientAuth !== 'NoClientCert',
    rejectUnauthorized: clientAuth === 'RequireAndVerifyClientCert',
  };
  if (cert) options.cert = cert;
  if (key) options.key = key;
  if (ca) options.ca = ca;
  const suites = (t.cipher_suites ?? []).map((s) => CIPHER_SUITES[s]!).filter((s) => s !== '');
  if (suites.length > 0) options.ciphers = `${suites.join(':')}:${TLS13_SUITES}`;
  if (t.curve_preferences && t.curve_preferences.length > 0) options.ecdhCurve = t.curve_preferences.map((c) => CURVES[c]).join(':');
  if (cert && key && r.problems.length === 0) {
    // What Go's tls.X509KeyPair checks, and what OpenSSL refuses of the rest, before any client connects.
    try {
      createSecureContext(options);
    } catch (err) {
      r.report(['tls_server_config'], `tls_server_config: ${(err as Error).message} (do cert and key belong together?)`);
    }
  }
  const sans = t.client_allowed_sans;
  return { options, clientAuth, allowedSans: sans == null ? null : new Set(sans.map(normalizeSan)) };
}

/** Validates web config text; `file` names it in errors and anchors relative paths. */
export function parseWebConfig(source: string, file: string): WebConfig {
  const { raw, locator } = readWebYaml(source, file);
  const problems: ConfigProblem[] = [];
  const r: WebConfigReading = {
    report: (path, message) => problems.push(locator.at(path, message)),
    atKey: (path, message) => problems.push(locator.atKey(path, message)),
    problems,
    baseDir: dirname(resolve(file)),
    files: [resolve(file)],
    read: [source],
  };
  const headers = parseHeaders(raw, r);
  const users = parseUsers(raw, r);
  const rateLimit = parseRateLimit(raw, r);
  const t = raw.tls_server_config;
  const tls = tlsWanted(t) ? parseServerTls(t, r) : undefined;

  if (problems.length > 0) throw new ConfigError(problems.sort((a, b) => a.line - b.line || a.column - b.column));
  const fingerprint = createHash('sha256');
  for (const part of r.read) fingerprint.update(part).update('\0');
  const config: WebConfig = {
    file: resolve(file),
    users,
    headers,
    http2: raw.http_server_config?.http2 ?? true,
    files: r.files,
    fingerprint: fingerprint.digest('base64url'),
  };
  if (tls) config.tls = tls;
  if (rateLimit) config.rateLimit = rateLimit;
  return config;
}

/** IP addresses compare by value (Node writes IPv6 SANs expanded, Go compressed). */
export function normalizeSan(san: string): string {
  if (!san.includes(':') || san.includes('/') || san.includes('@')) return san;
  try {
    return new URL(`http://[${san}]/`).hostname.slice(1, -1);
  } catch {
    return san;
  }
}
