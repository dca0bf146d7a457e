/**
 * `rate_limit` (SPEC 3.6): a token bucket like Go's rate.Limiter, as exporter-toolkit uses it:
 * one token every `interval`, at most `burst` saved up. Per process: with `workers: N` each
 * worker has its own bucket.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Takes a token if there is one. */
  allow(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
