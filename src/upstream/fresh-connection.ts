/**
 * A GET on a connection of its own, with node:http. Used where undici's pooled request cannot
 * help: a reused keep-alive socket the upstream closed as the request arrived (RFC 9112 9.3.1:
 * an idempotent request that received nothing may be retried), and an upstream that sends an
 * unsolicited `100 Continue` before its answer (RFC 9110 15.2: a client must accept it; undici
 * refuses it, node:http skips it).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { unbracketHost } from '../net/host-port.js';
import { tlsClientOptions } from '../net/tls-client-options.js';
import type { Route } from '../config/types.js';

export interface FreshResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: IncomingMessage;
}

export function requestOnFreshConnection(
  route: Route,
  path: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<FreshResponse> {
  const upstream = route.upstream;
  const tls = route.tls;
  const https = upstream.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const options = {
      protocol: upstream.protocol,
      host: unbracketHost(upstream.hostname),
      port: upstream.port || (https ? 443 : 80),
      path,
      method: 'GET',
      headers: { ...headers, host: upstream.host, connection: 'close' },
      agent: false as const,
      signal,
      ...(https ? tlsClientOptions(tls) : {}),
    };
    const req = (https ? httpsRequest : httpRequest)(options, (res) =>
      resolve({ statusCode: res.statusCode ?? 502, headers: res.headers, body: res }),
    );
    req.on('error', reject);
    req.end();
  });
}
