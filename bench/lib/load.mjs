// Drives load against one URL with wrk (preferred) or autocannon, and measures the CPU seconds
// the server's process tree spent meanwhile.
import { findBinary, versionLine } from './binaries.mjs';
import { startChild, waitForExit, tail } from './children.mjs';
import { cpuByProcess, machineCpuSeconds, selfAndReapedChildrenSeconds } from './proc-stats.mjs';
import { loadAutocannon } from './autocannon-probe.mjs';

const WRK_SCRIPT = new URL('../wrk-scrape.lua', import.meta.url).pathname;
const AUTOCANNON_SCRIPT = new URL('../load-autocannon.mjs', import.meta.url).pathname;

/** Which load generator this machine has: { tool: 'wrk'|'autocannon', version } or null. */
export async function pickLoadTool(preferred) {
  const wrk = findBinary('wrk');
  if (wrk && preferred !== 'autocannon') {
    return { tool: 'wrk', binary: wrk, version: `wrk ${versionLine(wrk, ['-v'], /^wrk (\S+)/m)}` };
  }
  const autocannon = await loadAutocannon();
  if (autocannon) return { tool: 'autocannon', version: `autocannon ${autocannon.version}` };
  return null;
}

/**
 * One load run. Returns req/s, latency percentiles (ms), errors, and the server's CPU seconds
 * per 10 000 responses (from /proc of `serverPid` and its descendants).
 */
export async function runLoad(loadTool, { url, connections, durationSec, gzip, cpus, serverPid, authorization }) {
  const env = { BENCH_GZIP: gzip ? '1' : '0', ...(authorization ? { BENCH_AUTHORIZATION: authorization } : {}) };
  const handle = loadTool.tool === 'wrk'
    ? startChild('wrk', loadTool.binary, ['-t1', `-c${connections}`, `-d${Math.max(1, Math.round(durationSec))}s`, '--timeout', '10s', '-s', WRK_SCRIPT, url], { cpus, env })
    : startChild('autocannon', process.execPath, [AUTOCANNON_SCRIPT, '--url', url, '--connections', String(connections), '--duration', String(Math.max(1, Math.round(durationSec))), '--gzip', gzip ? '1' : '0'], { cpus, env });
  const byProcessBefore = serverPid ? cpuByProcess(serverPid) : new Map();
  const machineBefore = machineCpuSeconds();
  const ownBefore = selfAndReapedChildrenSeconds();
  const code = await waitForExit(handle);
  const byProcessAfter = serverPid ? cpuByProcess(serverPid) : new Map();
  // Per process of the server's tree (a process that started meanwhile counts from zero).
  const byProcess = new Map();
  for (const [pid, after] of byProcessAfter) {
    byProcess.set(pid, { comm: after.comm, root: after.root, seconds: after.seconds - (byProcessBefore.get(pid)?.seconds ?? 0) });
  }
  const serverCpu = [...byProcess.values()].reduce((sum, p) => sum + p.seconds, 0);
  const machineAfter = machineCpuSeconds();
  // What the machine spent beyond the server, the load generator (reaped by now) and this
  // runner: other processes competing for the CPUs, the bench's idle peers, the kernel's own work.
  const otherCpuSeconds = Math.max(0, (machineAfter.busy - machineBefore.busy) - serverCpu - (selfAndReapedChildrenSeconds() - ownBefore));
  const stealSeconds = machineAfter.steal - machineBefore.steal;
  const line = handle.stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (code !== 0 || !line) throw new Error(`${loadTool.tool} failed (exit ${code}) on ${url}\n${tail(handle)}`);
  const r = JSON.parse(line.slice('BENCH_JSON '.length));
  const seconds = r.duration_us / 1e6;
  const errors = r.connect_errors + r.read_errors + r.write_errors + r.status_errors + r.timeouts;
  return {
    requests: r.requests,
    seconds,
    rps: r.requests / seconds,
    mbps: r.bytes / seconds / 1e6,
    p50: r.p50_us / 1000,
    p90: r.p90_us / 1000,
    p99: r.p99_us / 1000,
    p999: r.p999_us / 1000,
    max: r.max_us / 1000,
    errors,
    statusErrors: r.status_errors,
    cpuSeconds: serverCpu,
    cpuByProcess: byProcess,
    otherCpuSeconds,
    stealSeconds,
    cpuPer10k: r.requests > 0 ? (serverCpu / r.requests) * 10_000 : NaN,
  };
}
