/**
 * Prometheus duration and size syntax, as in prometheus/common/model.ParseDuration:
 * units in descending order, each at most once, e.g. `1h30m`, `500ms`, `7d`; `0` alone is zero.
 */

const DURATION_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['y', 365 * 24 * 3600 * 1000],
  ['w', 7 * 24 * 3600 * 1000],
  ['d', 24 * 3600 * 1000],
  ['h', 3600 * 1000],
  ['m', 60 * 1000],
  ['s', 1000],
  ['ms', 1],
];

const DURATION_RE = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

/** Milliseconds for a Prometheus duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (text === '') return undefined;
  const match = DURATION_RE.exec(text);
  if (!match) return undefined;
  let ms = 0;
  for (let i = 0; i < DURATION_UNITS.length; i++) {
    const digits = match[i + 1];
    if (digits !== undefined) ms += Number(digits) * DURATION_UNITS[i]![1];
  }
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** The shortest Prometheus spelling of a duration, for logs and /cache answers. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of DURATION_UNITS) {
    if (unit === 'y' || unit === 'w') continue;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/;

/** Bytes for `64MiB`, `10KB`, `512B` or a bare integer, or undefined when it is not a size. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = SIZE_RE.exec(value.trim());
  if (!match) return undefined;
  const unit = match[2] ?? 'B';
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[unit]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
