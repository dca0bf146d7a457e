/** Name and string spelling shared by expfmt's text and OpenMetrics encoders. */
import { isLegacyName } from './escape.js';

/** HELP in the text format: backslash and newline escaped, quotes left alone. */
export function escapeHelp(s: string): string {
  if (!/[\\\n]/.test(s)) return s;
  return s.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

/** Label values, quoted names, and HELP/UNIT in OpenMetrics: backslash, newline and quote escaped. */
export function escapeQuoted(s: string): string {
  if (!/[\\\n"]/.test(s)) return s;
  return s.replace(/[\\\n"]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : '\\"'));
}

/** expfmt's writeName: a legacy name as it is, any other one quoted. */
export function spellName(name: string): string {
  return isLegacyName(name) ? name : `"${escapeQuoted(name)}"`;
}
