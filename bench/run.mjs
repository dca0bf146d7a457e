#!/usr/bin/env node
// The benchmark runner (`npm run bench`): starts the fixture exporter, scrapecache and its peers,
// measures them side by side and writes bench/RESULTS.md. `--help` lists the flags.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseOptions, passOptions, USAGE } from './lib/options.mjs';
import { describeMachine, loadAverage, sampleCpuBusy, interferenceSummary } from './lib/machine.mjs';
import { pickLoadTool } from './lib/load.mjs';
import { startFixture } from './lib/fixture.mjs';
import { request, closeClient } from './lib/http-client.mjs';
import { stopAllChildren, interrupted } from './lib/children.mjs';
import { newestProfile, topSelfTime } from './lib/cpu-profile.mjs';
import { renderReport, evaluateGoals, goalMark, formatBytes } from './lib/report.mjs';
import { startReference } from './peers/reference.mjs';
import { startScrapecache, scrapecacheAvailable, REPO_ROOT } from './peers/scrapecache.mjs';
import { startNginx, nginxAvailable } from './peers/nginx.mjs';
import { startVarnish, varnishAvailable } from './peers/varnish.mjs';
import { runCompare } from './sections/compare.mjs';
import { runSizeSweep } from './sections/size.mjs';
import { runConcurrencySweep } from './sections/concurrency.mjs';
import { runKeySweep, runBigEntries, runRestart } from './sections/memory.mjs';
import { runRedisSection } from './sections/redis.mjs';
import { runSecurity } from './sections/security.mjs';
import { runScale } from './sections/scale.mjs';
import { runMemoryScale } from './sections/memory-scale.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const NODE_EXPORTER_BYTES = 60 * KiB;

/** What to measure; `fixture` names the exporter profile ("b<bytes>", "i" suffix: never gzip). */
function makePlan(options) {
  const node = `b${NODE_EXPORTER_BYTES}`;
  const compare = [
    { id: '10KB-gzip', label: '10 KB gzip (node_exporter-like, 60 KB of text)', fixture: node, gzip: true, goal: true },
    { id: '60KB-identity', label: '60 KB identity (same body, client without Accept-Encoding)', fixture: node, gzip: false, goal: true },
    { id: '1MB-gzip', label: '1 MB of text, gzip', fixture: `b${MiB}`, gzip: true },
  ];
  if (!options.quick) compare.push({ id: '20MB-gzip', label: '20 MB of text, gzip (kube-state-metrics-like)', fixture: `b${20 * MiB}`, gzip: true });
  const sizes = (options.quick ? [KiB, 100 * KiB, MiB] : [KiB, 10 * KiB, 100 * KiB, MiB, 10 * MiB, 20 * MiB])
    .map((bytes) => ({ bytes, label: formatBytes(bytes), fixture: `b${bytes}` }));
  return {
    compare,
    sizes,
    connections: options.quick ? [1, 100] : [1, 10, 100, 1000],
    concurrencyProfile: compare[0],
    keyCounts: [100, 1000, 10_000, 100_000].filter((n) => n <= options.maxKeys),
    keyFixture: `b${KiB}`,
    bigEntries: { count: 1000, fixture: `b${100 * KiB}i` },
    restartEntries: Math.min(1000, options.maxKeys),
    scaleKeys: options.scaleSizes ?? [1000, 10_000, 50_000].filter((n) => n <= options.maxKeys),
    scaleFixture: `b${2 * KiB}i`,
    scaleLoadSec: options.quick ? 2 : 5,
    // Hits without, then with, a browser tab on the status page: rounds taken in turn, seconds each (two refreshes of the tab).
    scaleTabRounds: options.scaleTabRounds ?? (options.quick ? 1 : 5),
    scaleTabSec: options.quick ? 6 : 11,
    memoryScale: {
      counts: [1000, 10_000, 50_000, 100_000].filter((n) => n <= options.maxKeys),
      small: `b${2 * KiB}i`,
      large: { count: 1000, fixture: `b${100 * KiB}i` },
      redisCounts: [10_000, 50_000].filter((n) => n <= options.maxKeys),
      workerCounts: [Math.min(10_000, options.maxKeys)],
    },
  };
}

