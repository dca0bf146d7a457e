// The pages' rendering, without servers: escaping of everything that comes from a request, a
// config or an upstream; the status model's numbers; the landing page's link to the status page.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { Route } from '../src/config/types.js';
import { LastFetchRecorder, upstreamErrorText } from '../src/last-fetch.js';
import { escapeHtml, formatAge, html } from '../src/pages/html.js';
import { LANDING_CSP, renderLandingPage, statusUrlFor } from '../src/pages/landing-page.js';
import { ResultNotes } from '../src/pages/result-notes.js';
import { buildStatusModel, parseEntryView, type EntryRow, type EntryTable, type MetricSample, type StatusInputs } from '../src/pages/status-model.js';
import { readableQuery, renderStatusPage, renderTokenPage } from '../src/pages/status-page.js';
import { STYLESHEET } from '../src/pages/style.js';

function route(name: string, extra: Partial<Route> = {}): Route {
  return {
    name,
    path: `/${name}/metrics`,
    upstream: new URL(`http://127.0.0.1:9100/${name}`),
    ttlMs: 30_000,
    timeoutMs: 10_000,
    maxBodyBytes: 1 << 20,
    staleWhileRevalidateMs: 0,
    staleIfErrorMs: 0,
    overrides: [],
    prefetch: false,
    cache: true,
    queryKeys: null,
    headers: {},
    fingerprint: name,
    recordFingerprint: name,
    ...extra,
  };
}

function entry(extra: Partial<EntryRow> = {}): EntryRow {
  return { route: 'node', path: '/node/metrics', query: '', representation: 'openmetrics', bytes: 2048, age_seconds: 5, ttl_seconds: 25, fresh: true, hits: 3, ...extra };
}

const samples: MetricSample[] = [
  {
    name: 'scrapecache_requests_total',
    values: [
      { value: 8, labels: { route: 'node', cache: 'hit' } },
      { value: 1, labels: { route: 'node', cache: 'stale' } },
      { value: 1, labels: { route: 'node', cache: 'miss' } },
      // A second process's counts for the same series (an aggregated cluster answer is summed too).
      { value: 2, labels: { route: 'node', cache: 'hit' } },
    ],
  },
  {
    name: 'scrapecache_upstream_requests_total',
    values: [
      { value: 2, labels: { route: 'node', code: '200' } },
      { value: 1, labels: { route: 'node', code: 'unreachable' } },
    ],
  },
  { name: 'scrapecache_config_last_reload_successful', values: [{ value: 1, labels: {} }] },
  { name: 'scrapecache_config_last_reload_success_timestamp_seconds', values: [{ value: 1_700_000_000, labels: {} }] },
];

/** One page holding these rows, as the admin listener hands it over. */
function table(rows: EntryRow[]): EntryTable {
  return { rows, total: rows.length, matched: rows.length, page: 1, pages: 1, pageSize: 100 };
}

function inputs(extra: Partial<StatusInputs> = {}): StatusInputs {
  return {
    version: '1.2.3',
    configFile: '/etc/scrapecache/proxy.yaml',
    now: 1_700_000_100_000,
    routes: [route('node'), route('probe', { path: '/probe' })],
    samples,
    entries: table([entry()]),
    usage: () => ({ entries: 0, bytes: 0 }),
    lastFetch: () => undefined,
    reloadError: undefined,
    view: parseEntryView(new URLSearchParams()),
    ...extra,
  };
}

