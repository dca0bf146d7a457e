import { scaleSection } from '../sections/scale.mjs';
import { memoryScaleSection } from '../sections/memory-scale.mjs';
// bench/RESULTS.md: machine, versions, the goals with PASS/MISS, then one table per section.

const MiB = 2 ** 20;

const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const cpu = (n) => (Number.isFinite(n) ? n.toFixed(3) : 'n/a');
const mib = (n) => (Number.isFinite(n) ? (n / MiB).toFixed(1) : 'n/a');
const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(n < 0.1 ? 1 : 0)}%` : '?');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

export function formatBytes(n) {
  if (n >= MiB) return `${(n / MiB).toFixed(n % MiB ? 1 : 0)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} KiB`;
  return `${n} B`;
}

/** Markdown table; columns whose cells are all numbers (or n/a) are right-aligned. */
function table(head, rows) {
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => /^(n\/a|error|[\d.,]+( MiB)?x?( \(.*\))?|[\d.]+ \/ [\d,]+|[\d,]+ B|)$/.test(String(r[i] ?? ''))));
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map((_, i) => (i > 0 && numeric[i] ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const measured = (p) => p && !p.error && Number.isFinite(p.rps);
const pointOf = (points, name) => points.find((p) => p.peer === name);

/** "one process" or "2 workers": how a pass ran the servers. */
export function passName(pass) {
  return pass.workers === 1 ? 'one process' : `${pass.workers} workers`;
}

/**
 * The issue's goals, each { ok: true|false|null, line }. null: not measured in this run. The hit
 * path goals are checked in every pass (against the reference run the same way: one process, or
 * N cluster workers); the memory goal once.
 */
export function evaluateGoals({ passes, big }) {
  const goals = [];
  const named = (passes ?? []).length > 1;
  for (const pass of passes ?? []) {
    for (const { profile, points } of pass.compare ?? []) {
      if (!profile.goal) continue;
      const sc = pointOf(points, 'scrapecache');
      const ref = pointOf(points, 'reference');
      const have = measured(sc) && measured(ref);
      const check = (what, value, limit, better) => {
        const ok = have ? (better === 'higher' ? value >= limit : value <= limit) : null;
        goals.push({ ok, line: `${named ? `${passName(pass)}, ` : ''}${profile.label}: ${what} ${have ? `${value.toFixed(2)}x` : 'not measured'} reference (goal ${better === 'higher' ? '>=' : '<='} ${limit}x)` });
      };
      check('hit req/s', have ? sc.rps / ref.rps : NaN, 0.9, 'higher');
      check('p99 latency', have ? sc.p99 / ref.p99 : NaN, 1.5, 'lower');
      check('CPU per hit', have ? sc.cpuPer10k / ref.cpuPer10k : NaN, 1.2, 'lower');
    }
    if (pass.redis) {
      // Issue 10: with cache.redis configured, a hit never touches Redis.
      const shared = pointOf(pass.redis.hits, 'scrapecache+redis');
      const ref = pointOf(pass.redis.hits, 'reference');
      const have = measured(shared) && measured(ref);
      const value = have ? shared.rps / ref.rps : NaN;
      goals.push({ ok: have ? value >= 0.9 : null, line: `${pass.redis.profile.label}, cache.redis configured: hit req/s ${have ? `${value.toFixed(2)}x` : 'not measured'} reference (goal >= 0.9x)` });
    }
  }
  // Issue 11: over TLS, and over TLS with basic auth, against the reference doing the same;
  // issue 21: CPU per hit within 1.05x of that reference.
  for (const pass of passes ?? []) {
    for (const { profile, points } of pass.security ?? []) {
      const sc = pointOf(points, 'scrapecache');
      const ref = pointOf(points, 'reference');
      const have = measured(sc) && measured(ref);
      const ratio = have ? sc.rps / ref.rps : NaN;
      goals.push({ ok: have ? ratio >= 0.8 : null, line: `${profile.label}: hit req/s ${have ? `${ratio.toFixed(2)}x` : 'not measured'} reference (goal >= 0.8x)` });
      const cpuRatio = have ? sc.cpuPer10k / ref.cpuPer10k : NaN;
      goals.push({ ok: have ? cpuRatio <= 1.05 : null, line: `${profile.label}: CPU per hit ${have ? `${cpuRatio.toFixed(2)}x` : 'not measured'} reference (goal <= 1.05x, issue 21)` });
    }
  }
  if (big !== undefined) {
    const have = big && Number.isFinite(big.rss) && !big.failures;
    goals.push({
      ok: have ? big.rss <= big.limit : null,
      line: have
        ? `${big.count} entries of ${formatBytes(big.entryBytes)}: RSS ${mib(big.rss)} MiB <= 1.3 x ${mib(big.storedBytes)} MiB stored + 60 MiB = ${mib(big.limit)} MiB`
        : `${big?.count ?? 1000} entries of 100 KiB: not measured${big?.firstError ? ` (${big.firstError})` : ''}`,
    });
  }
  return goals;
}

export function goalMark(goal) {
  return goal.ok === null ? 'N/A ' : goal.ok ? 'PASS' : 'MISS';
}

function peerTables(compare) {
  const out = [];
  for (const { profile, points } of compare) {
    out.push(`### ${profile.label}`, '');
    out.push(table(['peer', 'req/s', 'req/s range', 'p50 ms', 'p99 ms', 'p99.9 ms', 'CPU s / 10k hits', 'RSS MiB (processes)', 'bytes on the wire', 'Cache-Status / notes'],
      points.map((p) => (p.error
        ? [p.peer, 'error', '', '', '', '', '', '', '', p.error]
        : [p.peer, int(p.rps), p.rounds > 1 ? `${int(p.rpsMin)}–${int(p.rpsMax)}` : '', ms(p.p50), ms(p.p99), ms(p.p999), cpu(p.cpuPer10k), p.memory ? `${mib(p.memory.rss)} (${p.memory.processes})` : 'n/a', `${int(p.wireBytes)} (${p.encoding})`, [p.cacheStatus, p.problem && `**${p.problem}**`].filter(Boolean).join('; ')]))));
    out.push('');
  }
  return out;
}

