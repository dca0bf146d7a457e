#!/usr/bin/env -S node --max-semi-space-size=4
/** Command line (SPEC 1): flags, start, signals; nothing else. */
import { parseArgs } from 'node:util';
import { startApp } from './app.js';
import { buildInfo } from './build-info.js';
import { runPrimary } from './cluster/primary.js';
import type { RunOptions, Running } from './cluster/run-options.js';
import { configFromPrimary, isWorker, runWorker } from './cluster/worker.js';
import { ConfigError, formatProblem, parseConfig, readConfigText } from './config/load.js';
import { applyListenOverrides, type ListenOverrides } from './config/listen-overrides.js';
import { parseListenAddress } from './config/schema.js';
import { configWarnings } from './config/warnings.js';
import { loadWebConfig } from './config/web-config.js';
import { createLogger, type LogLevel } from './log.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

const HELP = `Usage: scrapecache [--config.file FILE] [--web.listen-address HOST:PORT] [--web.admin-listen-address HOST:PORT]
                   [--web.config.file FILE] [--check-config] [--log.level LEVEL]

A caching reverse proxy for Prometheus exporters.

  --config.file FILE   config file (default ./proxy.yaml); aliases --config, -c
  --web.listen-address HOST:PORT
                       scrape listener (overrides listen; ":9180" is every address)
  --web.admin-listen-address HOST:PORT
                       admin listener (overrides admin.listen)
  --web.config.file FILE
                       TLS, basic auth, headers and rate limit for both listeners
                       (exporter-toolkit's web configuration format)
  --check-config       validate the config (and the web config), print every problem, exit 0 or 1
  --log.level LEVEL    trace | debug | info | warn | error (overrides log.level)
  --version            print the version
  --help               print this help

Signals: SIGHUP reloads the config; SIGTERM and SIGINT shut down gracefully.
`;

function die(message: string): never {
  process.stderr.write(`scrapecache: ${message}\n`);
  process.exit(1);
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        'config.file': { type: 'string' },
        config: { type: 'string', short: 'c' },
        'check-config': { type: 'boolean' },
        'web.config.file': { type: 'string' },
        'web.listen-address': { type: 'string' },
        'web.admin-listen-address': { type: 'string' },
        'log.level': { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    die(`${(err as Error).message} (see --help)`);
  }
}

type Flags = ReturnType<typeof parseFlags>;

/** --web.listen-address and --web.admin-listen-address, checked. */
function listenOverridesOf(flags: Flags): ListenOverrides {
  const overrides: ListenOverrides = {};
  for (const [flag, key] of [['web.listen-address', 'listen'], ['web.admin-listen-address', 'adminListen']] as const) {
    const text = flags[flag];
    if (text === undefined) continue;
    const address = parseListenAddress(text);
    if (!address) die(`--${flag}: invalid address "${text}" (expected host:port, e.g. 0.0.0.0:9180, :9180 or [::1]:9180)`);
    overrides[key] = address;
  }
  return overrides;
}

/** The config (from the file, or from the primary in a worker) and the web config; every problem printed, then exit 1. */
async function loadConfigs(file: string, webFile: string | undefined, overrides: ListenOverrides, checkOnly: boolean) {
  try {
    const source = isWorker ? await configFromPrimary() : readConfigText(file);
    const config = applyListenOverrides(parseConfig(source, file), overrides);
    const web = webFile !== undefined ? loadWebConfig(webFile) : undefined;
    return { source, config, web };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (checkOnly) {
      process.stderr.write(`${err.message}\n${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} found\n`);
      process.exit(1);
    }
    // One self-contained line per problem, each naming file:line:column.
    for (const p of err.problems.slice(0, -1)) process.stderr.write(`scrapecache: invalid config: ${formatProblem(p)}\n`);
    die(`invalid config: ${formatProblem(err.problems.at(-1)!)}`);
  }
}

async function main(argv: string[]): Promise<void> {
  const flags = parseFlags(argv);
  if (flags.help) {
    process.stdout.write(HELP);
    return;
  }
  if (flags.version) {
    const build = buildInfo();
    process.stdout.write(`scrapecache ${build.version} (revision ${build.revision}, node ${build.nodejsVersion})\n`);
    return;
  }
  const file = flags['config.file'] ?? flags.config ?? 'proxy.yaml';
  const levelFlag = flags['log.level'];
  if (levelFlag !== undefined && !LEVELS.includes(levelFlag)) die(`--log.level must be one of ${LEVELS.join(', ')}`);
  const overrides = listenOverridesOf(flags);
  const webFile = flags['web.config.file'];
  const { config, source, web } = await loadConfigs(file, webFile, overrides, flags['check-config'] === true);
  if (flags['check-config']) {
    for (const warning of configWarnings(config, web)) process.stderr.write(`scrapecache: warning: ${warning}\n`);
    process.stdout.write(`${file}: OK (${config.routes.length} route${config.routes.length === 1 ? '' : 's'})\n`);
    if (webFile !== undefined) process.stdout.write(`${webFile}: OK\n`);
    return;
  }
  const log = createLogger((levelFlag ?? config.log.level) as LogLevel);
  const webOption = webFile !== undefined ? { webConfigFile: webFile } : {};
  const options: RunOptions = { config, source, file, log, logLevelOverride: levelFlag !== undefined, listenOverrides: overrides, ...webOption };
  await runWithSignals(log, () => {
    if (config.workers === 1) return startApp({ config, log, configFile: file, logLevelOverride: options.logLevelOverride, listenOverrides: overrides, ...webOption });
    return isWorker ? runWorker(options) : runPrimary(options);
  });
}

/**
 * Handlers first, then listen: a signal during start-up must not take the default action
 * (SIGHUP would kill the process, SIGTERM exit without draining). It waits for start-up.
 */
async function runWithSignals(log: RunOptions['log'], start: () => Promise<Running>): Promise<void> {
  let running: Running | undefined;
  let stopSignal: string | undefined;
  let reloadPending = false;
  const onTerm = () => stop('SIGTERM');
  const onInt = () => stop('SIGINT');
  const onHup = () => {
    if (running) void running.reload();
    else reloadPending = true;
  };
  function stop(signal: string): void {
    if (stopSignal !== undefined) return;
    stopSignal = signal;
    if (running) shutDown(running, signal, log);
  }
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  try {
    running = await start();
  } catch (err) {
    die((err as Error).message);
  }
  if (isWorker) {
    // From here its primary decides when it stops (src/cluster/worker.ts); a SIGTERM during start-up still counts.
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    if (stopSignal === 'SIGTERM') shutDown(running, stopSignal, log);
    return;
  }
  if (stopSignal !== undefined) shutDown(running, stopSignal, log);
  else if (reloadPending) void running.reload();
}

function shutDown(running: Running, signal: string, log: RunOptions['log']): void {
  log.info({ signal }, 'shutting down');
  running.close().then(
    () => {
      log.info('stopped');
      log.flush?.();
      process.exit(0);
    },
    (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
}

main(process.argv.slice(2)).catch((err: unknown) => die((err as Error).stack ?? String(err)));
