/**
 * Pass-through routes (`cache: false`): streamed both ways with http-proxy, never buffered
 * whole, never stored. The route's timeout and max_body_bytes hold as on cached routes; an
 * upstream failure before the response started is a 502/504 line like any other.
 */
import { Agent as HttpAgent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import httpProxy from 'http-proxy';
import type { Logger } from 'pino';
import type { Route } from '../config/types.js';
import { classifyUpstreamError, ProxyError, upstreamAddress } from '../errors.js';
import { unbracketHost } from '../net/host-port.js';
import { tlsClientOptions } from '../net/tls-client-options.js';
import { writeError } from '../net/write-text.js';
import type { Metrics } from '../metrics.js';
import { upstreamTarget } from './fetch-upstream.js';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate',
  // No request body is ever forwarded (SPEC 3.1), so there is nothing for the upstream to continue to.
  'expect'];

/**
 * Framing is decided by the parser, never by a Connection header: `Connection: content-length`
 * must not strip the length from a message whose body is still forwarded (request smuggling).
 */
const NEVER_LISTED = new Set(['content-length', 'transfer-encoding']);

/**
 * What a client sends to authenticate to the proxy is the proxy's (issue 17 #4): its password to
 * the listener's basic_auth_users would open every route, and cookies of the proxy's host are
 * not the upstream's either. An upstream gets only the credentials the route's config gives it
 * (basic_auth, bearer_token_file, headers).
 */
const CLIENT_CREDENTIALS = ['authorization', 'cookie'];

/** The fixed hop-by-hop headers and those a Connection header names, lower-cased. */
function hopByHop(connection: string | string[] | undefined): Set<string> {
  const names = new Set(HOP_BY_HOP);
  for (const token of String(connection ?? '').split(',')) {
    const name = token.trim().toLowerCase();
    if (name && !NEVER_LISTED.has(name)) names.add(name);
  }
  return names;
}

function newAgent(route: Route, keepAlive: boolean): HttpAgent {
  const tls = route.tls;
  return route.upstream.protocol === 'https:'
    ? new HttpsAgent({
        keepAlive,
        ...tlsClientOptions(tls),
      })
    : new HttpAgent({ keepAlive });
}

/**
 * An agent no route uses any more: its idle sockets close now, its busy ones when their response
 * is done, so that a reload never cuts a download in flight (it finishes on the route it started with).
 */
function retire(agent: HttpAgent): void {
  agent.keepSocketAlive = () => false;
  for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
}

/** http-proxy reports per-request events on the proxy; these hooks carry them to their request. */
type PassThroughRequest = IncomingMessage & {
  onProxyReq?: (proxyReq: ClientRequest) => void;
  onProxyRes?: (upstream: IncomingMessage) => void;
};

/** The upstream's response headers as the client gets them: hop-by-hop ones dropped, Cache-Status added. */
function responseHeaders(upstream: IncomingMessage): string[] {
  const headers: string[] = [];
  const dropped = hopByHop(upstream.headers['connection']);
  // RFC 9110 8.6: a 204 has no Content-Length.
  if (upstream.statusCode === 204) dropped.add('content-length');
  for (let i = 0; i < upstream.rawHeaders.length; i += 2) {
    const name = upstream.rawHeaders[i]!;
    if (!dropped.has(name.toLowerCase())) headers.push(name, upstream.rawHeaders[i + 1]!);
  }
  headers.push('Cache-Status', 'scrapecache; fwd=bypass');
  return headers;
}

/**
 * One request on its way through: the route's timeout, the body limit, one retry on a reused
 * socket the upstream had closed, and one ending (metrics and log) however it ends.
 */
class Forwarding {
  private readonly started = performance.now();
  /** Scheme, host and port come from the config alone (SPEC 2); the request supplies only the path. */
  private readonly targetPath: string;
  private readonly timer: NodeJS.Timeout;
  private done = false;
  private timedOut = false;
  private upstreamRequest: ClientRequest | undefined;

