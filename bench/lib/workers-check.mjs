// With workers: does every worker process serve hits? Opens batches of fresh connections at once,
// sends one scrape on each, keeps them open and asks /proc which process of the peer's tree holds
// the server side of each. The kernel hands a new connection to whichever worker accepts first
// (scrapecache uses cluster.SCHED_NONE, as nginx's workers share their socket), so one batch can
// land on one worker only; batches repeat until every worker has had connections or `maxBatches`.
import http from 'node:http';
import { scrapeHeaders } from './http-client.mjs';
import { connectionOwners, processTree } from './proc-stats.mjs';

function scrapeOn(agent, url, gzip) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, headers: scrapeHeaders({ gzip }), timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, cacheStatus: res.headers['cache-status'] ?? '', localPort: req.socket.localPort }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

const isHit = (cacheStatus) => /(^|[;\s])hit([;\s]|$)/i.test(cacheStatus);

/**
 * `expectWorkers`: how many processes should take connections (scrapecache and the reference:
 * the children of the primary; nginx: its workers). Returns { connections, hits, notHit: [...],
 * byPid: Map pid -> connections, servingProcesses, expectWorkers, ok, problem }.
 */
export async function checkWorkersServe(peer, { path, gzip, expectWorkers, batch = 16, maxBatches = 8 }) {
  const url = new URL(peer.baseUrl + path);
  const port = Number(url.port);
  const byPid = new Map();
  let connections = 0;
  let hits = 0;
  const notHit = [];
  for (let b = 0; b < maxBatches; b++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: batch, maxFreeSockets: batch });
    try {
      const results = await Promise.all(Array.from({ length: batch }, () => scrapeOn(agent, url, gzip)));
      const owners = connectionOwners(peer.pid, port);
      for (const r of results) {
        connections++;
        if (r.status === 200 && isHit(r.cacheStatus)) hits++;
        else if (notHit.length < 3) notHit.push(`${r.status} "${r.cacheStatus}"`);
        const pid = owners.get(r.localPort) ?? 'unknown';
        byPid.set(pid, (byPid.get(pid) ?? 0) + 1);
      }
    } finally {
      agent.destroy();
    }
    const serving = [...byPid.keys()].filter((pid) => pid !== 'unknown').length;
    if (serving >= expectWorkers) break;
  }
  const servingProcesses = [...byPid.keys()].filter((pid) => pid !== 'unknown').length;
  const problems = [];
  if (hits < connections) problems.push(`${connections - hits} of ${connections} fresh connections not a hit (${notHit.join(', ')})`);
  if (servingProcesses < expectWorkers) problems.push(`connections reached ${servingProcesses} of ${expectWorkers} worker processes`);
  return {
    connections,
    hits,
    byPid,
    servingProcesses,
    expectWorkers,
    treeSize: processTree(peer.pid).length,
    ok: problems.length === 0,
    problem: problems.join('; ') || null,
  };
}
