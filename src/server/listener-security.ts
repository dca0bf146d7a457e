/**
 * `--web.config.file` at run time (SPEC 3.6): the listeners' servers (https when the file asks
 * for TLS), and a wrapper around their handlers for the rest (500 while the file is invalid,
 * rate_limit, headers, basic auth). The file and every certificate it names are watched; a new
 * connection also looks (a stat per file, no read) so that it always gets what is on disk.
 * While the file is invalid, requests get 500: never served without the protection it asked for.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.js';
import { loadWebConfig, normalizeSan, type WebConfig, type WebTls } from '../config/web-config.js';
import { BasicAuth, loadBcrypt, type AuthResult, type BasicAuthOptions } from './basic-auth.js';
import { RateLimiter } from './rate-limit.js';
import { ProxyError } from '../errors.js';
import { writeError } from './respond.js';

const PLAIN_HTTP_REFUSAL = 'HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

// Made once: a flood of refused requests costs no error object (and no stack trace) each.
const WEB_CONFIG_INVALID = new ProxyError('WEB_CONFIG_INVALID', 'Internal Server Error: the web config is invalid (see the log)');
const RATE_LIMITED = new ProxyError('RATE_LIMITED', 'Too Many Requests', { headers: { 'Retry-After': '1' } });
const PASSWORD_CHECKS_BUSY = new ProxyError('RATE_LIMITED', 'Too Many Requests: too many password checks in progress', { headers: { 'Retry-After': '1' } });
const AUTHORIZATION_TOO_LARGE = new ProxyError('HEADERS_TOO_LARGE', 'Request Header Fields Too Large: Authorization');
const UNAUTHORIZED = new ProxyError('UNAUTHORIZED', 'Unauthorized', { headers: { 'WWW-Authenticate': 'Basic' } });

interface Valid {
  kind: 'valid';
  config: WebConfig;
}
type State = Valid | { kind: 'invalid'; reason: string };

export interface SecureServerOptions {
  /** Requests that need no basic auth and no rate token (health checks). */
  exempt?: (req: IncomingMessage) => boolean;
  /** A TLS client that has not finished its handshake by then is dropped. */
  handshakeTimeoutMs: number;
}

export interface ListenerSecurityOptions {
  auth?: BasicAuthOptions;
  /** How often the files are looked at besides watch events and new connections. */
  pollMs?: number;
}

/** `/-/healthy` and `/-/ready`: reachable without basic auth, so that health checks work. */
export const isHealthCheck = (req: IncomingMessage): boolean => {
  const url = req.url ?? '';
  const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
  return path === '/-/healthy' || path === '/-/ready';
};

export class ListenerSecurity {
  private state: State;
  private last: WebConfig;
  private stamp: string;
  private readonly servers = new Set<HttpsServer>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly poll: NodeJS.Timeout;
  private debounce: NodeJS.Timeout | undefined;
  private generation = 0;

  /** Reads and checks the file (ConfigError with file:line:column), loads bcrypt if it has users. */
  static async open(file: string, log: Logger, options: ListenerSecurityOptions = {}): Promise<ListenerSecurity> {
    const config = loadWebConfig(file);
    const bcrypt = config.users.size > 0 ? await loadBcrypt() : undefined;
    return new ListenerSecurity(config, log, options, bcrypt);
  }

  private constructor(
    config: WebConfig,
    private readonly log: Logger,
    private readonly options: ListenerSecurityOptions,
    private bcrypt: Awaited<ReturnType<typeof loadBcrypt>> | undefined,
  ) {
    this.last = config;
    this.state = this.valid(config);
    this.stamp = stampOf(config.files);
    this.watchFiles(config.files);
    this.poll = setInterval(() => this.refresh(this.state.kind === 'invalid'), options.pollMs ?? 2000).unref();
    log.info(
      { file: config.file, tls: config.tls !== undefined, http2: false, basicAuth: config.users.size > 0, rateLimit: config.rateLimit !== undefined },
      config.tls ? 'web config loaded: TLS is enabled' : 'web config loaded: TLS is disabled',
    );
  }

  /** The web config in force (the last valid one). */
  config(): WebConfig {
    return this.last;
  }