/**
 * scrapecache / reference over TLS next to the same ratio without TLS when the run measured it
 * (the compare section's first profile, the same bytes): what TLS itself adds to the gap, if
 * anything. And what each server negotiated.
 */
function securityRatios(pass) {
  const rows = [];
  const plain = pass.compare?.[0];
  const row = (label, points) => {
    const sc = pointOf(points, 'scrapecache');
    const ref = pointOf(points, 'reference');
    rows.push(measured(sc) && measured(ref)
      ? [label, ratio(sc.rps, ref.rps), ratio(sc.p99, ref.p99), ratio(sc.cpuPer10k, ref.cpuPer10k)]
      : [label, 'n/a', 'n/a', 'n/a']);
  };
  if (plain) row(`${plain.profile.label}, plain HTTP (compare section, same run)`, plain.points);
  for (const { profile, points } of pass.security) row(profile.label, points);
  const out = ['#### scrapecache / reference', '', table(['setting', 'req/s', 'p99', 'CPU per hit'], rows), ''];
  const tlsRows = [];
  for (const { profile, points } of pass.security) for (const p of points) if (p.tls) tlsRows.push([profile.label, p.peer, p.tls]);
  if (tlsRows.length) {
    out.push('#### What each server negotiated', '',
      'With an OpenSSL client as wrk is (no ALPN offered), checked before the load: protocol, cipher suite, key exchange group, and whether a second connection resumes the first one\'s session. Both use the same certificate (a P-256 key made for the run). wrk keeps its connections open, so the handshake (one per connection) does not weigh in the CPU per hit.', '',
      table(['setting', 'peer', 'negotiated'], tlsRows), '');
  }
  return out;
}