test('html templates escape every interpolated value and nest templates unescaped', () => {
  const evil = `<script>alert("x")</script>&'`;
  assert.equal(escapeHtml(evil), '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
  assert.equal(html`<p title="${evil}">${evil}</p>`.text, `<p title="${escapeHtml(evil)}">${escapeHtml(evil)}</p>`);
  assert.equal(html`<ul>${['<a>', html`<li>${'<b>'}</li>`]}</ul>`.text, '<ul>&lt;a&gt;<li>&lt;b&gt;</li></ul>');
  assert.equal(html`${undefined}${null}${false}${0}`.text, '0');
});

test('the status page shows a query, an Accept header and an upstream error with markup as text', () => {
  const fetches = new LastFetchRecorder(() => 1_700_000_090_000);
  fetches.record('node', '500', 0.25, '<img src=x onerror=alert(1)> collector failed');
  const model = buildStatusModel(
    inputs({
      entries: table([entry({ route: 'probe', path: '/probe', query: 'target=%3Cscript%3Ealert(1)%3C%2Fscript%3E', representation: 'accept:<b>bold</b>' })]),
      lastFetch: (name) => fetches.get(name),
      view: parseEntryView(new URLSearchParams({ filter: '"><script>alert(2)</script>' })),
    }),
  );
  const page = renderStatusPage(model, { tokenRequired: false });
  assert.ok(!page.includes('<script>alert'), 'no markup from a request reaches the page');
  assert.ok(!page.includes('<img src=x'), 'no markup from an upstream reaches the page');
  assert.ok(!page.includes('<b>bold'), 'no markup from an Accept header reaches the page');
  assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt; collector failed'), 'the upstream error shows as text');
  assert.ok(page.includes('value="&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"'), 'the filter shows as text in its field');
  // The only script is the page's own file.
  assert.deepEqual(page.match(/<script[^>]*>/g), ['<script type="module" src="/static/status-page.js">']);
});

test('the status page lists each route with its upstream, windows, last fetch, outcomes, hit ratio and fetches saved', () => {
  const fetches = new LastFetchRecorder(() => 1_700_000_088_000);
  fetches.record('node', 'unreachable', 0.004, 'route node: upstream unreachable');
  const page = renderStatusPage(
    buildStatusModel(inputs({ routes: [route('node', { staleIfErrorMs: 86_400_000, prefetch: true })], lastFetch: (n) => fetches.get(n) })),
    { tokenRequired: false },
  );
  assert.match(page, /<h3 id="route-node">node<\/h3>/);
  assert.match(page, /http:\/\/127\.0\.0\.1:9100\/node/);
  assert.match(page, /ttl 30s, stale_if_error 1d, prefetch/);
  assert.match(page, /<span class="badge bad">unreachable<\/span>\s*in 4 ms,\s*<time[^>]*>12 s ago<\/time>\s*<p class="error-text">route node: upstream unreachable<\/p>/);
  assert.match(page, /data-live="route\/node\/total" class="big">12</, 'scrapes summed over processes');
  assert.match(page, /data-live="route\/node\/ratio" class="big">91\.7 %</, '(10 hits + 1 stale) / 12');
  assert.match(page, /data-live="route\/node\/fetches" class="big">3</);
  assert.match(page, /data-live="route\/node\/saved" class="big">9</, '12 scrapes, 3 upstream fetches');
  assert.match(page, /Config <code>\/etc\/scrapecache\/proxy\.yaml<\/code>: <span class="good">loaded<\/span>/);
});

test('the status page says when the last reload failed, with its error as text', () => {
  const failed = samples.map((m) => (m.name === 'scrapecache_config_last_reload_successful' ? { ...m, values: [{ value: 0, labels: {} }] } : m));
  const page = renderStatusPage(buildStatusModel(inputs({ samples: failed, reloadError: 'proxy.yaml:3:7: routes[0].ttl: <bad>' })), { tokenRequired: false });
  assert.match(page, /last reload failed<\/span>, the running config stays/);
  assert.match(page, /<p class="error-text">proxy\.yaml:3:7: routes\[0\]\.ttl: &lt;bad&gt;<\/p>/);
});

test('every button is a form posting to the admin API: per route and per entry, invalidate, soft invalidate and refresh', () => {
  const page = renderStatusPage(buildStatusModel(inputs({ entries: table([entry(), entry({ query: 'a=1', representation: 'text' })]) })), { tokenRequired: false });
  const forms = page.match(/<form class="actions" method="post" action="\/invalidate"[\s\S]*?<\/form>/g) ?? [];
  assert.equal(forms.length, 4, 'two routes, two entries');
  assert.match(forms[0]!, /name="route" value="node"/);
  assert.match(forms[0]!, /formaction="\/invalidate\?soft=true"/);
  assert.match(forms[0]!, /formaction="\/invalidate\?refresh=true"/);
  const entryForm = forms.find((f) => f.includes('value="a=1"'))!;
  assert.match(entryForm, /name="path" value="\/node\/metrics"/);
  assert.ok(!entryForm.includes('refresh=true'), 'refresh refetches query-less entries only, so an entry with a query has no refresh button');
  assert.match(page, /<form class="actions" method="post" action="\/-\/reload"/);
  assert.ok(!page.includes('name="token"'), 'no token field when the page was not opened with the token form');
});

test('a page opened with the token form (no JavaScript) carries the token in its forms, never in a link', () => {
  const page = renderStatusPage(buildStatusModel(inputs()), { tokenRequired: true, formToken: 's3cret"<' });
  assert.ok((page.match(/<input type="hidden" name="token" value="s3cret&quot;&lt;">/g) ?? []).length >= 3);
  assert.ok(!/href="[^"]*s3cret/.test(page));
  assert.ok(!page.includes('href="/metrics"'), 'with a token /metrics and /cache need a header a link cannot send');
});