  /** An http or https server, per the file, whose requests pass through the file's protection first. */
  createServer(serverOptions: ServerOptions, handler: Handler, options: SecureServerOptions): Server {
    const protectedHandler = this.protect(handler, options.exempt);
    const tls = this.last.tls;
    if (!tls) {
      const server = createHttpServer(serverOptions, protectedHandler);
      server.prependListener('connection', () => this.refresh());
      return server;
    }
    const server = createHttpsServer(
      // HTTP/1.1 only (http_server_config.http2 is read and has no effect): see docs/tls-and-auth.md.
      { ...serverOptions, ...tls.options, ALPNProtocols: ['http/1.1'], handshakeTimeout: options.handshakeTimeoutMs },
      protectedHandler,
    );
    this.servers.add(server);
    // Before tls's own listener: a certificate replaced on disk is the one this connection gets.
    server.prependListener('connection', () => this.refresh());
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const refusal = clientRefusal(socket, this.last.tls!);
      if (refusal) {
        this.log.debug({ remote: socket.remoteAddress, reason: refusal }, 'client certificate refused');
        socket.destroy();
      }
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.log.debug({ remote: socket.remoteAddress, code: err.code, err: err.message }, 'TLS handshake failed');
      // Plain HTTP to this port: say so in plain HTTP, as Go's servers do, on the socket under the TLS layer.
      const raw = (socket as unknown as { _parent?: Socket })._parent;
      if (err.code === 'ERR_SSL_HTTP_REQUEST' && raw?.writable) {
        raw.end(PLAIN_HTTP_REFUSAL);
        return;
      }
      socket.destroy();
    });
    return server as unknown as Server;
  }

  /** Looks at the files (a stat each) and re-reads the config when one changed. */
  refresh(force = false): void {
    const stamp = stampOf(this.last.files);
    if (!force && stamp === this.stamp) return;
    this.stamp = stamp;
    let next: WebConfig;
    try {
      next = loadWebConfig(this.last.file);
    } catch (err) {
      const reason = err instanceof ConfigError ? err.message : (err as Error).message;
      if (this.state.kind !== 'invalid' || this.state.reason !== reason) {
        this.log.error({ file: this.last.file, error: reason }, 'web config invalid: every request gets 500 until it is fixed');
      }
      this.state = { kind: 'invalid', reason };
      return;
    }
    if (this.state.kind === 'valid' && next.fingerprint === this.last.fingerprint) return;
    if ((next.tls === undefined) !== (this.last.tls === undefined)) {
      const reason = 'turning TLS on or off needs a restart';
      this.log.error({ file: next.file }, `web config: ${reason}; every request gets 500 until the file is restored or the proxy restarted`);
      this.state = { kind: 'invalid', reason };
      return;
    }
    this.apply(next);
  }

  private apply(next: WebConfig): void {
    const generation = ++this.generation;
    if (next.users.size > 0 && !this.bcrypt) {
      this.state = { kind: 'invalid', reason: 'loading bcrypt' };
      loadBcrypt().then(
        (bcrypt) => {
          this.bcrypt = bcrypt;
          if (generation === this.generation) this.apply(next);
        },
        (err: Error) => {
          if (generation !== this.generation) return;
          this.log.error({ error: err.message }, 'web config invalid: every request gets 500 until it is fixed');
          this.state = { kind: 'invalid', reason: err.message };
        },
      );
      return;
    }
    if (next.tls) {
      for (const server of this.servers) setTls(server, next.tls);
    }
    this.last = next;
    this.stamp = stampOf(next.files);
    this.state = this.valid(next);
    this.watchFiles(next.files);
    this.log.info({ file: next.file, tls: next.tls !== undefined, basicAuth: next.users.size > 0 }, 'web config reloaded');
  }

  private valid(config: WebConfig): Valid {
    return { kind: 'valid', config };
  }

  private protect(handler: Handler, exempt: ((req: IncomingMessage) => boolean) | undefined): Handler {
    // One bucket per listener: a flood of scrapes does not lock the operator out of the admin calls.
    let limiter: RateLimiter | undefined;
    let limiterFor: WebConfig['rateLimit'];
    // And one password budget per listener (issue 17 #5): a flood on one does not lock the other out.
    let auth: BasicAuth | undefined;
    let authFor: Valid | undefined;
    return (req, res) => {
      const s = this.state;
      if (s.kind === 'invalid') return writeError(res, WEB_CONFIG_INVALID);
      const free = exempt?.(req);
      const rate = s.config.rateLimit;
      if (rate !== undefined && !free) {
        if (rate !== limiterFor) {
          const same = limiterFor?.intervalMs === rate.intervalMs && limiterFor.burst === rate.burst;
          limiterFor = rate;
          if (!same || !limiter) limiter = new RateLimiter(rate.intervalMs, rate.burst);
        }
        if (!limiter!.allow()) return writeError(res, RATE_LIMITED);
      }
      const headers = s.config.headers;
      for (let i = 0; i < headers.length; i++) res.setHeader(headers[i]![0], headers[i]![1]);
      if (s !== authFor) {
        authFor = s;
        auth = s.config.users.size > 0 ? new BasicAuth(this.bcrypt!, s.config.users, this.options.auth) : undefined;
      }
      if (auth === undefined || free) return handler(req, res);
      const result = auth.check(req.headers.authorization);
      if (result === 'ok') return handler(req, res);
      if (typeof result === 'string') return refuse(res, result);
      result.then(
        (r) => (r === 'ok' ? handler(req, res) : refuse(res, r)),
        () => refuse(res, 'denied'),
      );
    };
  }

  private watchFiles(files: readonly string[]): void {
    const dirs = new Set(files.map((f) => dirname(f)));
    for (const [dir, watcher] of this.watchers) {
      if (!dirs.has(dir)) {
        watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        // The directory, not the file: editors and Kubernetes replace files by renaming over them.
        const watcher = watch(dir, { persistent: false }, () => {
          clearTimeout(this.debounce);
          this.debounce = setTimeout(() => this.refresh(), 50).unref();
        });
        watcher.on('error', () => watcher.close());
        this.watchers.set(dir, watcher);
      } catch {
        // The poll still looks at it.
      }
    }
  }

  close(): void {
    clearInterval(this.poll);
    clearTimeout(this.debounce);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }
}

