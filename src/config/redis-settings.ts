/**
 * `cache.redis` (SPEC 2.2) as the program reads it: host, port, database, credentials read from
 * their file, TLS files read. Credentials may come from the URL (filled in from the environment
 * with ${VAR}) or from password_file; they never appear again in the URL kept for logs.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { unbracketHost } from '../net/host-port.js';
import type { RawRedis } from './schema.js';
import type { RedisSettings, UpstreamTls } from './types.js';

type Report = (path: Array<string | number>, message: string) => void;

const MAX_TIMEOUT_MS = 60_000;

export function buildRedisSettings(raw: RawRedis, baseDir: string, report: Report): RedisSettings {
  const at = (...rest: string[]) => ['cache', 'redis', ...rest];
  const readFile = (key: string[], path: string): Buffer | undefined => {
    try {
      return readFileSync(resolve(baseDir, path));
    } catch (err) {
      report(key, `cannot read ${resolve(baseDir, path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  };
  const url = raw.url;
  const urlUser = decodeURIComponent(url.username);
  const urlPassword = decodeURIComponent(url.password);
  if (urlUser !== '' && raw.username !== undefined) report(at('username'), 'username is set twice: in the URL and in username');
  if (urlPassword !== '' && raw.password_file !== undefined) {
    report(at('password_file'), 'the password is set twice: in the URL and in password_file');
  }
  const tlsWanted = url.protocol === 'rediss:';
  if (raw.tls && !tlsWanted) report(at('tls'), 'tls applies to rediss:// URLs only');
  if (raw.tls && (raw.tls.cert_file === undefined) !== (raw.tls.key_file === undefined)) {
    report(at('tls'), 'tls needs both cert_file and key_file, or neither');
  }
  if (raw.timeout <= 0) report(at('timeout'), 'timeout must be more than 0');
  if (raw.timeout > MAX_TIMEOUT_MS) report(at('timeout'), 'timeout must be at most 1m: a scrape may wait this long for Redis');

  const port = url.port === '' ? 6379 : Number(url.port);
  const database = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  const bare = new URL(url.href);
  bare.username = '';
  bare.password = '';
  const settings: RedisSettings = {
    url: bare.href,
    // URL keeps IPv6 literals in brackets; net.connect wants them bare.
    host: unbracketHost(url.hostname),
    port,
    database,
    keyPrefix: raw.key_prefix,
    timeoutMs: raw.timeout,
  };
  const username = raw.username ?? (urlUser || undefined);
  if (username !== undefined) settings.username = username;
  const password = raw.password_file !== undefined ? readFile(at('password_file'), raw.password_file)?.toString('utf8').trim() : urlPassword || undefined;
  if (password !== undefined) settings.password = password;
  if (tlsWanted) {
    const tls: UpstreamTls = { insecureSkipVerify: raw.tls?.insecure_skip_verify ?? false };
    if (raw.tls?.ca_file) tls.ca = readFile(at('tls', 'ca_file'), raw.tls.ca_file);
    if (raw.tls?.cert_file) tls.cert = readFile(at('tls', 'cert_file'), raw.tls.cert_file);
    if (raw.tls?.key_file) tls.key = readFile(at('tls', 'key_file'), raw.tls.key_file);
    if (raw.tls?.server_name) tls.serverName = raw.tls.server_name;
    settings.tls = tls;
  }
  return settings;
}
