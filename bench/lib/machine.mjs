// What the results were measured on.
import { readFileSync } from 'node:fs';
import os from 'node:os';

export function describeMachine() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) cpuModel = match[1].trim();
  } catch { /* not Linux */ }
  return {
    cpuModel,
    cores: os.availableParallelism(),
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage: loadAverage(),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

/** 1, 5 and 15 minute load averages. */
export function loadAverage() {
  return os.loadavg().map((n) => n.toFixed(2)).join(' ');
}

function cpuTimes() {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const values = fields.map(Number);
  const idle = values[3] + (values[4] ?? 0); // idle + iowait
  return { idle, total: values.reduce((a, b) => a + b, 0) };
}

/** Share of all CPUs that was busy over the next `ms` milliseconds (Linux /proc/stat), or NaN. */
export async function sampleCpuBusy(ms = 2000) {
  try {
    const before = cpuTimes();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const after = cpuTimes();
    const total = after.total - before.total;
    return total > 0 ? 1 - (after.idle - before.idle) / total : NaN;
  } catch {
    return NaN;
  }
}

const interference = { seconds: 0, otherCpuSeconds: 0, stealSeconds: 0, worst: 0 };

/** Adds one load run's wall time and the CPU time others took meanwhile. */
export function noteInterference({ seconds, otherCpuSeconds, stealSeconds }) {
  interference.seconds += seconds;
  interference.otherCpuSeconds += otherCpuSeconds;
  interference.stealSeconds += stealSeconds;
  interference.worst = Math.max(interference.worst, otherCpuSeconds / seconds);
}

/** Totals over the run: other processes' CPU and steal, as shares of one core. */
export function interferenceSummary() {
  const { seconds, otherCpuSeconds, stealSeconds, worst } = interference;
  return { seconds, otherShare: seconds ? otherCpuSeconds / seconds : NaN, stealShare: seconds ? stealSeconds / seconds : NaN, worst };
}
