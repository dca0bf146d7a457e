/**
 * The client side of TLS to an upstream or to Redis, from the config's `tls` block (SPEC 3.2):
 * one place that turns it into the options node:tls, node:https and undici's connector take, so
 * the fetcher, the pass-through, the fresh-connection check and the Redis client verify alike.
 */
import type { UpstreamTls } from '../config/types.js';

export interface TlsClientOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** SNI and the name the certificate is checked against, when it is not the URL's host. */
  servername?: string;
  rejectUnauthorized: boolean;
}

/** Only what the config sets; with no `tls` block, the default: verify against the system CAs. */
export function tlsClientOptions(tls: UpstreamTls | undefined): TlsClientOptions {
  return {
    ...(tls?.ca ? { ca: tls.ca } : {}),
    ...(tls?.cert ? { cert: tls.cert } : {}),
    ...(tls?.key ? { key: tls.key } : {}),
    ...(tls?.serverName ? { servername: tls.serverName } : {}),
    rejectUnauthorized: !(tls?.insecureSkipVerify ?? false),
  };
}
