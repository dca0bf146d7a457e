// One point of a benchmark: check that a peer answers the scrape correctly (and from its cache),
// warm it up, then load it.
import { gunzipSync } from 'node:zlib';
import { request, scrapeHeaders } from './http-client.mjs';
import { runLoad } from './load.mjs';

/** One scrape; compares the decoded body with the exporter's text. */
export async function checkScrape(peer, { path, gzip, expected }) {
  const response = await request(peer.baseUrl + path, { headers: scrapeHeaders({ gzip }) });
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

/**
 * Checks, warms and loads one peer on one path. A peer that does not answer 200 is not loaded;
 * the point then carries `error`.
 */
export async function measurePoint(peer, { path, gzip, expected, connections, durationSec, warmupSec, loadTool, options }) {
  // The first scrape may be the miss that fills; the second must be a hit.
  await checkScrape(peer, { path, gzip, expected });
  const check = await checkScrape(peer, { path, gzip, expected });
  const point = { peer: peer.name, connections, wireBytes: check.wireBytes, encoding: check.encoding, cacheStatus: check.cacheStatus, problem: check.problem };
  if (check.status !== 200) return { ...point, error: check.problem };
  const url = peer.baseUrl + path;
  const load = { url, connections, gzip, cpus: options.loadCpus, serverPid: peer.pid };
  if (warmupSec > 0) await runLoad(loadTool, { ...load, durationSec: warmupSec });
  const result = await runLoad(loadTool, { ...load, durationSec });
  if (result.statusErrors > 0) point.problem = `${result.statusErrors} non-2xx responses under load`;
  return { ...point, ...result };
}
