/** Issue 8 defect 11: messages between the cluster's processes are parsed, never cast. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrimaryLink } from '../src/cluster/primary-link.js';
import { encodeEvent, parseToPrimary, parseToWorker, type ToPrimary, type ToWorker } from '../src/cluster/messages.js';
import { planFor, SOURCE_ACCEPT, UpstreamProfiles, type ProfileNews } from '../src/cache/upstream-profile.js';
import { PROMETHEUS_ACCEPT } from '../src/cache/accept-headers.js';
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

test('a worker confirms an invalidation to its primary once its cache has applied it (the last slice dropped), not when it arrives', async () => {
  const sent: ToPrimary[] = [];
  const link = new PrimaryLink((m) => sent.push(m), () => true);
  let applied!: () => void;
  link.subscribe(() => new Promise<void>((r) => (applied = r)));
  const message = parseToWorker({ t: 'event', event: { type: 'invalidated', selection: { route: 'node' } }, confirm: 7 });
  link.receive(message as Exclude<typeof message, string> & { t: 'event' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [], 'not before the cache is done');
  applied();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [{ t: 'applied', id: 7 }]);
  // Events nobody waits for are not confirmed.
  link.receive(parseToWorker({ t: 'event', event: { type: 'invalidated', selection: {} } }) as Extract<ToWorker, { t: 'event' }>);
  applied();
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1);
});

test('profiles the primary learned: a follower plans with them and learns nothing itself; the primary tells each change once', () => {
  const route = { name: 'node', recordFingerprint: 'f1', format: undefined } as unknown as Route;
  const told: ProfileNews[] = [];
  const primary = new UpstreamProfiles({ learned: (news) => told.push(news) });
  const now = Date.now();
  const ask = `${SOURCE_ACCEPT},${PROMETHEUS_ACCEPT}`;
  // A protobuf probe answered with OpenMetrics: no protobuf, OpenMetrics yes, no escaping term.
  primary.learn(route, '/m', primary.get(route, '/m', now), ask, 'protobuf', 'application/openmetrics-text; version=1.0.0; charset=utf-8', now);
  primary.learn(route, '/m', primary.get(route, '/m', now), ask, 'protobuf', 'application/openmetrics-text; version=1.0.0; charset=utf-8', now);
  assert.equal(told.length, 1, 'the same answer again teaches nothing new');
  const wire = parseToWorker({ t: 'profiles', list: primary.known(), whole: true });
  assert.notEqual(typeof wire, 'string', String(wire));
  assert.equal(typeof parseToWorker({ t: 'profiles', list: [{ ...told[0], protobuf: 3 }] }), 'string');

  const follower = new UpstreamProfiles({ follows: true });
  const own = follower.get(route, '/m', now);
  follower.learn(route, '/m', own, PROMETHEUS_ACCEPT, 'text;0.0.4', 'text/plain; version=0.0.4; charset=utf-8', now);
  assert.equal(own.state, 0, 'a follower learns nothing from answers');
  for (const news of (wire as Extract<ToWorker, { t: 'profiles' }>).list) follower.assign(news);
  const followed = follower.get(route, '/m', now);
  assert.equal(followed.describe(), primary.get(route, '/m', now).describe());
  assert.deepEqual(planFor(PROMETHEUS_ACCEPT, followed, undefined), planFor(PROMETHEUS_ACCEPT, primary.get(route, '/m', now), undefined));
  assert.deepEqual(planFor(PROMETHEUS_ACCEPT, followed, undefined), { via: 'answer', representation: 'openmetrics;1.0.0', fillAccept: PROMETHEUS_ACCEPT });
});
