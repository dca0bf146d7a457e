/**
 * `${VAR}` and `${VAR:-default}` expansion over the raw config text, before YAML parsing
 * (SPEC 2). `$$` is a literal `$`. Comments are left alone: a commented-out line that names an
 * unset variable is not an error. The result keeps a map from expanded offsets back to the
 * original text, so that YAML and schema errors still point at the line and column the
 * operator wrote.
 */
import { Lexer } from 'yaml';

export interface Expansion {
  text: string;
  /** Original offset of an offset in the expanded text. Inside a substituted value: the `${`. */
  originalOffset(expandedOffset: number): number;
  errors: Array<{ offset: number; message: string }>;
}

interface Segment {
  expandedStart: number;
  originalStart: number;
  /** true: copied verbatim, offsets map one to one; false: a substitution. */
  verbatim: boolean;
}

const TOKEN_RE = /\$\$|\$\{([^}]*)\}/g;
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** [start, end) offsets of the YAML comments in a text, from yaml's lexer. */
function commentRanges(source: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let offset = 0;
  for (const token of new Lexer().lex(source)) {
    // The lexer interleaves one-character control markers that are not part of the source.
    if (token.length === 1 && token.charCodeAt(0) < 0x20 && token !== '\n' && token !== '\t' && token !== '\r') continue;
    if (token[0] === '#') ranges.push([offset, offset + token.length]);
    offset += token.length;
  }
  return ranges;
}

export function expandEnv(source: string, env: NodeJS.ProcessEnv): Expansion {
  const comments = source.includes('#') ? commentRanges(source) : [];
  const inComment = (at: number) => comments.some(([start, end]) => at >= start && at < end);
  const segments: Segment[] = [];
  const errors: Expansion['errors'] = [];
  let out = '';
  let last = 0;
  for (const match of source.matchAll(TOKEN_RE)) {
    const at = match.index;
    if (inComment(at)) continue;
    segments.push({ expandedStart: out.length, originalStart: last, verbatim: true });
    out += source.slice(last, at);
    let value: string;
    if (match[0] === '$$') {
      value = '$';
    } else {
      const inner = match[1]!;
      const sep = inner.indexOf(':-');
      const name = sep === -1 ? inner : inner.slice(0, sep);
      const fallback = sep === -1 ? undefined : inner.slice(sep + 2);
      if (!NAME_RE.test(name)) {
        errors.push({ offset: at, message: `invalid environment variable reference "${match[0]}"` });
        value = '';
      } else {
        const fromEnv = env[name];
        if (fromEnv !== undefined && (fromEnv !== '' || fallback === undefined)) {
          value = fromEnv;
        } else if (fallback !== undefined) {
          value = fallback;
        } else {
          errors.push({
            offset: at,
            message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)`,
          });
          value = '';
        }
      }
    }
    segments.push({ expandedStart: out.length, originalStart: at, verbatim: false });
    out += value;
    last = at + match[0].length;
  }
  segments.push({ expandedStart: out.length, originalStart: last, verbatim: true });
  out += source.slice(last);

  return {
    text: out,
    errors,
    originalOffset(expandedOffset: number): number {
      // Last segment starting at or before the offset; segments are few, a scan is fine.
      let seg = segments[0]!;
      for (const s of segments) {
        if (s.expandedStart > expandedOffset) break;
        // An empty substitution shares its start with the next verbatim segment: prefer verbatim.
        if (s.expandedStart === expandedOffset && !s.verbatim && seg.expandedStart === expandedOffset) continue;
        seg = s;
      }
      return seg.verbatim ? seg.originalStart + (expandedOffset - seg.expandedStart) : seg.originalStart;
    },
  };
}
