/**
 * At start-up and on reload, one TCP connection to each upstream address, closed as soon as it
 * is open: no request is sent, so an expensive exporter pays nothing, and one that cannot be
 * reached (a typo, an exporter not started) is named in the log once, before a scrape gets 502.
 */
import { connect } from 'node:net';
import type { Logger } from 'pino';
import type { Route } from '../config/types.js';
import { upstreamAddress } from '../errors.js';

/** Longest a connection attempt may take before the upstream counts as unreachable. */
const PROBE_TIMEOUT_MS = 5000;

export interface ProbeResult {
  upstream: string;
  routes: string[];
  /** Undefined when the connection opened. */
  error?: string;
}

function probe(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    // WHATWG URLs keep IPv6 hosts in brackets; net wants them bare.
    const socket = connect({ host: host.replace(/^\[|\]$/g, ''), port });
    const done = (error: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => done(`no connection within ${timeoutMs / 1000} s`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/** Connects once to every distinct upstream address of the routes; logs one warning per unreachable one. */
export async function checkUpstreams(routes: readonly Route[], log: Logger, when: 'start-up' | 'reload'): Promise<ProbeResult[]> {
  const byAddress = new Map<string, { url: URL; routes: string[]; timeoutMs: number }>();
  for (const route of routes) {
    const address = upstreamAddress(route.upstream);
    const seen = byAddress.get(address);
    if (seen) {
      seen.routes.push(route.name);
      seen.timeoutMs = Math.min(seen.timeoutMs, route.timeoutMs);
    } else byAddress.set(address, { url: route.upstream, routes: [route.name], timeoutMs: route.timeoutMs });
  }
  return Promise.all(
    [...byAddress].map(async ([address, { url, routes: names, timeoutMs }]) => {
      const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
      const error = await probe(url.hostname, port, Math.min(PROBE_TIMEOUT_MS, timeoutMs));
      if (error !== undefined) {
        log.warn(
          { upstream: address, routes: names, code: error, when },
          `upstream ${address} is not reachable (${error}): scrapes of ${names.length === 1 ? 'route' : 'routes'} ${names.join(', ')} get 502 until it is`,
        );
      }
      return error === undefined ? { upstream: address, routes: names } : { upstream: address, routes: names, error };
    }),
  );
}