function ratioTable(compare, peerNames, heading) {
  const others = peerNames.filter((n) => n !== 'scrapecache');
  if (!peerNames.includes('scrapecache') || others.length === 0) return [];
  const out = [heading, '', 'req/s: higher is better for scrapecache; p99 and CPU per hit: lower is better.', ''];
  const rows = [];
  for (const { profile, points } of compare) {
    const sc = pointOf(points, 'scrapecache');
    for (const name of others) {
      const peer = pointOf(points, name);
      if (!measured(sc) || !measured(peer)) {
        rows.push([profile.label, name, 'n/a', 'n/a', 'n/a']);
        continue;
      }
      rows.push([profile.label, name, ratio(sc.rps, peer.rps), ratio(sc.p99, peer.p99), ratio(sc.cpuPer10k, peer.cpuPer10k)]);
    }
  }
  out.push(table(['profile', 'scrapecache / …', 'req/s', 'p99', 'CPU per hit'], rows), '');
  return out;
}

function compareSection(compare, peerNames, pass) {
  const out = [`## Hit path, peer by peer${pass ? `: ${passName(pass)} each` : ''}`, ''];
  out.push('Every peer serves the same fixture body from its cache (warmed first); load is the',
    'same scrape request for each. CPU is user+system seconds of the peer\'s whole process tree',
    '(nginx master and workers, varnishd manager and cache process) per 10 000 responses; RSS is the',
    'sum over that tree after the peer\'s load.', '');
  if (pass?.options.pin) out.push('Servers pinned to CPU 1, wrk (1 thread) and the fixture exporter to CPU 0. Varnish\'s cache process is multi-threaded, but pinned like the others it has one core.', '');
  if (pass && pass.workers > 1) out.push(...workersCheckSection(pass, peerNames));
  out.push(...peerTables(compare));
  out.push(...ratioTable(compare, peerNames, '### scrapecache relative to each peer'));
  return out;
}

const share = (part, total) => (total > 0 ? `${Math.round((part / total) * 100)}%` : 'n/a');

/** How a peer's processes shared the work: the root (primary, master, manager) first. */
function cpuSplit(points) {
  const byPid = new Map();
  for (const p of points) {
    for (const proc of p.processCpu ?? []) {
      const sum = byPid.get(proc.pid) ?? { ...proc, seconds: 0 };
      sum.seconds += proc.seconds;
      byPid.set(proc.pid, sum);
    }
  }
  const procs = [...byPid.values()].sort((a, b) => (b.root - a.root) || (a.pid - b.pid));
  const total = procs.reduce((sum, p) => sum + p.seconds, 0);
  return procs.map((p) => `${p.root ? 'root' : p.comm} ${share(p.seconds, total)}`).join(' · ');
}

/** With workers: every worker of every peer served hits; CPU split and memory of each tree. */
function workersCheckSection(pass, peerNames) {
  const out = [];
  const rows = [];
  for (const name of peerNames) {
    const points = pass.compare.map((c) => pointOf(c.points, name)).filter(measured);
    if (points.length === 0) continue;
    const checks = points.map((p) => p.workersCheck).filter(Boolean);
    const conns = checks.reduce((sum, c) => sum + c.connections, 0);
    const hits = checks.reduce((sum, c) => sum + c.hits, 0);
    const serving = checks.length ? Math.min(...checks.map((c) => c.servingProcesses)) : NaN;
    const expect = checks[0]?.expectWorkers;
    const last = points.at(-1);
    rows.push([name,
      checks.length ? `${hits} / ${conns}` : 'n/a',
      checks.length ? `${serving} of ${expect}${serving < expect ? ' **(not all)**' : ''}` : 'n/a',
      cpuSplit(points),
      last.memory ? `${mib(last.memory.rss)} (${last.memory.processes})` : 'n/a',
      last.memory ? mib(last.memory.private) : 'n/a']);
  }
  out.push('### Every worker serves', '',
    'Before each profile is loaded, batches of 16 fresh connections are opened at once to each peer, one scrape on each, and /proc tells which process holds the server side of each connection (repeated, up to 8 batches, until every worker has taken some). Then, under load, the CPU split between the processes of each peer\'s tree, over all profiles and rounds (root: scrapecache\'s primary, nginx\'s master, the reference\'s cluster primary, varnishd\'s manager). Memory after the last profile: RSS summed over the tree (shared pages such as the node binary counted once per process) and private memory (pages only that process maps).', '');
  out.push(table(['peer', 'fresh connections answered as hits', 'worker processes that took connections (least over profiles)', 'CPU under load by process', 'RSS MiB (processes)', 'private MiB'], rows), '');
  return out;
}

