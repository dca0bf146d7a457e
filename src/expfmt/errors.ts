/** A body this module cannot decode, or a family expfmt itself would refuse to encode. */
export class ExpfmtError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExpfmtError';
  }
}
