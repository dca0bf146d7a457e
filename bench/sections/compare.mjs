// Peer comparison: every peer on every body profile, side by side in one run.
import { measurePeers } from '../lib/measure.mjs';
import { logPoint, logWorkers } from '../lib/log.mjs';

/** Every peer on one body profile, with the comparison's duration, rounds and connections. */
export function measureProfile(ctx, peers, profile, { verifyWorkers = false } = {}) {
  return measurePeers(peers, {
    path: ctx.fixture.path(profile.fixture),
    gzip: profile.gzip,
    expected: ctx.expected.get(profile.fixture),
    connections: ctx.options.connections,
    durationSec: ctx.options.duration,
    warmupSec: ctx.options.warmup,
    rounds: ctx.options.rounds,
    loadTool: ctx.loadTool,
    options: ctx.options,
    verifyWorkers,
  });
}

export async function runCompare(ctx, { verifyWorkers = false } = {}) {
  const results = [];
  for (const profile of ctx.plan.compare) {
    const points = await measureProfile(ctx, ctx.peers, profile, { verifyWorkers });
    for (const point of points) logPoint(profile.id, point);
    if (verifyWorkers) for (const point of points) logWorkers(point);
    results.push({ profile, points });
  }
  return results;
}
