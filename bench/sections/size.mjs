// How hit throughput falls as the body grows: reference and scrapecache, identity bodies so the
// size on the wire is the size in the table.
import { measurePeers } from '../lib/measure.mjs';
import { logPoint } from '../lib/log.mjs';

export async function runSizeSweep(ctx) {
  const peers = ctx.peers.filter((p) => p.name === 'reference' || p.name === 'scrapecache');
  const results = [];
  for (const size of ctx.plan.sizes) {
    const points = await measurePeers(peers, {
      path: ctx.fixture.path(size.fixture),
      gzip: false,
      expected: ctx.expected.get(size.fixture),
      connections: ctx.options.connections,
      durationSec: ctx.options.sweepDuration,
      warmupSec: 1,
      rounds: ctx.options.rounds,
      loadTool: ctx.loadTool,
      options: ctx.options,
    });
    for (const point of points) logPoint(`size ${size.label}`, point);
    results.push({ size, points });
  }
  return results;
}
