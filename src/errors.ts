/**
 * The proxy's own failures: one type with a stable code (like undici's UND_ERR_*), the HTTP
 * status it becomes, and a one-line message that names the route and the cause.
 */

export type ProxyErrorCode =
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_RESET'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_BODY_TOO_LARGE'
  | 'UPSTREAM_BAD_RESPONSE'
  | 'UPSTREAM_TLS'
  | 'SCRAPE_DEADLINE'
  | 'NOT_ACCEPTABLE'
  | 'SHUTTING_DOWN'
  // A request the proxy refuses (the admin listener's so far).
  | 'BAD_REQUEST'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'REQUEST_TOO_LARGE';

const STATUS: Record<ProxyErrorCode, number> = {
  UPSTREAM_UNREACHABLE: 502,
  UPSTREAM_RESET: 502,
  UPSTREAM_TIMEOUT: 504,
  UPSTREAM_BODY_TOO_LARGE: 502,
  UPSTREAM_BAD_RESPONSE: 502,
  UPSTREAM_TLS: 502,
  SCRAPE_DEADLINE: 504,
  NOT_ACCEPTABLE: 406,
  SHUTTING_DOWN: 503,
  BAD_REQUEST: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TOO_LARGE: 413,
};

/** Error kinds as metric label values (SPEC 5: code = HTTP status or error kind). */
const KIND: Record<ProxyErrorCode, string> = {
  UPSTREAM_UNREACHABLE: 'unreachable',
  UPSTREAM_RESET: 'reset',
  UPSTREAM_TIMEOUT: 'timeout',
  UPSTREAM_BODY_TOO_LARGE: 'too_large',
  UPSTREAM_BAD_RESPONSE: 'bad_response',
  UPSTREAM_TLS: 'tls',
  SCRAPE_DEADLINE: 'deadline',
  NOT_ACCEPTABLE: 'not_acceptable',
  SHUTTING_DOWN: 'shutting_down',
  BAD_REQUEST: 'bad_request',
  FORBIDDEN: 'forbidden',
  NOT_FOUND: 'not_found',
  METHOD_NOT_ALLOWED: 'method_not_allowed',
  REQUEST_TOO_LARGE: 'request_too_large',
};

/** The codes of a request the proxy refuses: the client's doing, answered as they are. */
const REFUSALS: ReadonlySet<ProxyErrorCode> = new Set(['BAD_REQUEST', 'FORBIDDEN', 'NOT_FOUND', 'METHOD_NOT_ALLOWED', 'REQUEST_TOO_LARGE']);

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly status: number;
  readonly kind: string;
  /** Headers the answer carries besides the body's (Allow with a 405). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
    this.status = STATUS[code];
    this.kind = KIND[code];
    this.headers = options?.headers ?? {};
  }

  /** A refused request (4xx of the client's making), as opposed to a failure of the proxy or its upstream. */
  get isRefusal(): boolean {
    return REFUSALS.has(this.code);
  }
}

/** `host:port` of an upstream URL, the port written out even where it is the scheme's default. */
export function upstreamAddress(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

/**
 * Turns whatever undici or node threw during an upstream fetch into a ProxyError. A failure to
 * connect names the address tried (`upstream`), so that a typo or a stopped exporter shows.
 */
export function classifyUpstreamError(route: string, err: unknown, timeoutMs: number, upstream?: URL): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as { code?: string; name?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  const detail = e?.message ?? String(err);
  const at = `route ${route}`;
  const address = upstream ? ` at ${upstreamAddress(upstream)}` : '';
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new ProxyError('UPSTREAM_TIMEOUT', `${at}: upstream timed out after ${timeoutMs}ms`, { cause: err });
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new ProxyError('UPSTREAM_UNREACHABLE', `${at}: upstream unreachable${address} (${code})`, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return new ProxyError('UPSTREAM_RESET', `${at}: upstream closed the connection before the response was complete`, {
        cause: err,
      });
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'HPE_HEADER_OVERFLOW':
      return new ProxyError('UPSTREAM_BAD_RESPONSE', `${at}: upstream sent response headers over the size limit`, { cause: err });
    case 'HPE_INVALID_CONSTANT':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return new ProxyError('UPSTREAM_BAD_RESPONSE', `${at}: upstream sent an invalid HTTP response`, { cause: err });
  }
  if (code.startsWith('HPE_') || e?.name === 'HTTPParserError') {
    return new ProxyError('UPSTREAM_BAD_RESPONSE', `${at}: upstream sent an invalid HTTP response (${code || detail})`, {
      cause: err,
    });
  }
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/.test(code)) {
    return new ProxyError('UPSTREAM_TLS', `${at}: TLS handshake with upstream${address} failed (${code})`, { cause: err });
  }
  return new ProxyError('UPSTREAM_UNREACHABLE', `${at}: upstream request${address} failed (${code || detail})`, { cause: err });
}
