/**
 * What a client_golang exporter answers to an Accept header, computed the way it computes it:
 * prometheus/common's expfmt.Negotiate and NegotiateIncludingOpenMetrics (v0.62 to v0.70, the
 * releases in the exporters and Prometheus versions in use) over munnerz/goautoneg's ParseAccept.
 * Pure functions, no I/O; the listener memoises them per distinct header value.
 *
 * What matters, and differs from RFC 9110 content negotiation:
 * - Clauses are visited in goautoneg's order: q descending, a concrete type before `*`, a
 *   concrete subtype before `*`; that comparison is not a strict order, and Go's sort.Sort
 *   (insertion sort up to 12 elements) decides ties. Reproduced exactly below for up to 12 clauses.
 * - The first clause that names a format the exporter offers wins, whatever its q (even q=0).
 *   Wildcards never name one: `*` and `text/*` alone get text 0.0.4, so protobuf and OpenMetrics
 *   go only to clients that name them.
 * - `escaping=` is sticky: any valid value on a clause visited before or at the winning one sets
 *   the scheme, so Prometheus 3's `...;escaping=allow-utf-8;q=0.6,...,text/plain;version=0.0.4;q=0.3`
 *   gets text 0.0.4 with escaping=allow-utf-8 from an exporter without OpenMetrics. Default:
 *   underscores (model.NameEscapingScheme).
 * - text/plain matches only version 0.0.4 or none (expfmt has no text 1.0.0); OpenMetrics matches
 *   0.0.1, 1.0.0 or none, and none means 0.0.1.
 * - Type, subtype and parameter names are case-sensitive, and only spaces are trimmed (Go's
 *   header values are not folded).
 */

export type Escaping = 'allow-utf-8' | 'underscores' | 'dots' | 'values';
export const ESCAPINGS: readonly Escaping[] = ['allow-utf-8', 'underscores', 'dots', 'values'];
export const DEFAULT_ESCAPING: Escaping = 'underscores';

/** `proto-text` and `proto-compact` are expfmt's debugging encodings of the protobuf messages. */
export type AnswerKind = 'protobuf' | 'text' | 'openmetrics' | 'proto-text' | 'proto-compact';

/** The representation an exporter answers with: its Content-Type, less charset. */
export interface Answer {
  kind: AnswerKind;
  /** '0.0.4' for text, '1.0.0' or '0.0.1' for OpenMetrics, '' for the protobuf encodings. */
  version: string;
  escaping: Escaping;
}

/** Which formats beyond text the exporter offers (promhttp: protobuf always, OpenMetrics when enabled). */
export interface Offers {
  protobuf: boolean;
  openmetrics: boolean;
}

export interface AcceptClause {
  type: string;
  subtype: string;
  q: number;
  params: ReadonlyMap<string, string>;
}

const PROTO_TYPE = 'application/vnd.google.protobuf';
const PROTO_PROTOCOL = 'io.prometheus.client.MetricFamily';
const OPENMETRICS_TYPE = 'application/openmetrics-text';
const NO_PARAMS: ReadonlyMap<string, string> = new Map();

/** Go's strings.TrimFunc(s, r == ' '): spaces only, not tabs. */
function trimSpaces(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 32) a++;
  while (b > a && s.charCodeAt(b - 1) === 32) b--;
  return s.slice(a, b);
}

/** goautoneg's nextSplitElement: before and after the first sep. */
function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i === -1 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

/**
 * strconv.ParseFloat(s, 32) as goautoneg uses it (`a.Q, _ = ...`): the value it returns even on
 * error, which is 0 for a syntax error and ±Inf beyond float32's range. Underscores (Go allows
 * them after a base prefix) are read as a syntax error.
 */