test('the token page has a labelled password field posting to / and shows no status', () => {
  const page = renderTokenPage('1.2.3', { tokenRequired: true, note: { ok: false, text: '<i>x</i>' } }, true);
  assert.match(page, /<form id="token-form" method="post" action="\/"/);
  assert.match(page, /<label for="token-input">Token<\/label>\s*<input id="token-input" name="token" type="password"/);
  assert.match(page, /That token was refused/);
  assert.match(page, /&lt;i&gt;x&lt;\/i&gt;/);
  assert.ok(!page.includes('data-region'));
});

test('the entry table says which rows of how many it shows and links the pages around it, keeping sort and filter', () => {
  const rows = Array.from({ length: 100 }, (_, i) => entry({ query: `target=${i}` }));
  const view = parseEntryView(new URLSearchParams({ sort: 'bytes', order: 'desc', filter: 'x', page: '2' }));
  const page = renderStatusPage(buildStatusModel(inputs({ entries: { rows, total: 50_000, matched: 320, page: 2, pages: 4, pageSize: 100 }, view })), { tokenRequired: false });
  assert.match(page, /data-live="entries\/count">rows 101-200 of 320 matching of 50000</);
  assert.match(page, /<a href="\/\?sort=bytes&amp;order=desc&amp;filter=x#entries">First<\/a>/);
  assert.match(page, /<a href="\/\?sort=bytes&amp;order=desc&amp;filter=x&amp;page=3#entries" rel="next">Next<\/a>/);
  assert.match(page, /page 2 of 4/);
  // A new sort starts again at the first page.
  assert.match(page, /aria-sort="descending"><a href="\/\?sort=bytes&amp;order=asc&amp;filter=x#entries"/);
  assert.equal(parseEntryView(new URLSearchParams({ page: '-3' })).page, 1);
  assert.equal(parseEntryView(new URLSearchParams({ page: 'x' })).page, 1);
});

test('a route with overrides shows each with its windows, and an entry says the ttl it was stored with', () => {
  const overrides = [{ query: [{ name: 'module', values: ['inventory'] }], ttlMs: 6 * 3_600_000, staleWhileRevalidateMs: 0, staleIfErrorMs: 86_400_000 }];
  const page = renderStatusPage(
    buildStatusModel(inputs({ routes: [route('snmp', { overrides })], entries: table([entry({ route: 'snmp', query: 'module=inventory&target=a', lifetime_seconds: 21_600, override: 'module=inventory' })]) })),
    { tokenRequired: false },
  );
  assert.match(page, /<li><code>module=inventory<\/code>: ttl 6h, stale_if_error 1d<\/li>/);
  assert.match(page, /title="stored with ttl 6 h \(override module=inventory\)"/);
});

test('a canonical query shows decoded, with &, = and % inside values kept encoded', () => {
  assert.equal(readableQuery('module=http_2xx&target=https%3A%2F%2Fexample.org%2F%3Fa%3D1%26b'), 'module=http_2xx&target=https://example.org/?a%3D1%26b');
  assert.equal(readableQuery('a=%E2%9C%93'), 'a=✓');
  assert.equal(readableQuery('bad=%E2'), 'bad=%E2');
});

test('the landing page lists the routes with links, shows a prefix route as its prefix, and links the status page', () => {
  const page = renderLandingPage({
    version: '1.2.3',
    routes: [route('node'), route('pages', { path: undefined, pathPrefix: '/pages/', cache: false })],
    statusUrl: 'http://127.0.0.1:9181/',
  });
  assert.match(page, /<a href="\/node\/metrics"><code>\/node\/metrics<\/code><\/a>/);
  assert.match(page, /<code>\/pages\/<\/code>… <span class="muted">— route <strong>pages<\/strong>, pass-through, everything below this prefix/);
  assert.match(page, /<a href="http:\/\/127\.0\.0\.1:9181\/">Status page<\/a>/);
  assert.match(page, /version 1\.2\.3/);
  assert.match(renderLandingPage({ version: '1', routes: [], statusUrl: undefined }), /not reachable from here/);
});

