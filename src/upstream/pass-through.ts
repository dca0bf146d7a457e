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
    const started = performance.now();
    // Scheme, host and port come from the config alone (SPEC 2); the request supplies only the
    // path, passed on as a string and never parsed as a URL, where `/\\host` would name a host.
    const upstream = route.upstream;
    const targetPath = upstreamTarget(route, path, rawQuery);
    let done = false;
    const finish = (code: string, error?: string) => {
      if (done) return;
      done = true;
      this.metrics.upstream(route.name, code, (performance.now() - started) / 1000, error);
    };
    const onError = (err: unknown) => {
      const e =
        err instanceof ProxyError
          ? err
          : (err as { code?: string }).code === 'ECONNRESET' && timedOut
            ? new ProxyError('UPSTREAM_TIMEOUT', `route ${route.name}: upstream timed out after ${route.timeoutMs}ms`)
            : classifyUpstreamError(route.name, err, route.timeoutMs, route.upstream);
      finish(e.kind, e.message);
      this.log.warn({ route: route.name, path, upstream: upstreamAddress(route.upstream), code: e.code, error: e.message }, 'pass-through failed');
      writeError(res, e, { fwd: 'bypass', head: req.method === 'HEAD' });
    };
    let timedOut = false;
    let upstreamRequest: { destroy(): void } | undefined;
    const hooks = req as PassThroughRequest;
    const configured = new Set(Object.keys(route.headers).map((h) => h.toLowerCase()));
    hooks.onProxyReq = (proxyReq) => {
      upstreamRequest = proxyReq;
      // http-proxy joins the target path with url.resolve rules and collapses `//`, also in the
      // query (`?x=http://a//b`); the request line goes out byte for byte instead.
      proxyReq.path = targetPath;
      // RFC 9110 7.6.1: the client's hop-by-hop headers end here (http-proxy copies them all).
      for (const name of hopByHop(req.headers['connection'])) proxyReq.removeHeader(name);
      for (const name of CLIENT_CREDENTIALS) if (!configured.has(name)) proxyReq.removeHeader(name);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      upstreamRequest?.destroy();
      onError(new ProxyError('UPSTREAM_TIMEOUT', `route ${route.name}: upstream timed out after ${route.timeoutMs}ms`));
    }, route.timeoutMs);
    res.once('close', () => clearTimeout(timer));

    // http-proxy emits proxyRes on the proxy server; install() hands it to the request's own handler.
    hooks.onProxyRes = (upstream) => {
      const declared = Number(upstream.headers['content-length']);
      if (declared > route.maxBodyBytes) {
        upstream.destroy();
        clearTimeout(timer);
        onError(new ProxyError('UPSTREAM_BODY_TOO_LARGE', `route ${route.name}: upstream body declares ${declared} bytes, over max_body_bytes (${route.maxBodyBytes})`));
        return;
      }
      const headers: string[] = [];
      const dropped = hopByHop(upstream.headers['connection']);
      // RFC 9110 8.6: a 204 has no Content-Length.
      if (upstream.statusCode === 204) dropped.add('content-length');
      for (let i = 0; i < upstream.rawHeaders.length; i += 2) {
        const name = upstream.rawHeaders[i]!;
        if (!dropped.has(name.toLowerCase())) headers.push(name, upstream.rawHeaders[i + 1]!);
      }
      headers.push('Cache-Status', 'scrapecache; fwd=bypass');
      if (res.destroyed || res.headersSent) return upstream.destroy();
      res.writeHead(upstream.statusCode ?? 502, headers);
      let length = 0;
      upstream.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > route.maxBodyBytes) {
          // The status is already sent: cutting the stream is the only honest signal left.
          this.log.warn({ route: route.name, path }, 'pass-through body over max_body_bytes, connection cut');
          finish('too_large');
          upstream.destroy();
          res.destroy();
        }
      });
      upstream.on('end', () => {
        clearTimeout(timer);
        finish(String(upstream.statusCode));
      });
      upstream.on('error', () => res.destroy());
      upstream.pipe(res);
    };
    const send = (agent: HttpAgent, retried: boolean) =>
      this.proxy.web(
        req,
        res,
        {
          target: {
            protocol: upstream.protocol,
            host: unbracketHost(upstream.hostname),
            port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
            path: targetPath,
          } as never,
          ignorePath: true,
          agent,
          headers: route.headers,
          proxyTimeout: route.timeoutMs,
          selfHandleResponse: true,
        },
        (err: unknown) => {
          // RFC 9112 9.3.1: a reused keep-alive socket the upstream closed (FIN: node's "socket
          // hang up") as this GET arrived; nothing was received, so it goes once more, on a
          // connection of its own. A reset (read ECONNRESET) is the upstream's answer.
          const reused = (upstreamRequest as ClientRequest | undefined)?.reusedSocket === true;
          const e = err as { code?: string; message?: string };
          if (!retried && reused && !timedOut && !res.headersSent && e.code === 'ECONNRESET' && e.message === 'socket hang up') {
            const fresh = newAgent(route, false);
            res.once('close', () => fresh.destroy());
            send(fresh, true);
            return;
          }
          onError(err);
        },
      );
    send(this.agentFor(route), false);
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