export function parseGoFloat32(s: string): number {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return toFloat32(Number(s));
  const hex = /^([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?\d+)$/.exec(s);
  if (hex && (hex[2] !== '' || hex[3] !== '')) {
    const [, sign, whole, frac, exp] = hex;
    let mantissa = 0;
    for (const d of whole! + frac!) mantissa = mantissa * 16 + parseInt(d, 16);
    const value = mantissa * 2 ** (Number(exp) - 4 * frac!.length);
    return toFloat32(sign === '-' ? -value : value);
  }
  const special = /^([+-]?)(inf|infinity)$/i.exec(s);
  if (special) return special[1] === '-' ? -Infinity : Infinity;
  if (/^nan$/i.test(s)) return NaN;
  return 0;
}

function toFloat32(n: number): number {
  // Math.fround rounds past float32's maximum to Infinity, as ParseFloat's ErrRange value is.
  return Math.fround(n);
}

/** goautoneg's acceptSlice.Less: not a strict weak order, so the sort below must be Go's. */
function less(a: AcceptClause, b: AcceptClause): boolean {
  if (a.q > b.q) return true;
  if (a.type !== '*' && b.type === '*') return true;
  if (a.subtype !== '*' && b.subtype === '*') return true;
  return false;
}

/**
 * goautoneg.ParseAccept: the clauses in the order Negotiate visits them. Members without a
 * subtype (other than `*`), with more than one `/`, and parameters without a value or with two
 * `=` are skipped as goautoneg skips them. Go sorts with sort.Sort, whose pdqsort is an insertion
 * sort up to 12 elements; past 12 this insertion sort may order ties differently from Go.
 */
export function parseAcceptGo(header: string): AcceptClause[] {
  const clauses: AcceptClause[] = [];
  let remaining = header;
  while (remaining.length > 0) {
    let part: string;
    [part, remaining] = splitOnce(remaining, ',');
    part = trimSpaces(part);
    const [mediaRange, rawParams] = splitOnce(part, ';');
    const [rawType, afterSlash] = splitOnce(mediaRange, '/');
    const type = trimSpaces(rawType);
    let subtype: string;
    if (afterSlash.length === 0) {
      if (type !== '*') continue;
      subtype = '*';
    } else {
      const [rawSub, extra] = splitOnce(afterSlash, '/');
      if (extra.length > 0) continue;
      subtype = trimSpaces(rawSub);
    }
    let q = 1;
    let params = NO_PARAMS;
    if (rawParams.length > 0) {
      const map = new Map<string, string>();
      let rest = rawParams;
      while (rest.length > 0) {
        let p: string;
        [p, rest] = splitOnce(rest, ';');
        const [rawName, afterEq] = splitOnce(p, '=');
        if (afterEq.length === 0) continue;
        const [value, extra] = splitOnce(afterEq, '=');
        if (extra.length !== 0) continue;
        const name = trimSpaces(rawName);
        if (name === 'q') q = parseGoFloat32(value);
        else map.set(name, trimSpaces(value));
      }
      params = map;
    }
    clauses.push({ type, subtype, q, params });
  }
  for (let i = 1; i < clauses.length; i++) {
    for (let j = i; j > 0 && less(clauses[j]!, clauses[j - 1]!); j--) {
      const t = clauses[j]!;
      clauses[j] = clauses[j - 1]!;
      clauses[j - 1] = t;
    }
  }
  return clauses;
}

function isEscaping(value: string | undefined): value is Escaping {
  return value === 'allow-utf-8' || value === 'underscores' || value === 'dots' || value === 'values';
}

/**
 * The answer of a client_golang exporter offering these formats (text always) to this Accept
 * header (undefined: no header, which is text). A header that names no offered format gets
 * text 0.0.4.
 */
export function negotiate(header: string | undefined, offers: Offers): Answer {
  let escaping: Escaping = DEFAULT_ESCAPING;
  for (const ac of parseAcceptGo(header ?? '')) {
    const esc = ac.params.get('escaping');
    if (isEscaping(esc)) escaping = esc;
    const version = ac.params.get('version') ?? '';
    const mediaType = `${ac.type}/${ac.subtype}`;
    if (offers.protobuf && mediaType === PROTO_TYPE && ac.params.get('proto') === PROTO_PROTOCOL) {
      switch (ac.params.get('encoding')) {
        case 'delimited':
          return { kind: 'protobuf', version: '', escaping };
        case 'text':
          return { kind: 'proto-text', version: '', escaping };
        case 'compact-text':
          return { kind: 'proto-compact', version: '', escaping };
      }
    }
    if (mediaType === 'text/plain' && (version === '0.0.4' || version === '')) return { kind: 'text', version: '0.0.4', escaping };
    if (offers.openmetrics && mediaType === OPENMETRICS_TYPE && (version === '0.0.1' || version === '1.0.0' || version === '')) {
      return { kind: 'openmetrics', version: version === '1.0.0' ? '1.0.0' : '0.0.1', escaping };
    }
  }
  return { kind: 'text', version: '0.0.4', escaping };
}

const CONTENT_TYPE_BASE: Record<AnswerKind, (version: string) => string> = {
  protobuf: () => `${PROTO_TYPE}; proto=${PROTO_PROTOCOL}; encoding=delimited`,
  'proto-text': () => `${PROTO_TYPE}; proto=${PROTO_PROTOCOL}; encoding=text`,
  'proto-compact': () => `${PROTO_TYPE}; proto=${PROTO_PROTOCOL}; encoding=compact-text`,
  text: () => 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: (v) => `${OPENMETRICS_TYPE}; version=${v}; charset=utf-8`,
};

/**
 * The Content-Type promhttp writes for an answer (expfmt's Format strings plus the escaping term).
 * Without escaping: as exporters built before prometheus/common v0.60 write it.
 */
export function answerContentType(answer: Answer, withEscaping = true): string {
  const base = CONTENT_TYPE_BASE[answer.kind](answer.version);
  return withEscaping ? `${base}; escaping=${answer.escaping}` : base;
}

/** What an upstream's Content-Type says it answered; undefined for anything not a metrics format. */
export interface WireAnswer {
  kind: AnswerKind;
  version: string;
  /** Undefined when the Content-Type carries no escaping term (an exporter that ignores `escaping=`). */
  escaping: Escaping | undefined;
}

/**
 * Reads an upstream Content-Type the way expfmt.ResponseFormat and Prometheus's parser selection
 * read it: media type, version, encoding and escaping, ignoring case in names and spaces.
 */
export function parseWireContentType(value: string | undefined): WireAnswer | undefined {
  if (!value) return undefined;
  const [head, ...rest] = value.split(';');
  const mediaType = head!.trim().toLowerCase();
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq === -1) continue;
    params.set(
      p.slice(0, eq).trim().toLowerCase(),
      p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1'),
    );
  }
  const esc = params.get('escaping');
  const escaping = isEscaping(esc) ? esc : undefined;
  const version = params.get('version') ?? '';
  if (mediaType === PROTO_TYPE) {
    if ((params.get('proto') ?? '').toLowerCase() !== PROTO_PROTOCOL.toLowerCase()) return undefined;
    const encoding = params.get('encoding');
    const kind = encoding === 'delimited' ? 'protobuf' : encoding === 'text' ? 'proto-text' : encoding === 'compact-text' ? 'proto-compact' : undefined;
    return kind && { kind, version: '', escaping };
  }
  if (mediaType === 'text/plain') return version === '' || version === '0.0.4' ? { kind: 'text', version: '0.0.4', escaping } : undefined;
  if (mediaType === OPENMETRICS_TYPE) return { kind: 'openmetrics', version: version === '' ? '0.0.1' : version, escaping };
  return undefined;
}