function workersSection(pass, onePass, peerNames, cores) {
  const n = pass.workers;
  const out = [`## Hit path with ${n} workers`, ''];
  out.push(`The same comparison, from the same run, with every server given ${n} processes: scrapecache \`workers: ${n}\` in proxy.yaml (a primary that runs the admin listener and makes every upstream fetch, and ${n} workers that serve scrapes from their own copy of the cache, sharing the scrape port with cluster.SCHED_NONE), nginx \`worker_processes ${n}\`, and the reference as ${n} node:cluster workers (SCHED_NONE too). Varnish runs as it is: one cache process whose thread pool serves the connections (it is multi-threaded in both passes).`, '',
    `**Nothing is pinned in this pass**: on this ${cores}-core machine the servers use every core and wrk (still 1 thread) and the fixture exporter compete with them for the CPUs, so req/s and latency here are what a server gets while sharing the machine with its load generator; CPU seconds per hit remain the least disturbed figure.`, '');
  out.push(...workersCheckSection(pass, peerNames));
  out.push(...peerTables(pass.compare));
  out.push(...ratioTable(pass.compare, peerNames, `### scrapecache relative to each peer, ${n} workers`));
  if (onePass?.compare) {
    const scaleRows = [];
    for (const { profile, points } of pass.compare) {
      const before = onePass.compare.find((c) => c.profile.id === profile.id);
      if (!before) continue;
      for (const name of peerNames) {
        const a = pointOf(before.points, name);
        const b = pointOf(points, name);
        scaleRows.push([profile.label, name, measured(a) ? int(a.rps) : 'n/a', measured(b) ? int(b.rps) : 'n/a', measured(a) && measured(b) ? ratio(b.rps, a.rps) : 'n/a', measured(a) && measured(b) ? ratio(b.p99, a.p99) : 'n/a', measured(a) && measured(b) ? ratio(b.cpuPer10k, a.cpuPer10k) : 'n/a']);
      }
    }
    if (scaleRows.length) {
      out.push(`### ${n} workers against one process (pinned), peer by peer`, '',
        'Ratios are with workers / one process: the one-process pass has a core to itself for the server and one for wrk; this pass shares both.', '');
      out.push(table(['profile', 'peer', 'req/s, one process', `req/s, ${n} workers`, 'req/s', 'p99', 'CPU per hit'], scaleRows), '');
    }
  }
  return out;
}

/** scrapecache against every peer, every pass, one row per pass and profile. */
function glanceTable(passes, peerNames) {
  const others = peerNames.filter((n) => n !== 'scrapecache');
  const rows = [];
  for (const pass of passes) {
    for (const { profile, points } of pass.compare ?? []) {
      const sc = pointOf(points, 'scrapecache');
      const cells = (f) => others.map((name) => {
        const peer = pointOf(points, name);
        return measured(sc) && measured(peer) ? f(sc, peer) : 'n/a';
      }).join(' / ');
      rows.push([passName(pass), profile.label, measured(sc) ? int(sc.rps) : 'n/a',
        cells((a, b) => ratio(a.rps, b.rps)), cells((a, b) => ratio(a.p99, b.p99)), cells((a, b) => ratio(a.cpuPer10k, b.cpuPer10k))]);
    }
  }
  if (!rows.length || !others.length || !peerNames.includes('scrapecache')) return [];
  const vs = others.join(' / ');
  return ['### Hit path at a glance: scrapecache / each peer', '',
    `Each ratio cell lists scrapecache / ${vs}. req/s: higher is better for scrapecache; p99 and CPU per hit: lower is better.`, '',
    table(['servers', 'profile', 'scrapecache req/s', `req/s vs ${vs}`, `p99 vs ${vs}`, `CPU per hit vs ${vs}`], rows), ''];
}

