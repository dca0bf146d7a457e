// Latency as connections grow, on the 10 KB gzip profile, every peer.
import { measurePeers } from '../lib/measure.mjs';
import { logPoint } from '../lib/log.mjs';

export async function runConcurrencySweep(ctx) {
  const profile = ctx.plan.concurrencyProfile;
  const results = [];
  for (const connections of ctx.plan.connections) {
    const points = await measurePeers(ctx.peers, {
      path: ctx.fixture.path(profile.fixture),
      gzip: profile.gzip,
      expected: ctx.expected.get(profile.fixture),
      connections,
      durationSec: ctx.options.sweepDuration,
      warmupSec: 1,
      rounds: ctx.options.rounds,
      loadTool: ctx.loadTool,
      options: ctx.options,
    });
    for (const point of points) logPoint(`c=${connections}`, point);
    results.push({ connections, points });
  }
  return results;
}
