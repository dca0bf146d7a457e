/**
 * Go's strconv.FormatFloat(f, 'g', -1, 64) for finite values: the shortest digits that read back
 * as f (JavaScript's Number#toExponential() without an argument gives the same digits), written
 * in %e form when the decimal exponent is below -4 or at least 6 (Go's "shortest" rule), else %f.
 * The exponent has at least two digits: 1e+06, 1.5e-05, 1e+100.
 */
export function formatGoFloat(f: number): string {
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const e = Math.abs(f).toExponential();
  const at = e.indexOf('e');
  const digits = e[1] === '.' ? e[0]! + e.slice(2, at) : e.slice(0, at);
  const exp = Number(e.slice(at + 1));
  const sign = f < 0 ? '-' : '';
  if (exp < -4 || exp >= 6) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const abs = Math.abs(exp);
    return `${sign}${mantissa}e${exp < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`;
  }
  const point = exp + 1; // digits before the decimal point
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (digits.length <= point) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** expfmt's writeFloat (text format): 'g' -1, with NaN, +Inf, -Inf spelled out; -0 is "0". */
export function formatTextFloat(f: number): string {
  if (f === 0) return '0';
  if (f === 1) return '1';
  if (f === -1) return '-1';
  if (Number.isNaN(f)) return 'NaN';
  if (f === Infinity) return '+Inf';
  if (f === -Infinity) return '-Inf';
  return formatGoFloat(f);
}

/** expfmt's writeOpenMetricsFloat: as the text format, with ".0" where there is no "." nor "e". */
export function formatOpenMetricsFloat(f: number): string {
  if (f === 0) return '0.0';
  if (f === 1) return '1.0';
  if (f === -1) return '-1.0';
  if (Number.isNaN(f)) return 'NaN';
  if (f === Infinity) return '+Inf';
  if (f === -Infinity) return '-Inf';
  const s = formatGoFloat(f);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}
