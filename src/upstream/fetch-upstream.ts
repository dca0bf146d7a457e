/**
 * One upstream fetch with undici: a pooled keep-alive Agent per route (its TLS options are the
 * route's), the route's timeout over the whole exchange, and the body-size cap enforced while
 * streaming, before the body is held whole.
 */
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type { Agent as AgentType, Dispatcher } from 'undici';

// undici's index loads fetch, WebSocket, the cache and mock layers too: about 9 MiB of RSS
// that this process never uses. The Agent and request() alone are what a fetch needs here.
// (undici 7 has no exports map; these files are its documented building blocks.)
const require = createRequire(import.meta.url);
const Agent = require('undici/lib/dispatcher/agent.js') as typeof AgentType;
const request = require('undici/lib/api/api-request.js') as (
  this: Dispatcher,
  options: Dispatcher.RequestOptions,
) => Promise<Dispatcher.ResponseData>;
import type { Route } from '../config/types.js';
import { classifyUpstreamError, ProxyError } from '../errors.js';
import { tlsClientOptions } from '../net/tls-client-options.js';
import { checkGzipBody, contentCodingOf } from './content-coding.js';
import { requestOnFreshConnection } from './fresh-connection.js';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  durationMs: number;
}

const USER_AGENT = 'scrapecache';

/** The request target upstream: the route's own path (and for prefix routes the rest of the path) and merged query. */
export function upstreamTarget(route: Route, path: string, query: string): string {
  let pathname = route.upstream.pathname;
  if (route.pathPrefix !== undefined) {
    const rest = path.slice(route.pathPrefix.length);
    pathname = pathname.endsWith('/') || rest === '' || rest.startsWith('/') ? pathname + rest : `${pathname}/${rest}`;
    pathname = pathname.replace(/\/{2,}/g, '/');
  }
  const own = route.upstream.search.slice(1);
  const merged = own && query ? `${own}&${query}` : own || query;
  return merged ? `${pathname}?${merged}` : pathname;
}

/** Agents per route fingerprint, kept across reloads while the route's connection settings stay. */
export class Dispatchers {
  private readonly agents = new Map<string, AgentType>();

  for(route: Route): Dispatcher {
    let agent = this.agents.get(route.fingerprint);
    if (!agent) {
      const tls = route.tls;
      agent = new Agent({
        connections: 32,
        keepAliveTimeout: 30_000,
        connect: tls ? tlsClientOptions(tls) : {},
      });
      this.agents.set(route.fingerprint, agent);
    }
    return agent;
  }

  /** Closes the agents no current route uses (after a reload). */
  async retain(routes: readonly Route[]): Promise<void> {
    const keep = new Set(routes.map((r) => r.fingerprint));
    const closing: Promise<void>[] = [];
    for (const [fingerprint, agent] of this.agents) {
      if (!keep.has(fingerprint)) {
        this.agents.delete(fingerprint);
        closing.push(agent.close().catch(() => undefined));
      }
    }
    await Promise.all(closing);
  }

  async close(): Promise<void> {
    const all = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(all.map((a) => a.destroy().catch(() => undefined)));
  }
}

/** Upstreams seen to send an unsolicited 100 Continue: their fetches go to node:http directly. */
const continueQuirk = new WeakSet<Dispatcher>();

/** undici's answer to a 100 Continue it did not ask for (client-h1.js onHeadersComplete). */
function isUnsolicitedContinue(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'UND_ERR_SOCKET' && e.message === 'bad response';
}

/**
 * A reused keep-alive connection closed before any response to this GET arrived: safe to send
 * once more, on a new one. undici's SocketError carries the socket's byte counts: a connection
 * that read nothing was new, and its failure is the upstream's answer (no retry).
 */
function mayRetry(err: unknown): boolean {
  if (isUnsolicitedContinue(err)) return true;
  const e = err as { code?: string; socket?: { bytesRead?: number } };
  return e?.code === 'UND_ERR_SOCKET' && (e.socket?.bytesRead ?? 0) > 0;
}

/**
 * GETs the upstream and reads the whole body. Throws ProxyError: 504 on the route's timeout,
 * 502 when unreachable, reset, truncated, over max_body_bytes or not HTTP.
 */
