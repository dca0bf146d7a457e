/**
 * The proxy's own failures: one type with a stable code (like undici's UND_ERR_*), the HTTP
 * status it becomes, and a one-line message that names the route and the cause.
 */

/** What each code becomes: the HTTP status, and the kind that names it in metric labels (SPEC 5). */
const CODES = {
  UPSTREAM_UNREACHABLE: { status: 502, kind: 'unreachable' },
  UPSTREAM_RESET: { status: 502, kind: 'reset' },
  UPSTREAM_TIMEOUT: { status: 504, kind: 'timeout' },
  UPSTREAM_BODY_TOO_LARGE: { status: 502, kind: 'too_large' },
  UPSTREAM_BAD_RESPONSE: { status: 502, kind: 'bad_response' },
  UPSTREAM_TLS: { status: 502, kind: 'tls' },
  SCRAPE_DEADLINE: { status: 504, kind: 'deadline' },
  // The Cache-Status detail of the proxy's own 406 as the README documents it.
  NOT_ACCEPTABLE: { status: 406, kind: 'not_acceptable', detail: 'not-acceptable' },
  SHUTTING_DOWN: { status: 503, kind: 'shutting_down' },
  SELF_METRICS_UNAVAILABLE: { status: 503, kind: 'self_metrics_unavailable' },
  WEB_CONFIG_INVALID: { status: 500, kind: 'web_config_invalid' },
  INTERNAL: { status: 500, kind: 'internal' },
  // A request the proxy refuses: the client's doing, answered as it is.
  BAD_REQUEST: { status: 400, kind: 'bad_request', refusal: true },
  UNAUTHORIZED: { status: 401, kind: 'unauthorized', refusal: true },
  FORBIDDEN: { status: 403, kind: 'forbidden', refusal: true },
  NOT_FOUND: { status: 404, kind: 'not_found', refusal: true },
  METHOD_NOT_ALLOWED: { status: 405, kind: 'method_not_allowed', refusal: true },
  REQUEST_TOO_LARGE: { status: 413, kind: 'request_too_large', refusal: true },
  RATE_LIMITED: { status: 429, kind: 'rate_limited', refusal: true },
  HEADERS_TOO_LARGE: { status: 431, kind: 'headers_too_large', refusal: true },
} as const satisfies Record<string, { status: number; kind: string; detail?: string; refusal?: true }>;

export type ProxyErrorCode = keyof typeof CODES;

/** Every code, for checking one that crossed a process boundary (the cluster's `failed` message). */
export const PROXY_ERROR_CODES = Object.keys(CODES) as [ProxyErrorCode, ...ProxyErrorCode[]];

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly status: number;
  readonly kind: string;
  /** Headers the answer carries besides the body's (Allow with a 405, WWW-Authenticate with a 401). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
    this.status = CODES[code].status;
    this.kind = CODES[code].kind;
    this.headers = options?.headers ?? {};
  }

  /** A refused request (4xx of the client's making), as opposed to a failure of the proxy or its upstream. */
  get isRefusal(): boolean {
    return 'refusal' in CODES[this.code];
  }

  /** The `detail` of a Cache-Status that names this failure (RFC 9211 section 2.8). */
  get detail(): string {
    const entry: { kind: string; detail?: string } = CODES[this.code];
    return entry.detail ?? entry.kind;
  }
}

/** A bug of ours, logged where it is caught: the client learns no more than this. */
export const INTERNAL_ERROR = new ProxyError('INTERNAL', 'internal error');

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
