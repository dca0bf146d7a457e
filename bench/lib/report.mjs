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

/** The issue's goals, each { ok: true|false|null, line }. null: not measured in this run. */
export function evaluateGoals({ compare, big }) {
  const goals = [];
  for (const { profile, points } of compare ?? []) {
    if (!profile.goal) continue;
    const sc = pointOf(points, 'scrapecache');
    const ref = pointOf(points, 'reference');
    const have = measured(sc) && measured(ref);
    const check = (what, value, limit, better) => {
      const ok = have ? (better === 'higher' ? value >= limit : value <= limit) : null;
      goals.push({ ok, line: `${profile.label}: ${what} ${have ? `${value.toFixed(2)}x` : 'not measured'} reference (goal ${better === 'higher' ? '>=' : '<='} ${limit}x)` });
    };
    check('hit req/s', have ? sc.rps / ref.rps : NaN, 0.9, 'higher');
    check('p99 latency', have ? sc.p99 / ref.p99 : NaN, 1.5, 'lower');
    check('CPU per hit', have ? sc.cpuPer10k / ref.cpuPer10k : NaN, 1.2, 'lower');
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

function compareSection(compare, peerNames) {
  const out = ['## Hit path, peer by peer', ''];
  out.push('Every peer serves the same fixture body from its cache (warmed first); load is the',
    'same scrape request for each. CPU is user+system seconds of the peer\'s whole process tree',
    '(nginx master and workers, varnishd manager and cache process) per 10 000 responses.', '');
  for (const { profile, points } of compare) {
    out.push(`### ${profile.label}`, '');
    out.push(table(['peer', 'req/s', 'req/s range', 'p50 ms', 'p99 ms', 'p99.9 ms', 'CPU s / 10k hits', 'bytes on the wire', 'Cache-Status / notes'],
      points.map((p) => (p.error
        ? [p.peer, 'error', '', '', '', '', '', '', p.error]
        : [p.peer, int(p.rps), p.rounds > 1 ? `${int(p.rpsMin)}–${int(p.rpsMax)}` : '', ms(p.p50), ms(p.p99), ms(p.p999), cpu(p.cpuPer10k), `${int(p.wireBytes)} (${p.encoding})`, [p.cacheStatus, p.problem && `**${p.problem}**`].filter(Boolean).join('; ')]))));
    out.push('');
  }
  const others = peerNames.filter((n) => n !== 'scrapecache');
  if (peerNames.includes('scrapecache') && others.length) {
    out.push('### scrapecache relative to each peer', '',
      'req/s: higher is better for scrapecache; p99 and CPU per hit: lower is better.', '');
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
  }
  return out;
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
    out.push('scrapecache p99 / reference p99: ' + concurrency.map((c, i) =>
      `${c.connections} conn: ${measured(sc[i]) && measured(ref[i]) ? ratio(sc[i].p99, ref[i].p99) : 'n/a'}`).join(', ') + '.', '');
  }
  return out;
}

function memorySection(keys, big) {
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
      ['RSS / stored bytes', ratio(big.rss, big.storedBytes)],
      ['(RSS - idle) / stored bytes', ratio(big.rss - big.idleRss, big.storedBytes)],
      ['goal: 1.3 x stored + 60 MiB', `${mib(big.limit)} MiB`],
      ['failed scrapes', big.failures ? `${big.failures} (${big.firstError})` : '0'],
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

export function renderReport(run) {
  const { options, machine, versions, loadTool, skipped, compare, size, concurrency, keys, big, cpuProfile, elapsedSec, plan } = run;
  const out = [];
  out.push('# scrapecache benchmark results', '');
  out.push(`Generated by \`node bench/run.mjs${options.argv.length ? ` ${options.argv.join(' ')}` : ''}\` (\`npm run bench\`) on ${machine.date}, in ${Math.round(elapsedSec)} s.`, '');
  out.push('| | |', '| --- | --- |',
    `| machine | ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB.toFixed(0)} GiB, ${machine.kernel} |`,
    `| Node.js | ${machine.node} |`,
    `| other work on the machine | CPUs ${Number.isFinite(machine.busyBefore) ? `${Math.round(machine.busyBefore * 100)}%` : '?'} busy in the 2 s before the run; load average ${machine.loadAverage} before, ${run.loadAverageAfter ?? '?'} after |`,
    ...(run.interference?.seconds ? [`| interference | during the ${Math.round(run.interference.seconds)} s under load, processes outside the bench used ${pct(run.interference.otherShare)} of a core on average (worst point ${pct(run.interference.worst)}); steal ${pct(run.interference.stealShare)} |`] : []),
    ...Object.entries(versions).map(([name, version]) => `| ${name} | ${version} |`),
    `| load | ${loadTool.version}${loadTool.tool === 'wrk' ? ', 1 thread' : ''}, ${options.connections} connections; ${options.rounds} round(s) of ${options.duration} s per point (sweeps ${options.sweepDuration} s), peers in turn, after ${options.warmup} s of warm-up (sweeps 1 s); medians over rounds |`,
    `| CPUs | ${options.pin ? 'servers pinned to CPU 1, load generator and fixture exporter to CPU 0 (taskset)' : 'not pinned'} |`,
    `| workers | ${options.workers === undefined ? 'not set (proxy default), nginx worker_processes 1, reference 1 process' : `${options.workers} (proxy.yaml workers, nginx worker_processes, reference cluster workers)`} |`,
    '');
  if (machine.busyBefore > 0.1 || run.interference?.otherShare > 0.05) {
    out.push(`**The machine was busy** (CPUs ${pct(machine.busyBefore)} busy before the run started; other processes took ${pct(run.interference?.otherShare)} of a core on average under load, up to ${pct(run.interference?.worst)}): other processes competed for the CPUs, so the numbers are noisy; the req/s range across rounds shows how much. CPU seconds per hit are the least disturbed figure.`, '');
  }
  if (options.quick) out.push('**Quick run**: short durations and fewer points; a smoke test, not numbers to quote.', '');
  if (skipped.length) out.push(...skipped.map((s) => `- skipped: ${s}`), '');

  const goals = evaluateGoals({ compare, big: options.sections.includes('memory') ? big : undefined });
  if (goals.length) {
    out.push('## Goals (issue 5)', '', ...goals.map((g) => `- ${goalMark(g)} ${g.line}`), '');
  }
  const peerNames = compare?.[0]?.points.map((p) => p.peer) ?? [];
  if (compare?.length) out.push(...compareSection(compare, peerNames));
  if (size?.length) out.push(...sizeSection(size));
  if (concurrency?.length) out.push(...concurrencySection(concurrency, plan.concurrencyProfile.label));
  if (keys || big) out.push(...memorySection(keys, big));
  if (cpuProfile?.top?.length) out.push(...profileSection(cpuProfile));

  out.push('## How this was measured', '',
    '- Fixture exporter (`bench/fixture-exporter.mjs`): deterministic node_exporter-like text (kube-state-metrics-like above 1 MB); ' +
    'negotiates like promhttp: gzip when Accept-Encoding has gzip, no Vary, `text/plain; version=0.0.4; charset=utf-8`.',
    '- Scrape requests carry Prometheus 2.42\'s `Accept` header and, except in the identity profiles, `Accept-Encoding: gzip` (`bench/wrk-scrape.lua`).',
    '- reference (`bench/reference-server.mjs`): node:http in its own process writing the stored bytes with a scrapecache hit\'s headers (Content-Type, Content-Encoding, Vary, Age, Cache-Status): the runtime\'s limit for the hit path.',
    '- scrapecache: `node dist/src/cli.js --config.file <generated proxy.yaml>`, one route per profile, ttl 24h, warmed before measuring.',
    '- nginx (`bench/nginx.conf.tmpl`) and Varnish (`bench/varnish.vcl.tmpl`): foreground processes on loopback ports with their own temp dirs; one cache entry per URL and gzip-or-not, like scrapecache\'s representations.',
    '- Every peer is checked before it is loaded: status 200, the right content coding, and a body that decodes to the exporter\'s text.',
    '- CPU seconds from /proc/<pid>/stat (utime+stime) of the peer and its descendants, read before and after the load; RSS from /proc/<pid>/status.',
    '');
  return `${out.join('\n')}\n`;
}