export async function fetchUpstream(
  route: Route,
  dispatcher: Dispatcher,
  target: string,
  accept: string | undefined,
): Promise<UpstreamResponse> {
  const started = performance.now();
  const controller = new AbortController();
  // Made when it fires, not per fetch: an Error captures a stack, garbage on every fill otherwise.
  let timeout: ProxyError | undefined;
  const timer = setTimeout(() => {
    timeout = new ProxyError('UPSTREAM_TIMEOUT', `route ${route.name}: upstream timed out after ${route.timeoutMs}ms`);
    controller.abort(timeout);
  }, route.timeoutMs);
  try {
    const headers: Record<string, string> = {
      'user-agent': USER_AGENT,
      'accept-encoding': 'gzip',
      // Exporters such as blackbox_exporter size their work by this; give them the route's budget.
      'x-prometheus-scrape-timeout-seconds': String(route.timeoutMs / 1000),
      ...(accept ? { accept } : {}),
      ...route.headers,
    };
    let res: { statusCode: number; headers: Record<string, string | string[] | undefined>; body: Readable };
    if (continueQuirk.has(dispatcher)) {
      res = await requestOnFreshConnection(route, target, headers, controller.signal);
    } else {
      try {
        res = await request.call(dispatcher, {
          origin: route.upstream.origin,
          path: target,
          method: 'GET',
          headers,
          signal: controller.signal,
          headersTimeout: route.timeoutMs,
          bodyTimeout: route.timeoutMs,
        });
      } catch (err) {
        if (controller.signal.aborted || !mayRetry(err)) throw err;
        if (isUnsolicitedContinue(err)) continueQuirk.add(dispatcher);
        res = await requestOnFreshConnection(route, target, headers, controller.signal);
      }
    }
    // Destroying the body below makes undici emit an error nobody else listens for.
    res.body.on('error', () => undefined);
    const declared = Number(res.headers['content-length']);
    if (declared > route.maxBodyBytes) {
      res.body.destroy();
      throw tooLarge(route, `declares ${declared} bytes`);
    }
    const body = new BodyBuffer(Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined);
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (body.length + chunk.length > route.maxBodyBytes) {
        res.body.destroy();
        throw tooLarge(route, `sent more than ${route.maxBodyBytes} bytes`);
      }
      body.append(chunk);
    }
    const whole = body.finish();
    if (contentCodingOf(res.headers['content-encoding']) === 'gzip') await checkGzipBody(route, whole);
    return {
      status: res.statusCode,
      headers: res.headers,
      body: whole,
      durationMs: performance.now() - started,
    };
  } catch (err) {
    if (timeout !== undefined) throw timeout;
    throw classifyUpstreamError(route.name, err, route.timeoutMs, route.upstream);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Collects a body into one buffer of its own size. undici's chunks are views into socket reads:
 * an entry kept for hours must not pin the larger buffers they came from. With a Content-Length
 * each chunk is copied in as it arrives and can be freed at once, so a fill holds the body about
 * once, not twice.
 */
class BodyBuffer {
  private buffer: Buffer | undefined;
  private readonly chunks: Buffer[] = [];
  length = 0;

  constructor(declared: number | undefined) {
    if (declared !== undefined) this.buffer = Buffer.allocUnsafeSlow(declared);
  }

  append(chunk: Buffer): void {
    if (this.buffer && this.length + chunk.length <= this.buffer.length) chunk.copy(this.buffer, this.length);
    else {
      // No Content-Length, or more than it declared (undici then fails the read anyway).
      if (this.buffer) this.chunks.push(this.buffer.subarray(0, this.length));
      this.buffer = undefined;
      this.chunks.push(chunk);
    }
    this.length += chunk.length;
  }

  finish(): Buffer {
    if (this.buffer) return this.length === this.buffer.length ? this.buffer : Buffer.from(this.buffer.subarray(0, this.length));
    const body = Buffer.allocUnsafeSlow(this.length);
    let at = 0;
    for (const chunk of this.chunks) at += chunk.copy(body, at);
    return body;
  }
}

function tooLarge(route: Route, detail: string): ProxyError {
  return new ProxyError(
    'UPSTREAM_BODY_TOO_LARGE',
    `route ${route.name}: upstream body ${detail}, over max_body_bytes (${route.maxBodyBytes})`,
  );
}
