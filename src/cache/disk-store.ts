/**
 * The disk level (SPEC 2.1): every stored record is also a file, so that a restart starts warm.
 *
 * Format: one file per entry, `<sha256 of the key>.rec`, holding the record's own encoding
 * (stored-record.ts: magic, version, JSON meta, raw body, CRC-32). Why files and not an
 * embedded database: an entry is written whole once per ttl and read whole once per start, so
 * there is nothing for a B-tree or a log to do, and a file per entry gets crash safety from the
 * kernel: the bytes go to a temporary name in the same directory, are flushed, and are renamed
 * over the old file, which POSIX makes atomic. A kill -9 or a full disk in the middle leaves the
 * old file or the new one, never a mix, and the stray temporary file is removed at the next
 * start. The CRC catches what rename cannot (a torn sector, a file damaged later), so a damaged
 * file is skipped, never served. No native module, nothing to migrate: a file of another
 * version is skipped with a warning, and the version is the second field read.
 *
 * The directory holds records only: no credentials, no upstream request headers (the stored
 * headers are the upstream's response headers, less hop-by-hop ones).
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { lutimes, open, readdir, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { scrapeKey } from './key.js';
import { selects, type EntrySelection, type LevelStatus, type Store } from './store.js';
import { decodeRecord, encodeRecord, isRecordStart, RecordError, servableUntil, type StoredRecord } from './stored-record.js';

const SUFFIX = '.rec';
const TEMP = '.tmp-';
const LOCK = 'scrapecache.lock';
/** Reads at once while loading: enough to keep a disk busy, few enough to bound memory in flight. */
const LOAD_CONCURRENCY = 16;
const HEARTBEAT_MS = 10_000;
/** Keys looked at, and files removed at once, between two turns of the event loop in a large deletion. */
const DELETE_SLICE = 500;
/** When the file system does not say its block size. */
const DEFAULT_BLOCK = 4096;

/** A write asked for and not yet renamed into place: an invalidation that selects it cancels it. */
interface PendingWrite {
  route: string;
  path: string;
  query: string;
  cancelled: boolean;
}

interface Indexed {
  file: string;
  /** What the file occupies: its length rounded up to whole blocks of the file system. */
  bytes: number;
  route: string;
  path: string;
  query: string;
  deadAt: number;
}

export interface DiskStoreOptions {
  dir: string;
  maxBytes: number;
  log: Logger;
  metrics?: Metrics;
  now?: () => number;
  /** Writes a new file whole and flushed; tests put a failing disk here. */
  writeDurably?: (path: string, bytes: Buffer) => Promise<void>;
}

async function writeDurably(path: string, bytes: Buffer): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(bytes);
    // On the platter before the rename: after a power cut the name points at whole bytes.
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

export class DiskStore implements Store {
  readonly name = 'disk';
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => number;
  /** What is on disk, in write order (the first is the first to go when the bound is reached). */
  private readonly index = new Map<string, Indexed>();
  /** Keys by route, path and query (the representations of one target): a one-key invalidation walks nothing. */
  private readonly byTarget = new Map<string, string | string[]>();
  private totalBytes = 0;
  /** The file system's block: max_bytes bounds what the directory occupies, not the sum of lengths (issue 21). */
  private readonly blockBytes: number;
  /** The last operation per key: a set and a delete of one key happen in the order they were asked. */
  private readonly queue = new Map<string, Promise<unknown>>();
  /**
   * Writes asked for and not yet in the index. A record enters the index only once its file is
   * renamed into place, so an invalidation looks here too: a write it selects is cancelled (its
   * temporary file is never renamed) and the delete it queues runs after it (issue 17 #1).
   */
  private readonly pending = new Map<string, Set<PendingWrite>>();
  /** The error code the last failed write gave; one warning per change, not one per write. */
  private failing: string | undefined;
  /** Since when the directory has been writable, or not (the status page). */
  private since: number;
  private lastError: { message: string; at: number } | undefined;
  private readonly lockBody: string;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly writeDurably: (path: string, bytes: Buffer) => Promise<void>;
  private closed = false;

