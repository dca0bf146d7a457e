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