function sizeSection(size) {
  const out = ['## Hit req/s against body size', '',
    'Identity bodies (the client sends no Accept-Encoding), so the size is what is written per hit.', ''];
  const rows = size.map(({ size: s, points }) => {
    const ref = pointOf(points, 'reference');
    const sc = pointOf(points, 'scrapecache');
    const cell = (p, f) => (measured(p) ? f(p) : p?.error ? 'error' : 'n/a');
    return [s.label, cell(ref, (p) => int(p.rps)), cell(sc, (p) => int(p.rps)), measured(sc) && measured(ref) ? ratio(sc.rps, ref.rps) : 'n/a',
      cell(ref, (p) => int(p.mbps)), cell(sc, (p) => int(p.mbps)),
      cell(ref, (p) => ms(p.p99)), cell(sc, (p) => ms(p.p99)),
      cell(ref, (p) => cpu(p.cpuPer10k)), cell(sc, (p) => cpu(p.cpuPer10k))];
  });
  out.push(table(['body', 'reference req/s', 'scrapecache req/s', 'ratio', 'reference MB/s', 'scrapecache MB/s', 'reference p99 ms', 'scrapecache p99 ms', 'reference CPU s/10k', 'scrapecache CPU s/10k'], rows), '');
  return out;
}

function redisSection(redis) {
  const out = [`## cache.redis: hits, and misses with Redis against without (${redis.profile.label})`, '',
    `${redis.redisVersion} on loopback, no persistence. scrapecache (no Redis) and scrapecache+redis are fresh processes with the same routes; only cache.redis differs. A hit never touches Redis.`, ''];
  const ref = pointOf(redis.hits, 'reference');
  const plain = pointOf(redis.hits, 'scrapecache');
  const rows = redis.hits.map((p) => [p.peer, measured(p) ? int(p.rps) : 'error', measured(p) && measured(ref) ? ratio(p.rps, ref.rps) : 'n/a',
    measured(p) && measured(plain) ? ratio(p.rps, plain.rps) : 'n/a', measured(p) ? ms(p.p99) : 'n/a', measured(p) ? cpu(p.cpuPer10k) : 'n/a']);
  out.push(table(['hits', 'req/s', 'vs reference', 'vs scrapecache', 'p99 ms', 'CPU s/10k'], rows), '');
  out.push('Misses one at a time (each a new key, fetched from the fixture exporter, which answers at once), the two proxies in turn:', '');
  out.push(table(['misses', 'count', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], redis.misses.map((m) => [m.peer, int(m.count), ms(m.p50), ms(m.p90), ms(m.p99), ms(m.max)])), '');
  const [a, b] = redis.misses;
  if (a && b) out.push(`A miss with Redis takes ${ms(b.p50 - a.p50)} ms more at the median (${ratio(b.p50, a.p50)}) and ${ms(b.p99 - a.p99)} ms more at p99: the Redis read, the lease, the write and the publish around the fetch.`, '');
  if (redis.failures) out.push(`**${redis.failures} misses did not answer 200 fwd=miss.**`, '');
  return out;
}

function concurrencySection(concurrency, profileLabel) {
  const names = [...new Set(concurrency.flatMap((c) => c.points.map((p) => p.peer)))];
  const out = [`## p99 latency against connections (${profileLabel})`, '', 'Each cell: p99 ms / req/s.', ''];
  const rows = concurrency.map(({ connections, points }) => [String(connections), ...names.map((n) => {
    const p = pointOf(points, n);
    return measured(p) ? `${ms(p.p99)} / ${int(p.rps)}` : p?.error ? 'error' : 'n/a';
  })]);
  out.push(table(['connections', ...names], rows), '');
  const sc = concurrency.map((c) => pointOf(c.points, 'scrapecache'));
  const ref = concurrency.map((c) => pointOf(c.points, 'reference'));
  if (sc.some(measured) && ref.some(measured)) {
    out.push(`scrapecache p99 / reference p99: ${concurrency.map((c, i) =>
      `${c.connections} conn: ${measured(sc[i]) && measured(ref[i]) ? ratio(sc[i].p99, ref[i].p99) : 'n/a'}`).join(', ')}.`, '');
  }
  return out;
}