  /**
   * Creates the directory and takes it. Throws an Error naming the directory when it cannot be
   * written (a start-up error, SPEC 2.1).
   */
  constructor(options: DiskStoreOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.log = options.log.child({ store: 'disk', dir: options.dir });
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
    this.writeDurably = options.writeDurably ?? writeDurably;
    this.lockBody = JSON.stringify({ pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') });
    const lock = join(this.dir, LOCK);
    try {
      mkdirSync(this.dir, { recursive: true });
      this.warnIfOpen();
      this.warnIfShared(lock);
      writeLock(lock, this.lockBody);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw new Error(`cache.disk.path ${this.dir}: ${LOCK} is a symbolic link; refusing to write through it (remove it)`);
      throw new Error(`cache.disk.path ${this.dir}: cannot write there (${code ?? (err as Error).message})`);
    }
    this.blockBytes = blockSizeOf(this.dir);
    this.metrics?.storeUp.set({ store: 'disk' }, 1);
    this.since = this.now();
    // The lock's mtime says the holder is alive; another process started on this directory warns.
    // File times are the operating system's: the heartbeat and its check read real time, not the clock.
    this.timers.push(setInterval(() => void lutimes(lock, new Date(), new Date()).catch(() => undefined), HEARTBEAT_MS).unref());
    this.timers.push(setInterval(() => this.sweep(), 30_000).unref());
  }

  /**
   * A directory another user owns, or one others may write to: whoever can write there can plant
   * entries that the next start serves (issue 17 #8). The proxy goes on, and says so once.
   */
  private warnIfOpen(): void {
    const stat = statSync(this.dir);
    const uid = process.getuid?.();
    const others = (stat.mode & 0o002) !== 0 ? 'every user' : (stat.mode & 0o020) !== 0 ? 'its group' : undefined;
    if (others !== undefined) {
      this.log.warn({ mode: (stat.mode & 0o7777).toString(8) }, `the cache directory is writable by ${others}: anyone who can write there can plant entries the proxy serves after a restart; make it the proxy user's alone (chmod 700)`);
    }
    if (uid !== undefined && stat.uid !== uid) {
      this.log.warn({ owner: stat.uid, uid }, "the cache directory belongs to another user: its owner can plant entries the proxy serves after a restart; make it the proxy user's own");
    }
  }

  /** Two processes on one directory: both go on (writes are atomic renames), but say so once. */
  private warnIfShared(lock: string): void {
    let other: { pid?: number; host?: string } | undefined;
    let mtimeMs = 0;
    try {
      const stat = lstatSync(lock);
      if (!stat.isFile()) return;
      other = JSON.parse(readFileSync(lock, 'utf8')) as { pid?: number; host?: string };
      mtimeMs = stat.mtimeMs;
    } catch {
      return;
    }
    const self = other.pid === process.pid && other.host === hostname();
    if (!self && Date.now() - mtimeMs < 3 * HEARTBEAT_MS && (other.host !== hostname() || isAlive(other.pid))) {
      this.log.warn(
        { otherPid: other.pid, otherHost: other.host },
        'another scrapecache process uses this cache.disk.path too; both go on (every write is atomic), but each counts max_bytes without the other\'s files and may remove them: give each process its own directory',
      );
    }
  }

  get(key: string): Promise<StoredRecord | undefined> | undefined {
    const at = this.index.get(key);
    if (!at) return undefined;
    if (this.now() >= at.deadAt) {
      void this.delete(key);
      return undefined;
    }
    return this.read(key, at.file).then((found) => {
      if (found instanceof Error) {
        this.op('get', errorKind(found));
        this.forget(key);
        void unlink(join(this.dir, at.file)).catch(() => undefined);
        this.log.warn({ file: at.file, err: found.message }, 'cache file unreadable; dropped');
        this.lastError = { message: `${at.file} unreadable, dropped: ${found.message}`, at: this.now() };
        return undefined;
      }
      this.op('get', 'ok');
      return found.record.key === key && this.now() < servableUntil(found.record) ? found.record : undefined;
    });
  }

  set(record: StoredRecord): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const bytes = encodeRecord(record);
    if (bytes.length > this.maxBytes) {
      this.op('set', 'too_large');
      return Promise.resolve(false);
    }
    const ticket: PendingWrite = { route: record.route, path: record.path, query: record.query, cancelled: false };
    let tickets = this.pending.get(record.key);
    if (!tickets) this.pending.set(record.key, (tickets = new Set()));
    tickets.add(ticket);
    return this.enqueue(record.key, () => this.write(record, bytes, ticket)).finally(() => {
      tickets.delete(ticket);
      if (tickets.size === 0 && this.pending.get(record.key) === tickets) this.pending.delete(record.key);
    });
  }

  delete(key: string): Promise<boolean> {
    const held = this.index.has(key);
    const file = fileOf(key);
    this.forget(key);
    return this.enqueue(key, async () => {
      // A write queued before this delete may have indexed the key again since.
      this.forget(key);
      try {
        await unlink(join(this.dir, file));
        this.op('delete', 'ok');
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') this.op('delete', errorKind(err as Error));
        return held;
      }
    });
  }

  /**
   * Removes the selected files: one target's through the index, a larger selection in slices
   * that let scrapes run between them (issue 21). Resolves once every file is gone.
   */
  async deleteSelected(selection: EntrySelection): Promise<number> {
    // Writes in flight, first and at once (before any await lets one finish): cancelled, and
    // their keys deleted after them (the per-key queue keeps the order).
    const inFlight: string[] = [];
    for (const [key, tickets] of this.pending) {
      let selected = false;
      for (const ticket of tickets) {
        if (!selects(selection, ticket)) continue;
        ticket.cancelled = true;
        selected = true;
      }
      if (selected && !this.index.has(key)) inFlight.push(key);
    }
    const cancelled = Promise.all(inFlight.map((key) => this.delete(key)));
    let keys: string[];
    if (selection.route !== undefined && selection.path !== undefined && selection.query !== undefined) {
      const slot = this.byTarget.get(targetOf(selection.route, selection.path, selection.query));
      keys = slot === undefined ? [] : Array.isArray(slot) ? [...slot] : [slot];
    } else {
      keys = [];
      let seen = 0;
      for (const [key, at] of this.index) {
        if (selects(selection, at)) keys.push(key);
        if (++seen % (DELETE_SLICE * 10) === 0) await yieldToScrapes();
      }
    }
    for (let i = 0; i < keys.length; i += DELETE_SLICE) {
      await Promise.all(keys.slice(i, i + DELETE_SLICE).map((key) => this.delete(key)));
    }
    await cancelled;
    return keys.length;
  }

  /** What the directory's records occupy, in whole blocks (for tests and the README's sizing). */
  get occupiedBytes(): number {
    return this.totalBytes;
  }

  /**
   * Every live record in the directory (start-up). Stray temporary files (a write cut off by a
   * crash) are removed; a file that does not decode, belongs to another version or is dead is
   * skipped with one warning, and removed unless it is of another version (a newer build may
   * still read it).
   */
  async *records(): AsyncIterable<StoredRecord> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      this.op('load', errorKind(err as Error));
      this.log.warn({ err: (err as Error).message }, 'cannot list the cache directory; starting cold');
      return;
    }
    const files = names.filter((n) => n.endsWith(SUFFIX));
    for (const stray of names.filter((n) => n.includes(TEMP))) {
      const pid = Number(stray.slice(stray.indexOf(TEMP) + TEMP.length).split('-')[0]);
      if (pid !== process.pid && isAlive(pid)) continue; // another live process is writing it
      await unlink(join(this.dir, stray)).catch(() => undefined);
    }
    for (let i = 0; i < files.length; i += LOAD_CONCURRENCY) {
      const batch = files.slice(i, i + LOAD_CONCURRENCY);
      const results = await Promise.all(batch.map(async (file) => [file, await this.read(undefined, file)] as const));
      for (const [file, result] of results) {
        if (result instanceof Error) {
          const found = result;
          this.op('load', errorKind(found));
          const reason = found instanceof RecordError ? found.reason : 'unreadable';
          this.log.warn({ file, reason, err: found.message }, 'cache file skipped');
          if (reason !== 'version' && reason !== 'foreign') await unlink(join(this.dir, file)).catch(() => undefined);
          continue;
        }
        const found = result.record;
        if (fileOf(found.key) !== file) {
          this.op('load', 'corrupt');
          this.log.warn({ file, reason: 'misnamed' }, 'cache file skipped');
          continue;
        }
        if (this.now() >= servableUntil(found)) {
          await unlink(join(this.dir, file)).catch(() => undefined);
          continue;
        }
        this.op('load', 'ok');
        this.remember(found, file, result.bytes);
        yield found;
      }
    }
    this.trim();
  }

  status(): LevelStatus {
    return {
      name: this.name,
      where: this.dir,
      up: this.failing === undefined,
      since: this.since,
      entries: this.index.size,
      bytes: this.totalBytes,
      maxBytes: this.maxBytes,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.allSettled([...this.queue.values()]);
    try {
      if (readFileSync(join(this.dir, LOCK), 'utf8') === this.lockBody) rmSync(join(this.dir, LOCK));
    } catch {
      // gone or not ours
    }
  }

  /** Runs operations on one key one after another, so that the last one asked is the one that stays. */
  private enqueue<T>(key: string, task: () => Promise<T>): Promise<T> {
    const run = (this.queue.get(key) ?? Promise.resolve()).then(task, task);
    this.queue.set(key, run);
    void run.finally(() => {
      if (this.queue.get(key) === run) this.queue.delete(key);
    });
    return run;
  }

  private async write(record: StoredRecord, bytes: Buffer, ticket: PendingWrite): Promise<boolean> {
    if (ticket.cancelled) return false;
    const file = fileOf(record.key);
    const temp = `${file}${TEMP}${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await this.writeDurably(join(this.dir, temp), bytes);
      // Invalidated while it was being written: the old body never takes the name.
      if (ticket.cancelled) {
        await unlink(join(this.dir, temp)).catch(() => undefined);
        return false;
      }
      await rename(join(this.dir, temp), join(this.dir, file));
    } catch (err) {
      await unlink(join(this.dir, temp)).catch(() => undefined);
      this.writeFailed(err as NodeJS.ErrnoException);
      return false;
    }
    this.remember(record, file, bytes.length);
    this.trim();
    this.op('set', 'ok');
    if (this.failing !== undefined) {
      this.log.info({ previously: this.failing }, 'cache directory writable again');
      this.failing = undefined;
      this.since = this.now();
      this.metrics?.storeUp.set({ store: 'disk' }, 1);
    }
    return true;
  }

  private writeFailed(err: NodeJS.ErrnoException): void {
    const code = err.code ?? 'EIO';
    this.op('set', errorKind(err));
    const why = code === 'ENOSPC' ? 'the disk is full' : code === 'EROFS' ? 'the file system is read-only' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : err.message;
    this.lastError = { message: `cannot write (${why})`, at: this.now() };
    if (this.failing === code) return;
    if (this.failing === undefined) this.since = this.now();
    this.failing = code;
    this.metrics?.storeUp.set({ store: 'disk' }, 0);
    this.log.warn({ code }, `cannot write the cache directory (${why}); entries are kept in memory only until it can be written again`);
  }

  /**
   * The record in a file, or the error that kept it from being one. Only a regular file, not
   * through a link, no larger than max_bytes (no record is) and starting like a record is read
   * whole (issue 17 #7): a FIFO, a device or a huge foreign file named `*.rec` costs an open,
   * an fstat and a few bytes, never a hung start or gigabytes of memory.
   */
  private async read(key: string | undefined, file: string): Promise<{ record: StoredRecord; bytes: number } | Error> {
    let handle;
    try {
      // O_NONBLOCK: opening a FIFO must not wait for a writer.
      handle = await open(join(this.dir, file), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const stat = await handle.stat();
      if (!stat.isFile()) return new RecordError('foreign', 'not a regular file');
      if (stat.size > this.maxBytes) return new RecordError('foreign', `${stat.size} bytes, more than cache.disk.max_bytes`);
      const bytes = Buffer.allocUnsafe(stat.size);
      const head = await handle.read(bytes, 0, Math.min(6, stat.size), 0);
      if (!isRecordStart(bytes.subarray(0, head.bytesRead))) return new RecordError('foreign', 'not a scrapecache record');
      let at = head.bytesRead;
      while (at < stat.size) {
        const { bytesRead } = await handle.read(bytes, at, stat.size - at, at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
      return { record: decodeRecord(bytes.subarray(0, at)), bytes: at };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (key !== undefined && code === 'ENOENT') this.forget(key);
      if (code === 'ELOOP') return new RecordError('foreign', 'a symbolic link');
      return err as Error;
    } finally {
      await handle?.close();
    }
  }

  private remember(record: StoredRecord, file: string, length: number): void {
    this.forget(record.key);
    const bytes = Math.max(1, Math.ceil(length / this.blockBytes)) * this.blockBytes;
    this.index.set(record.key, { file, bytes, route: record.route, path: record.path, query: record.query, deadAt: servableUntil(record) });
    const target = targetOf(record.route, record.path, record.query);
    const slot = this.byTarget.get(target);
    this.byTarget.set(target, slot === undefined ? record.key : Array.isArray(slot) ? [...slot, record.key] : [slot, record.key]);
    this.totalBytes += bytes;
  }

  private forget(key: string): void {
    const at = this.index.get(key);
    if (!at) return;
    this.index.delete(key);
    const target = targetOf(at.route, at.path, at.query);
    const slot = this.byTarget.get(target);
    if (Array.isArray(slot)) {
      const rest = slot.filter((k) => k !== key);
      this.byTarget.set(target, rest.length === 1 ? rest[0]! : rest);
    } else {
      this.byTarget.delete(target);
    }
    this.totalBytes -= at.bytes;
  }

  /** Removes the oldest writes until the directory is within max_bytes. */
  private trim(): void {
    for (const [key] of this.index) {
      if (this.totalBytes <= this.maxBytes) return;
      void this.delete(key);
    }
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, at] of this.index) if (now >= at.deadAt) void this.delete(key);
  }

  private op(operation: string, result: string): void {
    this.metrics?.storeOperations.inc({ store: 'disk', operation, result });
  }
}

/** Writes the lock file, never through a link planted in its place (O_NOFOLLOW: ELOOP). */
function writeLock(path: string, body: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, body);
  } finally {
    closeSync(fd);
  }
}


function targetOf(route: string, path: string, query: string): string {
  return scrapeKey(route, path, query);
}

/** The file system's block size at dir (statfs), which every file's length is rounded up to. */
function blockSizeOf(dir: string): number {
  try {
    const { bsize } = statfsSync(dir);
    return Number.isSafeInteger(bsize) && bsize > 0 ? bsize : DEFAULT_BLOCK;
  } catch {
    return DEFAULT_BLOCK;
  }
}

function yieldToScrapes(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function fileOf(key: string): string {
  return createHash('sha256').update(key).digest('hex') + SUFFIX;
}

function errorKind(err: Error): string {
  if (err instanceof RecordError) return err.reason;
  return ((err as NodeJS.ErrnoException).code ?? 'error').toLowerCase();
}

function isAlive(pid: number | undefined): boolean {
  if (!pid || !Number.isInteger(pid)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
