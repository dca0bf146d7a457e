// Command-line flags (and BENCH_* environment variables) of bench/run.mjs.
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { findBinary } from './binaries.mjs';

export const ALL_SECTIONS = ['compare', 'size', 'concurrency', 'memory', 'security', 'redis', 'scale', 'memory-scale'];
export const ALL_PEERS = ['reference', 'scrapecache', 'nginx', 'varnish'];

export const USAGE = `usage: npm run bench -- [flags]        (or: node bench/run.mjs [flags] after npm run build)

  --quick               smoke run: short durations, fewer points (about 2 minutes)
  --duration S          seconds of load per round in the peer comparison; the size and
                        concurrency sweeps use half of it          [BENCH_DURATION, default 2]
  --rounds N            rounds per point, peers taken in turn; each metric is the median
                                                                   [BENCH_ROUNDS, default 5; quick 1]
  --sections LIST       compare,size,concurrency,memory,security,redis,scale,memory-scale
                                                                   [BENCH_SECTIONS, default all]
  --peers LIST          reference,scrapecache,nginx,varnish        [BENCH_PEERS, default all found]
  --connections N       connections for the comparison and size sweep [BENCH_CONNECTIONS, default 50]
  --workers LIST        worker counts, one pass per count [BENCH_WORKERS, default 1,2]. The first
                        count runs every selected section; each further count runs the peer
                        comparison again. A count N > 1 writes "workers: N" into proxy.yaml, runs
                        nginx with worker_processes N and the reference with N cluster workers
                        (Varnish is unchanged: it is multi-threaded) and pins nothing; 1 leaves
                        workers out of proxy.yaml (the proxy's default, one process)
  --max-keys N          largest entry count of the memory sweep   [BENCH_MAX_KEYS, default 100000; quick 10000]
  --scale-sizes LIST    key counts of the scale section, e.g. 1000,50000
  --scale-tab-rounds N  rounds without and with the browser tab per size (default 5; 1 with --quick)
                                                 [BENCH_SCALE_SIZES, default 1000,10000,50000]
  --load wrk|autocannon load generator (default: wrk if installed) [BENCH_LOAD]
  --no-pin              do not pin servers to CPU 1 and the load generator to CPU 0 (a pass
                        with more than one worker is never pinned)
  --cpu-prof            run scrapecache under --cpu-prof; writes bench/out/profiles/ and adds the
                        top self-time functions to the results; the security section profiles
                        both TLS servers (bench/out/profiles/<setting>-<server>/)
  --out FILE            results file [BENCH_OUT, default bench/RESULTS.md; quick: bench/out/RESULTS-quick.md]
  --help`;

function list(value, allowed, what) {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item)) throw new Error(`unknown ${what} "${item}": expected some of ${allowed.join(',')}`);
  }
  return items;
}

function positive(value, what) {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, got "${value}"`);
  return n;
}

export function parseOptions(argv, env = process.env) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      sections: { type: 'string' },
      peers: { type: 'string' },
      connections: { type: 'string' },
      workers: { type: 'string' },
      'max-keys': { type: 'string' },
      'scale-sizes': { type: 'string' },
      'scale-tab-rounds': { type: 'string' },
      load: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const quick = values.quick || env.BENCH_QUICK === '1';
  const duration = positive(values.duration ?? env.BENCH_DURATION ?? 2, '--duration');
  const workersValue = values.workers ?? env.BENCH_WORKERS ?? '1,2';
  const workerCounts = [...new Set(String(workersValue).split(',').map((s) => s.trim()).filter(Boolean).map((s) => Math.floor(positive(s, '--workers'))))];
  if (workerCounts.length === 0) throw new Error('--workers needs at least one count, e.g. 1,2');
  const scaleValue = values['scale-sizes'] ?? env.BENCH_SCALE_SIZES;
  const scaleSizes = scaleValue === undefined ? undefined : [...new Set(String(scaleValue).split(',').map((s) => s.trim()).filter(Boolean).map((s) => Math.floor(positive(s, '--scale-sizes'))))].sort((a, b) => a - b);
  if (scaleSizes?.length === 0) throw new Error('--scale-sizes needs at least one key count, e.g. 1000,50000');
  const load = values.load ?? env.BENCH_LOAD;
  if (load !== undefined && load !== 'wrk' && load !== 'autocannon') throw new Error(`--load must be wrk or autocannon, got "${load}"`);
  const cores = availableParallelism();
  // Pinning keeps the load generator off the server's core; with several server processes on a
  // 2-core machine there is nothing to separate.
  const canPin = !values['no-pin'] && cores >= 2 && findBinary('taskset') !== null;
  return {
    help: values.help,
    quick,
    duration,
    rounds: Math.floor(positive(values.rounds ?? env.BENCH_ROUNDS ?? (quick ? 1 : 5), '--rounds')),
    sweepDuration: Math.max(1, Math.round(duration / 2)),
    warmup: Math.max(1, Math.round(quick ? duration / 2 : duration)),
    sections: list(values.sections ?? env.BENCH_SECTIONS ?? ALL_SECTIONS.join(','), ALL_SECTIONS, 'section'),
    peers: list(values.peers ?? env.BENCH_PEERS ?? ALL_PEERS.join(','), ALL_PEERS, 'peer'),
    connections: Math.floor(positive(values.connections ?? env.BENCH_CONNECTIONS ?? 50, '--connections')),
    workerCounts,
    maxKeys: Math.floor(positive(values['max-keys'] ?? env.BENCH_MAX_KEYS ?? (quick ? 10_000 : 100_000), '--max-keys')),
    scaleSizes,
    scaleTabRounds: values['scale-tab-rounds'] === undefined ? undefined : Math.floor(positive(values['scale-tab-rounds'], '--scale-tab-rounds')),
    load,
    canPin,
    cpuProf: values['cpu-prof'],
    out: values.out ?? env.BENCH_OUT ?? (quick ? 'bench/out/RESULTS-quick.md' : 'bench/RESULTS.md'),
    argv,
  };
}

/**
 * Options for one pass of the run: `workers` is what goes into proxy.yaml (undefined for 1: the
 * proxy's default), `serverWorkers` what nginx and the reference get. Only a one-process pass is
 * pinned.
 */
export function passOptions(options, count) {
  const pin = options.canPin && count === 1;
  return {
    ...options,
    workers: count === 1 ? undefined : count,
    serverWorkers: count,
    pin,
    serverCpus: pin ? '1' : undefined,
    loadCpus: pin ? '0' : undefined,
  };
}