function memorySection(keys, big, workerBigs = []) {
  const out = ['## Memory', ''];
  if (keys) {
    out.push(`### RSS against entry count`, '',
      `A route keyed by one query parameter; each key's upstream body is ${formatBytes(keys.entryBytes.bytes)} ` +
      `(${keys.entryBytes.gzipBytes ?? keys.entryBytes.bytes} bytes gzipped, as fetched and stored). ` +
      `Keys are filled by scrapes with Prometheus's headers, ${16} at a time. RSS of the idle proxy before the fill: ${mib(keys.idleRss)} MiB.`, '');
    out.push(table(['entries', 'RSS MiB', 'RSS over idle MiB', 'RSS over idle per entry', 'scrapecache_cache_bytes', 'scrapecache_cache_entries', 'fills/s (miss path)', 'failed fills'],
      keys.rows.map((r) => [int(r.keys), mib(r.rss), mib(r.overIdle), `${int(r.perEntry)} B`, r.bytes === null ? 'n/a' : int(r.bytes), r.entries === null ? 'n/a' : int(r.entries), int(r.fillRate), r.failures ? `${r.failures} (${r.firstError})` : '0'])));
    out.push('', `A scrape of the first key afterwards: Cache-Status \`${keys.firstKeyCacheStatus || '(none)'}\`.`, '');
  }
  if (big) {
    out.push(`### ${big.count} entries of ${formatBytes(big.entryBytes)}`, '',
      'An exporter that does not compress; every key filled by a Prometheus-like scrape, then scraped once more (hits).', '');
    out.push(table(['what', 'value'], [
      ['stored bytes (entries x body)', `${mib(big.storedBytes)} MiB`],
      ['scrapecache_cache_bytes', big.bytes === null ? 'n/a' : `${mib(big.bytes)} MiB`],
      ['RSS idle, before the fill', `${mib(big.idleRss)} MiB`],
      ['for scale: RSS of an idle bare node:http process', `${mib(big.bareRss)} MiB`],
      ['RSS after fill and hits', `${mib(big.rss)} MiB`],
      ...(big.processes > 1 ? [['processes', String(big.processes)]] : []),
      ['RSS / stored bytes', ratio(big.rss, big.storedBytes)],
      ['(RSS - idle) / stored bytes', ratio(big.rss - big.idleRss, big.storedBytes)],
      ['goal: 1.3 x stored + 60 MiB', `${mib(big.limit)} MiB`],
      ['failed scrapes', big.failures ? `${big.failures} (${big.firstError})` : '0'],
    ]), '');
  }
  for (const { workers, big: b } of workerBigs) {
    out.push(`### ${b.count} entries of ${formatBytes(b.entryBytes)} with ${workers} workers`, '',
      `The same fill and hits with \`workers: ${workers}\`. Every worker keeps its own copy of the cache and the primary keeps one too (it makes the fetches), so memory grows with the worker count. RSS is summed over the primary and the workers; the proxy's own gauge is as admin /metrics reports it (aggregated over the processes). No goal is set for this setting.`, '');
    out.push(table(['what', 'value'], [
      ['stored bytes (entries x body)', `${mib(b.storedBytes)} MiB`],
      ['scrapecache_cache_bytes (admin /metrics)', b.bytes === null ? 'n/a' : `${mib(b.bytes)} MiB`],
      ['processes (primary + workers)', String(b.processes)],
      ['RSS idle, before the fill', `${mib(b.idleRss)} MiB`],
      ['RSS after fill and hits', `${mib(b.rss)} MiB`],
      ['private memory after fill and hits', `${mib(b.privateBytes)} MiB`],
      ['RSS / stored bytes', ratio(b.rss, b.storedBytes)],
      ...(big && Number.isFinite(big.rss) ? [['RSS / RSS of one process (above)', ratio(b.rss, big.rss)]] : []),
      ['failed scrapes', b.failures ? `${b.failures} (${b.firstError})` : '0'],
    ]), '');
  }
  return out;
}

