#!/usr/bin/env node
// Paired A/B of CPU per hit on a busy machine: servers loaded in turn for many short rounds, and
// the median of each round's ratio to the first server (a disturbance hits one round of both
// rather than all of one). 10 KB gzip node_exporter-like body, 50 connections, servers on CPU 1,
// wrk and the fixture exporter on CPU 0. After `npm run build`:
//
//   node bench/pair-ab.mjs [--plain] [--rounds 15] [--seconds 2] [--cpu-prof DIR] ref sc [sc:FLAGS ...]
//
// `ref`: bench/reference-server.mjs (https unless --plain); `sc`: scrapecache with a
// tls_server_config (none with --plain) and its usual node flags; `sc:F1,F2`: with node flags
// F1 F2 instead (`sc:none`: without any). --cpu-prof DIR writes each server's profile to DIR/N-NAME.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stopAllChildren } from './lib/children.mjs';
import { startFixture } from './lib/fixture.mjs';
import { closeClient, request, scrapeHeaders } from './lib/http-client.mjs';
import { pickLoadTool, runLoad } from './lib/load.mjs';
import { startReference } from './peers/reference.mjs';
import { startScrapecache } from './peers/scrapecache.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    plain: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '15' },
    seconds: { type: 'string', default: '2' },
    'cpu-prof': { type: 'string' },
  },
});
const variants = positionals.length ? positionals : ['ref', 'sc'];
const dir = await mkdtemp(join(tmpdir(), 'scrapecache-pair-ab-'));
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const quartile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.floor(q * xs.length)];
try {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'tls.key'),
    '-out', join(dir, 'tls.pem'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const tls = values.plain ? undefined : { cert: join(dir, 'tls.pem'), key: join(dir, 'tls.key') };
  const webConfig = tls && `tls_server_config:\n  cert_file: ${tls.cert}\n  key_file: ${tls.key}\n`;
  const fixture = await startFixture({ profiles: [{ name: 'b61440', bytes: 61440 }], cpus: '0' });
  const routes = [{ name: 'node', path: fixture.path('b61440'), upstream: fixture.upstream('b61440') }];
  const tool = await pickLoadTool();
  const servers = [];
  for (const variant of variants) {
    const [kind, flags] = variant.split(':');
    const cpuProfDir = values['cpu-prof'] && join(values['cpu-prof'], `${servers.length}-${kind}`);
    if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
    let server;
    if (kind === 'ref') server = await startReference({ routes, cpus: '1', tls, cpuProfDir });
    else if (kind === 'sc') {
      const nodeFlags = flags === undefined ? {} : { nodeFlags: flags === 'none' ? [] : flags.split(',') };
      server = await startScrapecache({ tmpDir: dir, label: `sc-${servers.length}`, routes, cpus: '1', cpuProfDir, webConfig, ...nodeFlags });
    } else throw new Error(`unknown server "${variant}": ref, sc or sc:FLAGS`);
    await request(server.baseUrl + routes[0].path, { headers: scrapeHeaders({ gzip: true }) });
    servers.push({ variant, server, runs: [] });
  }
  const load = (s, durationSec) => runLoad(tool, { url: s.server.baseUrl + routes[0].path, connections: 50, durationSec, gzip: true, cpus: '0', serverPid: s.server.pid });
  for (const s of servers) await load(s, 2);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const s of servers) {
      const r = await load(s, Number(values.seconds));
      s.runs.push(r);
      console.log(`round ${round + 1} ${s.variant.padEnd(28)} ${Math.round(r.rps).toString().padStart(6)} req/s  ${r.cpuPer10k.toFixed(3)} CPU s/10k  (others used ${(r.otherCpuSeconds / r.seconds).toFixed(2)} cores)`);
    }
  }
  const [first] = servers;
  for (const s of servers) {
    const line = `${s.variant.padEnd(28)} median CPU s/10k ${median(s.runs.map((r) => r.cpuPer10k)).toFixed(3)}`;
    if (s === first) console.log(line);
    else {
      const ratios = s.runs.map((r, i) => r.cpuPer10k / first.runs[i].cpuPer10k);
      console.log(`${line}, paired ratio to ${first.variant}: median ${median(ratios).toFixed(3)} (quartiles ${quartile(ratios, 0.25).toFixed(3)}-${quartile(ratios, 0.75).toFixed(3)})`);
    }
  }
  for (const s of servers) await s.server.stop();
  await fixture.stop();
} finally {
  await stopAllChildren();
  closeClient();
  await rm(dir, { recursive: true, force: true });
}
