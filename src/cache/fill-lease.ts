/**
 * Single flight as an explicit part (issue 9): whoever holds a key's lease fetches it; the
 * others wait for the result on the event bus (see event-bus.ts). The in-process lease is the
 * one a single process (or a cluster primary) needs; a shared one (Redis: SET NX PX, and a
 * compare-and-delete script) makes the fetch single across replicas (SPEC 2.2).
 */
import { randomUUID } from 'node:crypto';
import type { MaybePromise } from './store.js';

export interface FillLease {
  /**
   * Takes the key's lease for ttlMs, resolving to a token that proves it, or undefined while
   * someone else holds it. The lease lapses by itself after ttlMs, so a holder that dies never
   * blocks a key for longer.
   */
  acquire(key: string, ttlMs: number): MaybePromise<string | undefined>;
  /** Compare-and-delete: frees the lease only if `token` still holds it. Resolves to whether it did. */
  release(key: string, token: string): MaybePromise<boolean>;
}

/** The lease within one process. */
export class LocalFillLease implements FillLease {
  private readonly held = new Map<string, { token: string; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  acquire(key: string, ttlMs: number): string | undefined {
    const now = this.now();
    const current = this.held.get(key);
    if (current && current.until > now) return undefined;
    const token = randomUUID();
    this.held.set(key, { token, until: now + ttlMs });
    return token;
  }

  release(key: string, token: string): boolean {
    const current = this.held.get(key);
    if (current?.token !== token) return false;
    this.held.delete(key);
    return true;
  }
}
