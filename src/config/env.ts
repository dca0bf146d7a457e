/**
 * `${VAR}` and `${VAR:-default}` expansion over the raw config text, before YAML parsing
 * (SPEC 2). `$$` is a literal `$`. The result keeps a map from expanded offsets back to the
 * original text, so that YAML and schema errors still point at the line and column the
 * operator wrote.
 */

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

export function expandEnv(source: string, env: NodeJS.ProcessEnv): Expansion {
  const segments: Segment[] = [];
  const errors: Expansion['errors'] = [];
  let out = '';
  let last = 0;
  for (const match of source.matchAll(TOKEN_RE)) {
    const at = match.index;
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
