/**
 * A store that keeps records as encoded bytes in a Map, as a shared level (Redis) keeps them:
 * every get decodes a copy. For tests of caches that share one level.
 */
import { selects, type EntrySelection, type Store } from '../../src/cache/store.js';
import { decodeRecord, encodeRecord, type StoredRecord } from '../../src/cache/stored-record.js';

export class BytesStore implements Store {
  readonly name = 'bytes';
  readonly values = new Map<string, Buffer>();

  constructor(private readonly now: () => number = Date.now) {}

  async get(key: string): Promise<StoredRecord | undefined> {
    const bytes = this.values.get(key);
    if (!bytes) return undefined;
    const record = decodeRecord(Buffer.from(bytes));
    return this.now() < record.deadAt ? record : undefined;
  }

  async set(record: StoredRecord): Promise<boolean> {
    this.values.set(record.key, encodeRecord(record));
    return true;
  }

  async delete(key: string): Promise<boolean> {
    return this.values.delete(key);
  }

  async deleteSelected(selection: EntrySelection): Promise<number> {
    let n = 0;
    for (const [key, bytes] of this.values) {
      if (selects(selection, decodeRecord(bytes))) {
        this.values.delete(key);
        n++;
      }
    }
    return n;
  }

  close(): void {}
}