test('the landing page loads nothing: its only style is inline and allowed by its hash', () => {
  const page = renderLandingPage({ version: '1', routes: [route('node')], statusUrl: undefined });
  const style = /<style>([\s\S]*?)<\/style>/.exec(page)![1]!;
  assert.equal(style, STYLESHEET);
  const hash = createHash('sha256').update(style).digest('base64');
  assert.equal(LANDING_CSP, `default-src 'none'; style-src 'sha256-${hash}'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'`);
  assert.ok(!/<script|<link rel="stylesheet"|src=/.test(page));
  assert.ok(!/(src|href)="(https?:)?\/\//.test(page), 'nothing from another host');
});

function fakeRequest(host: string | undefined, remote: string, local = '127.0.0.1'): IncomingMessage {
  return { headers: host === undefined ? {} : { host }, socket: { remoteAddress: remote, localAddress: local } } as unknown as IncomingMessage;
}

test('the landing page links the status page only where the browser can reach the admin listener', () => {
  // On all addresses: by the name the browser used.
  assert.equal(statusUrlFor(fakeRequest('metrics.example:9180', '10.1.1.1', '10.0.0.5'), { host: '0.0.0.0', port: 9181 }), 'http://metrics.example:9181/');
  assert.equal(statusUrlFor(fakeRequest('[2001:db8::1]:9180', '2001:db8::2'), { host: '::', port: 9181 }), 'http://[2001:db8::1]:9181/');
  // On loopback: from this machine only.
  assert.equal(statusUrlFor(fakeRequest('localhost:9180', '127.0.0.1'), { host: '127.0.0.1', port: 9181 }), 'http://127.0.0.1:9181/');
  assert.equal(statusUrlFor(fakeRequest('[::1]:9180', '::1'), { host: '::1', port: 9181 }), 'http://[::1]:9181/');
  assert.equal(statusUrlFor(fakeRequest('proxy.example:9180', '10.1.1.1', '10.0.0.5'), { host: '127.0.0.1', port: 9181 }), undefined);
  // On one address: when the browser came in on it.
  assert.equal(statusUrlFor(fakeRequest('10.0.0.5:9180', '10.1.1.1', '10.0.0.5'), { host: '10.0.0.5', port: 9181 }), 'http://10.0.0.5:9181/');
  assert.equal(statusUrlFor(fakeRequest('10.0.0.6:9180', '10.1.1.1', '10.0.0.6'), { host: '10.0.0.5', port: 9181 }), undefined);
  // A Host header that is not a host name gets no link at all.
  assert.equal(statusUrlFor(fakeRequest('"><script>x</script>', '10.1.1.1'), { host: '0.0.0.0', port: 9181 }), undefined);
  assert.equal(statusUrlFor(fakeRequest(undefined, '10.1.1.1'), { host: '0.0.0.0', port: 9181 }), undefined);
});

test('the last fetch keeps the newest per route, cuts long error texts, and names a gzip error body instead of showing its bytes', () => {
  let now = 1000;
  const recorder = new LastFetchRecorder(() => now);
  recorder.record('node', '200', 0.1);
  now = 2000;
  recorder.record('node', '502', 0.2, 'x'.repeat(1000));
  assert.equal(recorder.get('node')!.code, '502');
  assert.equal(recorder.get('node')!.error!.length, 301);
  recorder.merge([['node', { code: '200', seconds: 1, at: 1500 }]]);
  assert.equal(recorder.get('node')!.code, '502', 'an older fetch from another process does not replace a newer one');
  recorder.merge([['node', { code: '200', seconds: 1, at: 2500 }]]);
  assert.equal(recorder.get('node')!.code, '200');
  assert.equal(upstreamErrorText(Buffer.from(' collector failed\n'), undefined), 'collector failed');
  assert.equal(upstreamErrorText(Buffer.from([0x1f, 0x8b, 0]), 'gzip'), '(gzip body, 3 bytes)');
});

test('a button\'s result note is found by its random id only, and expires', () => {
  let now = 0;
  const notes = new ResultNotes(() => now);
  const id = notes.add({ ok: true, text: 'done' });
  assert.match(id, /^[A-Za-z0-9_-]{16}$/);
  assert.deepEqual(notes.get(id), { ok: true, text: 'done' });
  assert.equal(notes.get('guess'), undefined);
  assert.equal(notes.get(null), undefined);
  now = 11 * 60_000;
  assert.equal(notes.get(id), undefined);
});

test('ages read the way people say them', () => {
  assert.equal(formatAge(0), '0 s');
  assert.equal(formatAge(59.4), '59 s');
  assert.equal(formatAge(61), '1 min 1 s');
  assert.equal(formatAge(7322), '2 h 2 min');
  assert.equal(formatAge(90000), '1 d 1 h');
});
