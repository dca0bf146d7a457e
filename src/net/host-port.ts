/**
 * Host names and addresses as the listeners, the config and the upstream clients write and read
 * them: the one place that adds or strips the brackets of an IPv6 literal and says what loopback
 * is. No I/O; everything below the server and the config may import it.
 */
import type { AddressInfo } from 'node:net';
import { BlockList, isIP } from 'node:net';

/** `[::1]` -> `::1`; anything without both brackets unchanged. URL.hostname keeps them for IPv6. */
export function unbracketHost(host: string): string {
  return host.length >= 2 && host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * The name a Host header carries, without port or brackets, lower case and without a trailing
 * dot: `[::1]:9181` -> `::1`, `Metrics.Example.:9181` -> `metrics.example`.
 */
export function hostHeaderName(header: string): string {
  const name = header.startsWith('[') ? header.slice(1, header.indexOf(']')) : header.replace(/:\d*$/, '');
  return name.toLowerCase().replace(/\.$/, '');
}

/** `::1` -> `[::1]` (RFC 3986 3.2.2: an IPv6 literal in a URL or host:port is bracketed); names and IPv4 unchanged. */
export function bracketHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** `host:port`, with an IPv6 literal bracketed: `[::1]:9181`. */
export function hostPort(host: string, port: number): string {
  return `${bracketHost(host)}:${port}`;
}

/** The `host:port` a bound socket reports (server.address()). */
export function addressText(address: AddressInfo): string {
  return hostPort(address.address, address.port);
}

/** A listen host that binds every address: 0.0.0.0, ::, or empty (Node's default). */
export function isWildcardHost(host: string): boolean {
  const h = unbracketHost(host);
  return h === '' || h === '0.0.0.0' || h === '::';
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Whether a host (a listen host, a Host header's name or a socket's remote address) is reachable
 * only from this machine: `localhost` (RFC 6761 6.3), 127.0.0.0/8, ::1 in any spelling, and
 * IPv4-mapped 127.x (`::ffff:127.0.0.1`, as a dual-stack socket reports an IPv4 peer). A name
 * that merely starts with "127." is not an address and is not loopback.
 */
export function isLoopback(host: string): boolean {
  const h = unbracketHost(host).toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  if (family === 0) return false;
  return LOOPBACK.check(h, family === 6 ? 'ipv6' : 'ipv4');
}