function profileSection(profile) {
  const out = ['## Where scrapecache spends its CPU (node --cpu-prof)', '',
    `Top self time over the whole run of the main proxy (\`${profile.path}\`), idle and GC-less \`(program)\` left out.`, ''];
  out.push(table(['function', 'location', 'self ms', '%'],
    profile.top.map((f) => [`\`${f.name}\``, `\`${f.location}\``, int(f.selfMs), f.percent.toFixed(1)])), '');
  if (profile.own?.length) {
    out.push('scrapecache\'s own functions (dist/src), same profile, % of all non-idle samples:', '');
    out.push(table(['function', 'location', 'self ms', '%'],
      profile.own.map((f) => [`\`${f.name}\``, `\`${f.location}\``, int(f.selfMs), f.percent.toFixed(1)])), '');
  }
  return out;
}

function describeWorkers(n) {
  return n === 1
    ? 'scrapecache without `workers` in proxy.yaml (the default: one process), nginx worker_processes 1, reference one process, Varnish as it is'
    : `scrapecache \`workers: ${n}\` (primary + ${n} workers), nginx worker_processes ${n}, reference ${n} cluster workers, Varnish as it is (multi-threaded)`;
}

export function renderReport(run) {
  const { options, machine, versions, loadTool, skipped, size, concurrency, keys, big, cpuProfile, elapsedSec, plan } = run;
  const passes = run.passes ?? [];
  const main = passes.find((p) => p.main);
  const extra = passes.filter((p) => !p.main);
  const out = [];
  out.push('# scrapecache benchmark results', '');
  out.push(`Generated by \`node bench/run.mjs${options.argv.length ? ` ${options.argv.join(' ')}` : ''}\`${options.argv.length ? '' : ' (`npm run bench`)'} on ${machine.date}, in ${Math.round(elapsedSec)} s.`, '');
  out.push('| | |', '| --- | --- |',
    `| machine | ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB.toFixed(0)} GiB, ${machine.kernel} |`,
    `| Node.js | ${machine.node} |`,
    `| other work on the machine | CPUs ${Number.isFinite(machine.busyBefore) ? `${Math.round(machine.busyBefore * 100)}%` : '?'} busy in the 2 s before the run; load average ${machine.loadAverage} before, ${run.loadAverageAfter ?? '?'} after |`,
    ...(run.interference?.seconds ? [`| interference | during the ${Math.round(run.interference.seconds)} s under load, processes outside the bench used ${pct(run.interference.otherShare)} of a core on average (worst point ${pct(run.interference.worst)}); steal ${pct(run.interference.stealShare)} |`] : []),
    ...Object.entries(versions).map(([name, version]) => `| ${name} | ${version} |`),
    `| load | ${loadTool.version}${loadTool.tool === 'wrk' ? ', 1 thread' : ''}, ${options.connections} connections; ${options.rounds} round(s) of ${options.duration} s per point (sweeps ${options.sweepDuration} s), peers in turn, after ${options.warmup} s of warm-up (sweeps 1 s); medians over rounds |`,
    `| passes | ${passes.map((p) => passName(p)).join(', then ') || 'none'} (\`--workers ${options.workerCounts.join(',')}\`); the first runs every section, the others the peer comparison |`,
    ...passes.map((p) => `| ${passName(p)} | ${describeWorkers(p.workers)}; ${p.options.pin ? 'servers pinned to CPU 1, load generator and fixture exporter to CPU 0 (taskset)' : `servers and wrk not pinned: they share the ${machine.cores} cores`} |`),
    '');
  if (machine.busyBefore > 0.1 || run.interference?.otherShare > 0.05) {
    out.push(`**The machine was busy** (CPUs ${pct(machine.busyBefore)} busy before the run started; other processes took ${pct(run.interference?.otherShare)} of a core on average under load, up to ${pct(run.interference?.worst)}): other processes competed for the CPUs, so the numbers are noisy; the req/s range across rounds shows how much. CPU seconds per hit are the least disturbed figure.`, '');
  }
  if (options.quick) out.push('**Quick run**: short durations and fewer points; a smoke test, not numbers to quote.', '');
  if (skipped.length) out.push(...skipped.map((s) => `- skipped: ${s}`), '');

  const goals = evaluateGoals({ passes, big: options.sections.includes('memory') ? big : undefined });
  const peerNames = passes.find((p) => p.compare?.length)?.compare[0].points.map((p) => p.peer) ?? [];
  if (goals.length) {
    out.push('## Goals (issue 5)', '', ...goals.map((g) => `- ${goalMark(g)} ${g.line}`), '');
    out.push(...glanceTable(passes, peerNames));
  }
  if (main?.compare?.length) out.push(...compareSection(main.compare, peerNames, extra.length || main.workers > 1 ? main : undefined));
  for (const pass of extra) {
    if (pass.compare?.length) out.push(...workersSection(pass, passes.find((p) => p.workers === 1 && p.compare), peerNames, machine.cores));
  }
  if (main?.security?.length) {
    out.push('## Listener security (issue 11)', '',
      'scrapecache with `--web.config.file` (TLS; TLS and `basic_auth_users` with a cost-10 bcrypt hash) against the reference over https with the same certificate and TLS settings (and checking the same Authorization header: a SHA-256 compared in constant time per request), same bytes, keep-alive connections as Prometheus keeps them. Goals: hits/s >= 0.8x the reference (issue 11), CPU per hit <= 1.05x (issue 21).', '');
    out.push(...peerTables(main.security));
    out.push(...securityRatios(main));
  }
  if (size?.length) out.push(...sizeSection(size));
  if (concurrency?.length) out.push(...concurrencySection(concurrency, plan.concurrencyProfile.label));
  if (run.redis) out.push(...redisSection(run.redis));
  const workerBigs = extra.filter((p) => p.big).map((p) => ({ workers: p.workers, big: p.big }));
  if (keys || big || workerBigs.length) out.push(...memorySection(keys, big, workerBigs));
  if (run.restart) {
    const r = run.restart;
    out.push('## Restart to first hit', '',
      `With \`cache.disk\`: ${r.count} entries filled, SIGTERM, a new process on the same directory. ` +
      `From its spawn to the first answer: **${Math.round(r.toFirstHitMs)} ms** (\`${r.firstCacheStatus}\`); ` +
      `${r.hits} of ${r.count} keys were hits after the restart.`, '');
  }
  if (run.scale) out.push(...scaleSection(run.scale));
  if (run.memoryScale) out.push(...memoryScaleSection(run.memoryScale));
  if (cpuProfile?.top?.length) out.push(...profileSection(cpuProfile));

  out.push('## How this was measured', '',
    '- Fixture exporter (`bench/fixture-exporter.mjs`): deterministic node_exporter-like text (kube-state-metrics-like above 1 MB); ' +
    'negotiates like promhttp: gzip when Accept-Encoding has gzip, no Vary, `text/plain; version=0.0.4; charset=utf-8`.',
    '- Scrape requests carry Prometheus 2.42\'s `Accept` header and, except in the identity profiles, `Accept-Encoding: gzip` (`bench/wrk-scrape.lua`).',
    '- reference (`bench/reference-server.mjs`): node:http in its own process writing the stored bytes with a scrapecache hit\'s headers (Content-Type, Content-Encoding, Vary, Age, Cache-Status): the runtime\'s limit for the hit path.',
    `- scrapecache: \`${run.scrapecacheCommand ?? 'node dist/src/cli.js --config.file <generated proxy.yaml>'}\`, one route per profile, ttl 24h, warmed before measuring.`,
    '- nginx (`bench/nginx.conf.tmpl`) and Varnish (`bench/varnish.vcl.tmpl`): foreground processes on loopback ports with their own temp dirs; one cache entry per URL and gzip-or-not, like scrapecache\'s representations.',
    '- Every peer is checked before it is loaded: status 200, the right content coding, and a body that decodes to the exporter\'s text.',
    '- CPU seconds from /proc/<pid>/stat (utime+stime) of the peer and its descendants, read before and after the load; RSS from /proc/<pid>/status, summed over the same tree (scrapecache\'s primary and workers too).',
    ...(extra.length ? ['- With workers, scrapecache is waited for until its primary logs "scrapecache listening" (printed once every worker is up; the config\'s log level is info for this, which logs upstream fetches, never hits), and every peer\'s workers are checked to answer fresh connections with hits before the load.'] : []),
    '');
  return `${out.join('\n')}\n`;
}
