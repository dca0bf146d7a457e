#!/usr/bin/env node
// Load from autocannon when wrk is not installed: same requests as bench/wrk-scrape.lua and the
// same one-line summary (BENCH_JSON {...}). autocannon is not a dependency of the project: it is
// found through BENCH_AUTOCANNON (path of its package dir or entry file), a node_modules that
// Node resolves from bench/, or a global install (lib/autocannon-probe.mjs).
import { parseArgs } from 'node:util';
import { loadAutocannon } from './lib/autocannon-probe.mjs';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    gzip: { type: 'string', default: '1' },
  },
});

const autocannon = await loadAutocannon();
if (!autocannon) {
  process.stderr.write('autocannon not found: npm install -g autocannon, or set BENCH_AUTOCANNON=/path/to/autocannon\n');
  process.exit(2);
}

const headers = {
  accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  'user-agent': 'Prometheus/2.42.0',
  'x-prometheus-scrape-timeout-seconds': '10',
};
if (values.gzip !== '0') headers['accept-encoding'] = 'gzip';
if (process.env.BENCH_AUTHORIZATION) headers['authorization'] = process.env.BENCH_AUTHORIZATION;

const result = await autocannon({
  url: values.url,
  connections: Number(values.connections),
  duration: Number(values.duration),
  headers,
});
const ms = (v) => Math.round(v * 1000);
const summary = {
  requests: result.requests.total,
  duration_us: Math.round(result.duration * 1e6),
  bytes: result.throughput.total,
  connect_errors: 0,
  read_errors: result.errors,
  write_errors: 0,
  status_errors: result.non2xx,
  timeouts: result.timeouts,
  p50_us: ms(result.latency.p50),
  p90_us: ms(result.latency.p90),
  p99_us: ms(result.latency.p99),
  p999_us: ms(result.latency.p99_9),
  max_us: ms(result.latency.max),
  mean_us: ms(result.latency.average),
};
process.stdout.write(`BENCH_JSON ${JSON.stringify(summary)}\n`);
