// Latency as connections grow, on the 10 KB gzip profile, every peer.
import { measurePoint } from '../lib/measure.mjs';
import { logPoint } from '../lib/log.mjs';

export async function runConcurrencySweep(ctx) {
  const profile = ctx.plan.concurrencyProfile;
  const results = [];
  for (const connections of ctx.plan.connections) {
    const points = [];
    for (const peer of ctx.peers) {
      const point = await measurePoint(peer, {
        path: ctx.fixture.path(profile.fixture),
        gzip: profile.gzip,
        expected: ctx.expected.get(profile.fixture),
        connections,
        durationSec: ctx.options.sweepDuration,
        warmupSec: 1,
        loadTool: ctx.loadTool,
        options: ctx.options,
      });
      logPoint(`c=${connections}`, point);
      points.push(point);
    }
    results.push({ connections, points });
  }
  return results;
}
