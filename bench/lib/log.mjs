// One progress line per measured point.
export function logPoint(label, point) {
  const name = point.peer.padEnd(11);
  if (point.error) {
    console.log(`  ${label.padEnd(16)} ${name} ERROR ${point.error}`);
    return;
  }
  const rps = Math.round(point.rps).toLocaleString('en-US').padStart(8);
  console.log(`  ${label.padEnd(16)} ${name} ${rps} req/s  p50 ${point.p50.toFixed(2).padStart(7)} ms  p99 ${point.p99.toFixed(2).padStart(7)} ms  cpu ${point.cpuPer10k.toFixed(3)} s/10k${point.rounds > 1 ? `  (req/s ${Math.round(point.rpsMin)}–${Math.round(point.rpsMax)})` : ''}${point.problem ? `  !! ${point.problem}` : ''}`);
}

/** Where a peer's connections and CPU went, with workers. */
export function logWorkers(point) {
  const check = point.workersCheck;
  const parts = [];
  if (check) {
    parts.push(`${check.hits}/${check.connections} fresh connections hit, on ${check.servingProcesses}/${check.expectWorkers} workers (${[...check.byPid].map(([pid, n]) => `${pid}: ${n}`).join(', ')})`);
  }
  if (point.processCpu?.length > 1) {
    const total = point.processCpu.reduce((sum, p) => sum + p.seconds, 0);
    parts.push(`CPU ${point.processCpu.map((p) => `${p.pid}${p.root ? '*' : ''} ${total > 0 ? Math.round((p.seconds / total) * 100) : 0}%`).join(' ')}`);
  }
  if (point.memory) parts.push(`RSS ${(point.memory.rss / 2 ** 20).toFixed(1)} MiB in ${point.memory.processes} processes`);
  if (parts.length) console.log(`  ${''.padEnd(16)} ${point.peer.padEnd(11)} ${parts.join('; ')}`);
}
