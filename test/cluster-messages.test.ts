/** Issue 8 defect 11: messages between the cluster's processes are parsed, never cast. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrimaryLink } from '../src/cluster/primary-link.js';
import { encodeEvent, parseToPrimary, parseToWorker, type ToPrimary } from '../src/cluster/messages.js';
import { encodeRecord, RecordError } from '../src/cache/stored-record.js';
import type { CacheEvent } from '../src/cache/event-bus.js';
import type { Route } from '../src/config/types.js';
import { makeRecord, plain } from './helpers/store-conformance.js';

const route = { name: 'node', timeoutMs: 1000 } as Route;

test('malformed messages are refused with the reason, whichever way they go', () => {
  for (const bad of [null, 'fill', { t: 'fill', id: 1 }, { t: 'fill', id: -1, target: {} }, { t: 'ready' }, { t: 'nope' }]) {
    assert.equal(typeof parseToPrimary(bad), 'string', JSON.stringify(bad));
  }
  for (const bad of [
    { t: 'event', event: { type: 'stored', key: 'k', record: 'not bytes' } },
    { t: 'event', event: { type: 'invalidated', selection: { route: 1 } } },
    { t: 'filled', id: 1 },
    { t: 'failed', id: 1, code: 'MADE_UP', message: 'x' },
    { t: 'ask', id: 1, what: 'secrets' },
  ]) {
    assert.equal(typeof parseToWorker(bad), 'string', JSON.stringify(bad));
  }
  assert.deepEqual(parseToPrimary({ t: 'fill', id: 1, target: { route: 'node', path: '/m', query: '', representation: 'text' } }), {
    t: 'fill',
    id: 1,
    target: { route: 'node', path: '/m', query: '', representation: 'text' },
  });
});

test('a fill answered by the stored event carries its body once, and the answer resolves with that record', async () => {
  const sent: ToPrimary[] = [];
  const link = new PrimaryLink((m) => sent.push(m), () => true);
  const heard: CacheEvent[] = [];
  link.subscribe((e) => heard.push(e));
  const record = makeRecord();
  const pending = link.fill({ route, path: record.path, query: '', representation: record.representation, accept: record.accept }, record.key);
  const ask = sent[0] as Extract<ToPrimary, { t: 'fill' }>;
  const event = parseToWorker({ t: 'event', event: encodeEvent({ type: 'stored', key: record.key, record }) });
  assert.notEqual(typeof event, 'string');
  link.receive(event as Exclude<typeof event, string> & { t: 'event' });
  const answer = parseToWorker({ t: 'filled', id: ask.id, stored: true });
  link.receive(answer as Exclude<typeof answer, string> & { t: 'filled' });
  const outcome = await pending;
  assert.deepEqual(plain(outcome.record), plain(record));
  assert.equal(outcome.storable, true);
  assert.equal(heard.length, 1);
});

test('a stored event whose record bytes are damaged is refused, not adopted', () => {
  const link = new PrimaryLink(() => undefined, () => true);
  const heard: CacheEvent[] = [];
  link.subscribe((e) => heard.push(e));
  const record = makeRecord();
  const bytes = encodeRecord(record);
  bytes[bytes.length - 10]! ^= 1;
  const message = parseToWorker({ t: 'event', event: { type: 'stored', key: record.key, record: bytes } });
  assert.throws(() => link.receive(message as Exclude<typeof message, string> & { t: 'event' }), RecordError);
  assert.equal(heard.length, 0);
});

test('a stored event for one key carrying the record of another is refused', () => {
  const link = new PrimaryLink(() => undefined, () => true);
  const message = parseToWorker({ t: 'event', event: { type: 'stored', key: 'other', record: encodeRecord(makeRecord()) } });
  assert.throws(() => link.receive(message as Exclude<typeof message, string> & { t: 'event' }), /carries a record for/);
});