/** Exporter profiles the selected sections need. */
function fixtureProfiles(plan, sections) {
  const names = new Set();
  if (sections.includes('compare')) plan.compare.forEach((p) => names.add(p.fixture));
  if (sections.includes('security')) names.add(plan.compare[0].fixture);
  if (sections.includes('size')) plan.sizes.forEach((s) => names.add(s.fixture));
  if (sections.includes('concurrency') || sections.includes('redis')) names.add(plan.concurrencyProfile.fixture);
  if (sections.includes('memory')) names.add(plan.keyFixture).add(plan.bigEntries.fixture);
  if (sections.includes('scale')) names.add(plan.scaleFixture);
  if (sections.includes('memory-scale')) names.add(plan.memoryScale.small).add(plan.memoryScale.large.fixture);
  return [...names].map((name) => {
    const [, bytes, identity] = /^b(\d+)(i?)$/.exec(name);
    return { name, bytes: Number(bytes), identityOnly: identity === 'i' };
  });
}

async function startOrSkip(ctx, peers, name, start) {
  try {
    peers.push(await start());
  } catch (error) {
    ctx.skip(`${name}: did not start: ${error.message.split('\n').slice(0, 6).join(' / ')}`);
  }
}

/** Starts the peers that were asked for; a missing one is skipped with a line saying why. */
async function startPeers(ctx, routes) {
  const { options } = ctx;
  const peers = [];
  const want = (name) => options.peers.includes(name);
  const common = { tmpDir: ctx.tmpDir, upstreamPort: ctx.fixture.port, workers: options.serverWorkers, cpus: options.serverCpus };
  if (want('reference')) peers.push(await startReference({ routes, workers: options.serverWorkers, cpus: options.serverCpus }));
  if (want('scrapecache')) {
    if (!scrapecacheAvailable()) {
      ctx.skip('scrapecache: dist/src/cli.js not found (run `npm run build` first)');
    } else {
      try {
        peers.push(await startScrapecache({ ...common, label: `scrapecache-w${options.serverWorkers}`, workers: options.workers, routes, cpuProfDir: ctx.cpuProfDir }));
      } catch (error) {
        ctx.skip(`scrapecache: did not start: ${error.message.split('\n').slice(0, 6).join(' / ')}`);
      }
    }
  }
  if (want('nginx')) {
    if (!nginxAvailable()) ctx.skip('nginx: binary not found (apt-get install nginx)');
    else await startOrSkip(ctx, peers, 'nginx', () => startNginx(common));
  }
  if (want('varnish')) {
    if (!varnishAvailable()) ctx.skip('varnish: varnishd not found (apt-get install varnish)');
    else await startOrSkip(ctx, peers, 'varnish', () => startVarnish(common));
  }
  for (const peer of peers) console.log(`  ${peer.name.padEnd(11)} ${peer.baseUrl}  pid ${peer.pid}${peer.servingProcesses > 1 ? ` (${peer.servingProcesses} workers)` : ''}  ${peer.version}`);
  return peers;
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const started = performance.now();
  const machine = describeMachine();
  machine.busyBefore = await sampleCpuBusy();
  const plan = makePlan(options);
  const tmpDir = await mkdtemp(join(tmpdir(), 'scrapecache-bench-'));
  const skipped = [];
  const ctx = {
    options,
    plan,
    tmpDir,
    skip: (line) => {
      skipped.push(line);
      console.log(`  skipped: ${line}`);
    },
    cpuProfDir: options.cpuProf ? join(REPO_ROOT, 'bench/out/profiles') : undefined,
  };
  const run = { options, machine, plan, skipped, versions: {} };
  try {
    console.log(`scrapecache bench: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, load average ${machine.loadAverage}, CPUs ${Math.round(machine.busyBefore * 100)}% busy before the start`);
    if (machine.busyBefore > 0.1) console.log('  warning: the machine is busy; the numbers will be noisy');
    const loadTool = await pickLoadTool(options.load);
    if (!loadTool) throw new Error('no load generator: install wrk (apt-get install wrk), or autocannon (npm install -g autocannon, or BENCH_AUTOCANNON=/path/to/autocannon)');
    ctx.loadTool = run.loadTool = loadTool;
    if (ctx.cpuProfDir) await mkdir(ctx.cpuProfDir, { recursive: true });

    const profiles = fixtureProfiles(plan, options.sections);
    console.log(`fixture exporter: ${profiles.map((p) => `${p.name}${p.identityOnly ? ' (identity only)' : ''}`).join(', ')}`);
    // On CPU 0 with the load generator when the first pass is pinned; idle on the hit path anyway.
    ctx.fixture = await startFixture({ profiles, cpus: passOptions(options, options.workerCounts[0]).loadCpus });
    ctx.expected = new Map();
    for (const p of profiles) ctx.expected.set(p.name, (await request(ctx.fixture.upstream(p.name))).body);

    const routes = profiles.filter((p) => !p.identityOnly).map((p) => ({ name: p.name, path: ctx.fixture.path(p.name), upstream: ctx.fixture.upstream(p.name) }));
    // The first worker count runs every selected section; each further one the peer comparison.
    run.passes = [];
    for (const [i, count] of options.workerCounts.entries()) {
      const pass = passOptions(options, count);
      const sections = i === 0 ? options.sections.filter((s) => s !== 'memory' && s !== 'scale' && s !== 'memory-scale') : options.sections.filter((s) => s === 'compare');
      if (sections.length === 0) continue;
      const passCtx = { ...ctx, options: pass, cpuProfDir: i === 0 ? ctx.cpuProfDir : undefined };
      const result = { workers: count, options: pass, main: i === 0 };
      run.passes.push(result);
      console.log(`pass: ${describePass(pass)}`);
      console.log('starting peers');
      passCtx.peers = await startPeers(passCtx, routes);
      if (i === 0) for (const peer of passCtx.peers) run.versions[peer.name] = peer.version;
      run.scrapecacheCommand ??= passCtx.peers.find((p) => p.name === 'scrapecache')?.command;
      try {
        if (sections.includes('compare')) {
          console.log(`peer comparison (${options.connections} connections, ${options.duration} s per point)`);
          result.compare = await runCompare(passCtx, { verifyWorkers: count > 1 });
        }
        if (sections.includes('size')) {
          console.log(`body size sweep (${options.sweepDuration} s per point)`);
          result.size = await runSizeSweep(passCtx);
        }
        if (sections.includes('concurrency')) {
          console.log(`concurrency sweep (${options.sweepDuration} s per point)`);
          result.concurrency = await runConcurrencySweep(passCtx);
        }
        if (sections.includes('redis')) {
          console.log('cache.redis: hit path, and misses with Redis against without');
          result.redis = await runRedisSection(passCtx);
        }
      } finally {
        for (const peer of passCtx.peers) await peer.stop();
      }
      if (sections.includes('security')) {
        if (!options.peers.includes('reference') || !options.peers.includes('scrapecache') || !scrapecacheAvailable()) {
          ctx.skip('security: needs the reference and scrapecache peers');
        } else {
          console.log(`listener security: TLS, TLS with basic auth (${options.connections} connections, ${options.duration} s per point)`);
          result.security = await runSecurity(passCtx, routes);
        }
      }
      if (passCtx.cpuProfDir) {
        const path = await newestProfile(passCtx.cpuProfDir);
        if (path) {
          run.cpuProfile = {
            path: path.slice(REPO_ROOT.length),
            top: await topSelfTime(path),
            own: await topSelfTime(path, 15, (f) => f.location.startsWith('dist/src/')),
          };
          console.log('scrapecache top self time:');
          for (const f of run.cpuProfile.top.slice(0, 10)) console.log(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}  ${f.location}`);
        } else {
          ctx.skip('cpu profile: scrapecache wrote no .cpuprofile (it must exit normally on SIGTERM)');
        }
      }
    }
    const main = run.passes.find((p) => p.main);
    Object.assign(run, { compare: main?.compare, size: main?.size, concurrency: main?.concurrency, redis: main?.redis });

    if (options.sections.includes('memory')) {
      if (!options.peers.includes('scrapecache')) {
        ctx.skip('memory: scrapecache not among --peers');
      } else if (!scrapecacheAvailable()) {
        ctx.skip('memory: dist/src/cli.js not found (run `npm run build` first)');
      } else {
        // In the first pass's setting (one process unless --workers starts with another count).
        const memoryCtx = { ...ctx, options: passOptions(options, options.workerCounts[0]) };
        console.log(`memory: RSS against entry count (${plan.keyCounts.join(', ')} keys)`);
        run.keys = await runKeySweep(memoryCtx).catch((error) => ctx.skip(`memory (keys): ${error.message.split('\n')[0]}`) ?? null);
        console.log(`memory: ${plan.bigEntries.count} entries of 100 KiB`);
        run.big = await runBigEntries(memoryCtx).catch((error) => ctx.skip(`memory (1000 x 100 KiB): ${error.message.split('\n')[0]}`) ?? null);
        console.log(`restart: ${plan.restartEntries} entries on disk, start to first hit`);
        run.restart = await runRestart(memoryCtx).catch((error) => ctx.skip(`restart: ${error.message.split('\n')[0]}`) ?? null);
        // The same 1000 x 100 KiB with each further worker count: every worker holds its own copy.
        for (const count of options.workerCounts.slice(1)) {
          const pass = run.passes.find((p) => p.workers === count) ?? (run.passes.push({ workers: count, options: passOptions(options, count), main: false }), run.passes.at(-1));
          console.log(`memory: ${plan.bigEntries.count} entries of 100 KiB, ${count} workers`);
          pass.big = await runBigEntries({ ...ctx, options: pass.options }).catch((error) => ctx.skip(`memory (1000 x 100 KiB, ${count} workers): ${error.message.split('\n')[0]}`) ?? null);
        }
      }
    }
    if (options.sections.includes('scale')) {
      if (!options.peers.includes('scrapecache') || !scrapecacheAvailable()) {
        ctx.skip('scale: needs the scrapecache peer and a build');
      } else if (ctx.loadTool.tool !== 'wrk') {
        ctx.skip('scale: needs wrk (scrapes spread over every key come from bench/wrk-scale.lua)');
      } else {
        console.log(`scale: ${plan.scaleKeys.join(', ')} keys behind one route`);
        run.scale = await runScale({ ...ctx, options: passOptions(options, 1) }).catch((error) => ctx.skip(`scale: ${error.message.split('\n')[0]}`) ?? null);
      }
    }
    if (options.sections.includes('memory-scale')) {
      if (!options.peers.includes('scrapecache') || !scrapecacheAvailable()) {
        ctx.skip('memory-scale: needs the scrapecache peer and a build');
      } else {
        console.log(`memory-scale: ${plan.memoryScale.counts.join(', ')} entries of 2 KiB, ${plan.memoryScale.large.count} of 100 KiB, Redis at ${plan.memoryScale.redisCounts.join(', ') || 'none'}`);
        run.memoryScale = await runMemoryScale({ ...ctx, options: passOptions(options, 1) }).catch((error) => ctx.skip(`memory-scale: ${error.message.split('\n')[0]}`) ?? null);
      }
    }
    run.versions = { ...run.versions, ...peerVersions(options) };
  } finally {
    await ctx.fixture?.stop();
    await stopAllChildren();
    closeClient();
    await rm(tmpDir, { recursive: true, force: true });
  }

  run.elapsedSec = (performance.now() - started) / 1000;
  run.loadAverageAfter = loadAverage();
  run.interference = interferenceSummary();
  const out = resolve(REPO_ROOT, options.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, renderReport(run));
  const goals = evaluateGoals({ passes: run.passes, big: options.sections.includes('memory') ? run.big : undefined });
  if (goals.length) console.log('goals:');
  for (const goal of goals) console.log(`  ${goalMark(goal)} ${goal.line}`);
  if (run.interference.seconds) console.log(`other processes used ${(run.interference.otherShare * 100).toFixed(1)}% of a core on average during the measurements (worst point ${(run.interference.worst * 100).toFixed(0)}%), steal ${(run.interference.stealShare * 100).toFixed(1)}%`);
  console.log(`wrote ${out} (${Math.round(run.elapsedSec)} s)`);
  return 0;
}

/** One line on a pass's setting, for the console. */
function describePass(pass) {
  return pass.serverWorkers === 1
    ? `one process per server${pass.pin ? ', servers pinned to CPU 1, load to CPU 0' : ', not pinned'}`
    : `${pass.serverWorkers} workers (scrapecache workers: ${pass.serverWorkers}, nginx worker_processes ${pass.serverWorkers}, reference ${pass.serverWorkers} cluster workers, Varnish as it is), not pinned`;
}

/** Versions of peers that are installed, measured or not, for the results header. */
function peerVersions(options) {
  const versions = {};
  const sc = options.peers.includes('scrapecache') && scrapecacheAvailable();
  if (sc) versions.scrapecache = sc.version;
  const nginx = options.peers.includes('nginx') && nginxAvailable();
  if (nginx) versions.nginx = `nginx ${nginx.version}`;
  const varnish = options.peers.includes('varnish') && varnishAvailable();
  if (varnish) versions.varnish = varnish.version;
  return versions;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    if (interrupted()) {
      console.error(`bench: interrupted by ${interrupted()}; no results written`);
      process.exit(130);
    }
    console.error(`bench: ${error.stack ?? error}`);
    process.exit(1);
  },
);
