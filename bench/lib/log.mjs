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