function refuse(res: ServerResponse, result: Exclude<AuthResult, 'ok'>): void {
  switch (result) {
    case 'too_large':
      return writeError(res, AUTHORIZATION_TOO_LARGE);
    case 'busy':
      return writeError(res, PASSWORD_CHECKS_BUSY);
    default:
      return writeError(res, UNAUTHORIZED);
  }
}

function setTls(server: HttpsServer, tls: WebTls): void {
  server.setSecureContext(tls.options);
  // Server-level settings that setSecureContext leaves alone; tls reads them per connection.
  const s = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
  s.requestCert = tls.options.requestCert;
  s.rejectUnauthorized = tls.options.rejectUnauthorized;
}

/** Why this client's certificate is not admitted, or undefined (client_auth_type, client_allowed_sans). */
function clientRefusal(socket: TLSSocket, tls: WebTls): string | undefined {
  if (tls.clientAuth === 'NoClientCert') return undefined;
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) {
    if (tls.clientAuth === 'RequireAnyClientCert' || tls.clientAuth === 'RequireAndVerifyClientCert') return 'no client certificate';
    return tls.allowedSans ? 'no client certificate, and client_allowed_sans is set' : undefined;
  }
  if ((tls.clientAuth === 'VerifyClientCertIfGiven' || tls.clientAuth === 'RequireAndVerifyClientCert') && !socket.authorized) {
    return `client certificate not verified: ${String(socket.authorizationError)}`;
  }
  if (tls.allowedSans && !subjectAltNames(cert.subjectAltName).some((san) => tls.allowedSans!.has(normalizeSan(san)))) {
    return 'no subject alternative name of the client certificate is in client_allowed_sans';
  }
  return undefined;
}

/** DNS, IP, email and URI entries of Node's subjectAltName text (values with `,` or `"` come JSON-quoted). */
export function subjectAltNames(text: string | undefined): string[] {
  const out: string[] = [];
  const re = /(DNS|IP Address|email|URI|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let m = re.exec(text ?? ''); m !== null && m[0] !== ''; m = re.exec(text ?? '')) {
    if (!['DNS', 'IP Address', 'email', 'URI'].includes(m[1]!)) continue;
    const value = m[2]!;
    out.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return out;
}

function stampOf(files: readonly string[]): string {
  let stamp = '';
  for (const file of files) {
    try {
      const s = statSync(file);
      stamp += `${s.ino}:${s.size}:${s.mtimeMs};`;
    } catch {
      stamp += 'missing;';
    }
  }
  return stamp;
}
