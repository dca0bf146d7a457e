/**
 * `basic_auth_users` (SPEC 3.6) as exporter-toolkit checks it: bcrypt, an unknown user checked
 * against a dummy hash of the same cost so that timing does not tell which users exist, and a
 * cache of recent successes so that a Prometheus scraping every second pays bcrypt once, not
 * every scrape. bcrypt runs on libuv's thread pool (@node-rs/bcrypt), never on the event loop,
 * and at most `concurrency` at once: a flood of wrong passwords waits its turn (or is told
 * 429 when too many wait) while hits keep flowing.
 *
 * A flood must not lock out the right password (issue 17 #5): a remembered success is renewed
 * by every use (a Prometheus scraping through it never needs bcrypt again) and looked up before
 * any queue; an Authorization header that failed is refused again from memory, without bcrypt;
 * checks for names that are users go before checks for unknown names, and when the queue is
 * full an unknown name's check is shed to make room for a user's. Each listener has its own
 * BasicAuth (see ListenerSecurity), so a flood on one does not spend the other's budget.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { LRUCache } from 'lru-cache';

interface Bcrypt {
  verify(password: string | Buffer, hash: string | Buffer): Promise<boolean>;
}

let library: Promise<Bcrypt> | undefined;

/** The bcrypt binding, loaded on first use: a config without basic_auth_users never loads it. */
export function loadBcrypt(): Promise<Bcrypt> {
  library ??= import('@node-rs/bcrypt').then(
    (m) => (m as unknown as { default?: Bcrypt }).default ?? (m as unknown as Bcrypt),
    (err: unknown) => {
      library = undefined;
      throw new Error(`basic_auth_users needs the @node-rs/bcrypt package: ${(err as Error).message}`);
    },
  );
  return library;
}

export type AuthResult = 'ok' | 'denied' | 'busy' | 'too_large';

export interface BasicAuthOptions {
  /** bcrypt computations at once; default half the cores, at least 1. */
  concurrency?: number;
  /** Checks waiting for a slot before more are refused with 429. */
  maxWaiting?: number;
  /** How long a success is remembered. */
  cacheTtlMs?: number;
  cacheSize?: number;
  /** The clock the caches of successes and failures count time on (tests). */
  now?: () => number;
}

interface Waiter {
  resolve: (slot: boolean) => void;
  /** A check for a configured user name: goes first, and is never shed for an unknown one. */
  user: boolean;
}

/** Longest Authorization header considered: user names and passwords this long are not credentials. */
const MAX_HEADER = 1024;
/** bcrypt reads at most 72 bytes; Go's bcrypt refuses longer passwords rather than truncate them. */
const MAX_PASSWORD_BYTES = 72;

export class BasicAuth {
  private readonly users: ReadonlyMap<string, string>;
  /** The configured hashes: an unknown name is checked against one of them (see dummyFor). */
  private readonly hashes: readonly string[];
  /** Keys which hash an unknown name is checked against: fixed per process, unknown outside it. */
  private readonly dummyKey = randomBytes(16);
  /**
   * Authorization headers, exactly as sent, that passed bcrypt in the last `cacheTtlMs`: a hit
   * costs one Map lookup, no decoding or hashing. Like exporter-toolkit's cache, this keeps what
   * the client sent (base64 of user:password) in memory for a while; a leaked heap dump of a
   * process that receives passwords over the wire gives them away in any case.
   */
  private readonly successes: LRUCache<string, true>;
  /** Authorization headers that failed bcrypt lately: refused again without it. */
  private readonly failures: LRUCache<string, true>;
  private readonly concurrency: number;
  private readonly maxWaiting: number;
  private running = 0;
  /** Checks waiting for a slot: users' first, in arrival order, then unknown names'. */
  private readonly waiting: Waiter[] = [];

  constructor(
    private readonly bcrypt: Bcrypt,
    users: ReadonlyMap<string, string>,
    options: BasicAuthOptions = {},
  ) {
    this.users = users;
    this.hashes = [...users.values()];
    this.concurrency = options.concurrency ?? Math.max(1, Math.floor(availableParallelism() / 2));
    this.maxWaiting = options.maxWaiting ?? 64;
    // An injected clock is read on every look-up (lru-cache otherwise keeps one reading for a millisecond).
    const perf = options.now ? { now: options.now } : undefined;
    const ttl = options.cacheTtlMs ?? 60_000;
    this.successes = new LRUCache({ max: options.cacheSize ?? 256, ttl, ttlAutopurge: false, updateAgeOnHas: true, ...(perf ? { perf, ttlResolution: 0 } : {}) });
    this.failures = new LRUCache({ max: 4096, ttl, ttlAutopurge: false, ...(perf ? { perf, ttlResolution: 0 } : {}) });
  }

  /**
   * Checks an Authorization header. Answers at once from the cache of successes, or from what
   * needs no bcrypt (no header, not Basic, too long); else a promise of bcrypt's answer.
   */
  check(header: string | undefined): AuthResult | Promise<AuthResult> {
    if (header === undefined) return 'denied';
    if (header.length > MAX_HEADER) return 'too_large';
    // RFC 9110 11.1: the scheme name is case-insensitive.
    if (this.successes.has(header)) return 'ok';
    if (this.failures.has(header)) return 'denied';
    if (header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') return 'denied';
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) return 'denied';
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const hash = this.users.get(user);
    if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return 'denied';
    return this.verify(password, hash ?? this.dummyFor(user), hash !== undefined).then(
      (ok): AuthResult => {
        if (ok === 'busy') return 'busy';
        if (!ok || hash === undefined) {
          this.failures.set(header, true);
          return 'denied';
        }
        this.successes.set(header, true);
        return 'ok';
      },
      () => 'denied',
    );
  }

  private async verify(password: string, hash: string, user: boolean): Promise<boolean | 'busy'> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxWaiting && !this.shedFor(user)) return 'busy';
      // A finishing check hands its slot straight to the first waiter (running stays the same).
      const slot = await new Promise<boolean>((resolve) => this.enqueue({ resolve, user }));
      if (!slot) return 'busy';
    } else {
      this.running++;
    }
    try {
      return await this.bcrypt.verify(password, hash);
    } finally {
      const next = this.waiting.shift();
      if (next) next.resolve(true);
      else this.running--;
    }
  }

  /**
   * The hash an unknown name is checked against (and always refused): one of the configured
   * users' own, picked by a keyed hash of the name (issue 17 #9). With users of several bcrypt
   * costs, an unknown name then takes as long as some user does, the same every time, so its
   * timing matches a user's of that cost; what remains is that the costs themselves show (the
   * README advises one cost for every user).
   */
  private dummyFor(user: string): string {
    if (this.hashes.length === 1) return this.hashes[0]!;
    const pick = createHmac('sha256', this.dummyKey).update(user).digest().readUInt32BE(0) % this.hashes.length;
    return this.hashes[pick]!;
  }

  /** Users' checks before unknown names', each in arrival order. */
  private enqueue(waiter: Waiter): void {
    if (!waiter.user) {
      this.waiting.push(waiter);
      return;
    }
    const at = this.waiting.findIndex((w) => !w.user);
    if (at === -1) this.waiting.push(waiter);
    else this.waiting.splice(at, 0, waiter);
  }

  /** The queue is full: a user's check takes the place of the last unknown name's, which is told 429. */
  private shedFor(user: boolean): boolean {
    if (!user) return false;
    const last = this.waiting.at(-1);
    if (!last || last.user) return false;
    this.waiting.pop();
    last.resolve(false);
    return true;
  }
}


