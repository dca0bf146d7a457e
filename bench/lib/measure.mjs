// One point of a benchmark: check that a peer answers the scrape correctly (and from its cache),
// warm it up, then load it.
import { gunzipSync } from 'node:zlib';
import { request, scrapeHeaders } from './http-client.mjs';
import { runLoad } from './load.mjs';
import { noteInterference } from './machine.mjs';
import { memoryOfTree } from './proc-stats.mjs';
import { checkWorkersServe } from './workers-check.mjs';

/** One scrape; compares the decoded body with the exporter's text. */
export async function checkScrape(peer, { path, gzip, expected }) {
  const response = await request(peer.baseUrl + path, { headers: { ...scrapeHeaders({ gzip }), ...peer.headers } });
  const encoding = response.headers['content-encoding'] ?? 'identity';
  const result = {
    status: response.status,
    encoding,
    wireBytes: response.body.length,
    cacheStatus: response.headers['cache-status'] ?? '',
    problem: null,
  };
  if (response.status !== 200) {
    result.problem = `status ${response.status}: ${response.body.toString('utf8').split('\n')[0].slice(0, 200)}`;
  } else if (!gzip && encoding !== 'identity') {
    result.problem = `served ${encoding} to a client without Accept-Encoding`;
  } else {
    let decoded = response.body;
    try {
      if (encoding === 'gzip') decoded = gunzipSync(response.body);
    } catch (error) {
      result.problem = `gzip body does not decode: ${error.message}`;
    }
    if (!result.problem && expected && !decoded.equals(expected)) {
      result.problem = `body differs from the exporter's (${decoded.length} bytes, expected ${expected.length})`;
    }
  }
  return result;
}

function median(values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median of each metric over rounds (not the metrics of the median round), plus the req/s range. */
function combineRounds(rounds) {
  const combined = { rounds: rounds.length, rpsMin: Math.min(...rounds.map((r) => r.rps)), rpsMax: Math.max(...rounds.map((r) => r.rps)) };
  for (const key of ['rps', 'mbps', 'p50', 'p90', 'p99', 'p999', 'max', 'cpuPer10k']) combined[key] = median(rounds.map((r) => r[key]));
  for (const key of ['requests', 'errors', 'statusErrors', 'cpuSeconds', 'otherCpuSeconds', 'seconds']) combined[key] = rounds.reduce((sum, r) => sum + r[key], 0);
  // CPU seconds of each process of the tree over all rounds, the root (primary, master) first.
  const byPid = new Map();
  for (const r of rounds) {
    for (const [pid, p] of r.cpuByProcess ?? []) {
      const sum = byPid.get(pid) ?? { pid, comm: p.comm, root: p.root, seconds: 0 };
      sum.seconds += p.seconds;
      byPid.set(pid, sum);
    }
  }
  combined.processCpu = [...byPid.values()].sort((a, b) => (b.root - a.root) || (a.pid - b.pid));
  return combined;
}

/**
 * Measures every peer on one target: each is checked (a 200 that decodes to the exporter's text,
 * the second scrape a hit) and warmed, then loaded in `rounds` rounds that take the peers in
 * turn, so that a disturbance on the machine lands in one round of one peer rather than in all
 * of one peer's time. Each metric is the median over the rounds. A peer that does not answer 200
 * is not loaded; its point carries `error`.
 */
export async function measurePeers(peers, { path, gzip, expected, connections, durationSec, warmupSec, rounds = 1, loadTool, options, verifyWorkers = false }) {
  const entries = [];
  for (const peer of peers) {
    // The first scrape may be the miss that fills; the second must be a hit.
    await checkScrape(peer, { path, gzip, expected });
    const check = await checkScrape(peer, { path, gzip, expected });
    const point = { peer: peer.name, connections, wireBytes: check.wireBytes, encoding: check.encoding, cacheStatus: check.cacheStatus, problem: check.problem };
    if (check.status !== 200) point.error = check.problem;
    // With workers: every worker process must take connections and answer them from its cache.
    if (verifyWorkers && !point.error && peer.servingProcesses) {
      point.workersCheck = await checkWorkersServe(peer, { path, gzip, expectWorkers: peer.servingProcesses });
      if (!point.workersCheck.ok) point.problem = [point.problem, point.workersCheck.problem].filter(Boolean).join('; ');
    }
    entries.push({ peer, point, load: { url: peer.baseUrl + path, connections, gzip, cpus: options.loadCpus, serverPid: peer.pid, authorization: peer.headers?.authorization }, results: [] });
  }
  const live = entries.filter((e) => !e.point.error);
  if (warmupSec > 0) {
    for (const e of live) await runLoad(loadTool, { ...e.load, durationSec: warmupSec });
  }
  for (let round = 0; round < rounds; round++) {
    for (const e of live) {
      const result = await runLoad(loadTool, { ...e.load, durationSec });
      noteInterference({ seconds: result.seconds, otherCpuSeconds: result.otherCpuSeconds, stealSeconds: result.stealSeconds });
      e.results.push(result);
    }
  }
  // Memory of each peer's whole process tree (primary and workers, master and workers) after its load.
  for (const e of live) e.memory = memoryOfTree(e.peer.pid);
  return entries.map(({ point, results, memory }) => {
    if (point.error) return point;
    const combined = combineRounds(results);
    combined.memory = memory;
    if (combined.statusErrors > 0) point.problem = [point.problem, `${combined.statusErrors} non-2xx responses under load`].filter(Boolean).join('; ');
    return { ...point, ...combined };
  });
}