  constructor(
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly route: Route,
    private readonly path: string,
    rawQuery: string,
  ) {
    // Passed on as a string and never parsed as a URL, where `/\\host` would name a host.
    this.targetPath = upstreamTarget(route, path, rawQuery);
    const hooks = req as PassThroughRequest;
    hooks.onProxyReq = (proxyReq) => this.prepare(proxyReq);
    // http-proxy emits proxyRes on the proxy server; install() hands it to the request's own handler.
    hooks.onProxyRes = (upstream) => this.respond(upstream);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.upstreamRequest?.destroy();
      this.fail(new ProxyError('UPSTREAM_TIMEOUT', `route ${route.name}: upstream timed out after ${route.timeoutMs}ms`));
    }, route.timeoutMs);
    res.once('close', () => clearTimeout(this.timer));
  }

  send(proxy: httpProxy, agent: HttpAgent, retried: boolean): void {
    const { route, req, res } = this;
    const upstream = route.upstream;
    const target = {
      protocol: upstream.protocol,
      host: unbracketHost(upstream.hostname),
      port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
      path: this.targetPath,
    };
    const options = { target: target as never, ignorePath: true, agent, headers: route.headers, proxyTimeout: route.timeoutMs, selfHandleResponse: true };
    proxy.web(req, res, options, (err: unknown) => {
      if (this.mayRetry(err, retried)) {
        const fresh = newAgent(route, false);
        res.once('close', () => fresh.destroy());
        this.send(proxy, fresh, true);
        return;
      }
      this.fail(err);
    });
  }

  /**
   * RFC 9112 9.3.1: a reused keep-alive socket the upstream closed (FIN: node's "socket hang
   * up") as this GET arrived; nothing was received, so it goes once more, on a connection of its
   * own. A reset (read ECONNRESET) is the upstream's answer.
   */
  private mayRetry(err: unknown, retried: boolean): boolean {
    const e = err as { code?: string; message?: string };
    const reused = this.upstreamRequest?.reusedSocket === true;
    return !retried && reused && !this.timedOut && !this.res.headersSent && e.code === 'ECONNRESET' && e.message === 'socket hang up';
  }

  private prepare(proxyReq: ClientRequest): void {
    this.upstreamRequest = proxyReq;
    // http-proxy joins the target path with url.resolve rules and collapses `//`, also in the
    // query (`?x=http://a//b`); the request line goes out byte for byte instead.
    proxyReq.path = this.targetPath;
    // RFC 9110 7.6.1: the client's hop-by-hop headers end here (http-proxy copies them all).
    for (const name of hopByHop(this.req.headers['connection'])) proxyReq.removeHeader(name);
    const configured = new Set(Object.keys(this.route.headers).map((h) => h.toLowerCase()));
    for (const name of CLIENT_CREDENTIALS) if (!configured.has(name)) proxyReq.removeHeader(name);
  }

  private respond(upstream: IncomingMessage): void {
    const { route, res } = this;
    const declared = Number(upstream.headers['content-length']);
    if (declared > route.maxBodyBytes) {
      upstream.destroy();
      clearTimeout(this.timer);
      this.fail(new ProxyError('UPSTREAM_BODY_TOO_LARGE', `route ${route.name}: upstream body declares ${declared} bytes, over max_body_bytes (${route.maxBodyBytes})`));
      return;
    }
    const headers = responseHeaders(upstream);
    if (res.destroyed || res.headersSent) {
      upstream.destroy();
      return;
    }
    res.writeHead(upstream.statusCode ?? 502, headers);
    let length = 0;
    upstream.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > route.maxBodyBytes) {
        // The status is already sent: cutting the stream is the only honest signal left.
        this.log.warn({ route: route.name, path: this.path }, 'pass-through body over max_body_bytes, connection cut');
        this.finish('too_large');
        upstream.destroy();
        res.destroy();
      }
    });
    upstream.on('end', () => {
      clearTimeout(this.timer);
      this.finish(String(upstream.statusCode));
    });
    upstream.on('error', () => res.destroy());
    upstream.pipe(res);
  }

  private finish(code: string, error?: string): void {
    if (this.done) return;
    this.done = true;
    this.metrics.upstream(this.route.name, code, (performance.now() - this.started) / 1000, error);
  }

  private fail(err: unknown): void {
    const route = this.route;
    const e =
      err instanceof ProxyError
        ? err
        : (err as { code?: string }).code === 'ECONNRESET' && this.timedOut
          ? new ProxyError('UPSTREAM_TIMEOUT', `route ${route.name}: upstream timed out after ${route.timeoutMs}ms`)
          : classifyUpstreamError(route.name, err, route.timeoutMs, route.upstream);
    this.finish(e.kind, e.message);
    this.log.warn({ route: route.name, path: this.path, upstream: upstreamAddress(route.upstream), code: e.code, error: e.message }, 'pass-through failed');
    writeError(this.res, e, { fwd: 'bypass', head: this.req.method === 'HEAD' });
  }
}

export class PassThrough {
  private readonly proxy = httpProxy.createProxyServer({ selfHandleResponse: true, xfwd: false, changeOrigin: true });
  private readonly agents = new Map<string, HttpAgent>();

  constructor(
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  private agentFor(route: Route): HttpAgent {
    let agent = this.agents.get(route.fingerprint);
    if (!agent) {
      agent = newAgent(route, true);
      this.agents.set(route.fingerprint, agent);
    }
    return agent;
  }

  forward(req: IncomingMessage, res: ServerResponse, route: Route, path: string, rawQuery: string): void {
    new Forwarding(this.metrics, this.log, req, res, route, path, rawQuery).send(this.proxy, this.agentFor(route), false);
  }

  /** Called once per process: routes proxyRes to the request it belongs to. */
  install(): this {
    this.proxy.on('proxyReq', (proxyReq, req) => (req as PassThroughRequest).onProxyReq?.(proxyReq));
    this.proxy.on('proxyRes', (upstream, req) => (req as PassThroughRequest).onProxyRes?.(upstream));
    return this;
  }

  /** Closes the agents no current route uses (after a reload changed a route's TLS or upstream). */
  retain(routes: readonly Route[]): void {
    const keep = new Set(routes.map((r) => r.fingerprint));
    for (const [fingerprint, agent] of this.agents) {
      if (!keep.has(fingerprint)) {
        this.agents.delete(fingerprint);
        retire(agent);
      }
    }
  }

  close(): void {
    this.proxy.close();
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}
