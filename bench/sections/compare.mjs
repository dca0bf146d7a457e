// Peer comparison: every peer on every body profile, side by side in one run.
import { measurePoint } from '../lib/measure.mjs';
import { logPoint } from '../lib/log.mjs';

export async function runCompare(ctx) {
  const results = [];
  for (const profile of ctx.plan.compare) {
    const points = [];
    for (const peer of ctx.peers) {
      const point = await measurePoint(peer, {
        path: ctx.fixture.path(profile.fixture),
        gzip: profile.gzip,
        expected: ctx.expected.get(profile.fixture),
        connections: ctx.options.connections,
        durationSec: ctx.options.duration,
        warmupSec: ctx.options.warmup,
        loadTool: ctx.loadTool,
        options: ctx.options,
      });
      logPoint(profile.id, point);
      points.push(point);
    }
    results.push({ profile, points });
  }
  return results;
}
