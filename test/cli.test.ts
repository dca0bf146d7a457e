// The command line (SPEC 1), run as operators run it: `node dist/src/cli.js` in a child process,
// configs in temp directories, a fake upstream on loopback, signals sent to the child.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { get } from './helpers/proxy.js';

// dist/test/cli.test.js -> the repository root
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli.js');
// Upper bounds only: a loaded CI machine can take seconds to start node; the happy path takes far less.
const DEADLINE_MS = 20_000;

const children = new Set<ChildProcess>();
const servers: Array<Server | NetServer> = [];
const temps: string[] = [];
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-cli-test-'));
  temps.push(dir);
  return dir;
}

/** Writes proxy.yaml into a fresh temp dir; returns its path. */
function writeConfig(yaml: string, name = 'proxy.yaml'): string {
  const file = join(tempDir(), name);
  writeFileSync(file, yaml);
  return file;
}

const LOOPBACK = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';
const routeYaml = (name: string, path: string, upstream: string) => `  - name: ${name}\n    path: ${path}\n    upstream: ${upstream}\n`;
const VALID = `${LOOPBACK}routes:\n${routeYaml('node', '/node/metrics', 'http://127.0.0.1:9100/metrics')}`;

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnCli(args: string[], options: { cwd?: string } = {}): Running {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: options.cwd ?? tempDir(),
    env: { ...process.env, SCRAPECACHE_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs the CLI to completion (killed after the deadline). */
async function run(args: string[], options: { cwd?: string } = {}) {
  const r = spawnCli(args, options);
  const timer = setTimeout(() => r.child.kill('SIGKILL'), DEADLINE_MS);
  const { code, signal } = await r.exited;
  clearTimeout(timer);
  return { code, signal, stdout: r.stdout(), stderr: r.stderr() };
}

function stderrLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, deadlineMs = DEADLINE_MS): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function logLines(stdout: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return out;
}

interface Proxy extends Running {
  scrape: string;
  admin: string;
}

/** Starts the CLI and waits for "scrapecache listening" to learn the ports. */
async function startCli(args: string[]): Promise<Proxy> {
  const r = spawnCli(args);
  let exited = false;
  void r.exited.then(() => (exited = true));
  const line = await until('the "scrapecache listening" log line', () => {
    if (exited) throw new Error(`scrapecache exited before listening; stderr: ${r.stderr()}`);
    return logLines(r.stdout()).find((l) => l.msg === 'scrapecache listening');
  });
  assert.match(String(line.scrape), /^127\.0\.0\.1:\d+$/);
  assert.match(String(line.admin), /^127\.0\.0\.1:\d+$/);
  return { ...r, scrape: `http://${String(line.scrape)}`, admin: `http://${String(line.admin)}` };
}

async function stopCli(p: Running, signal: NodeJS.Signals = 'SIGTERM') {
  p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), DEADLINE_MS);
  const result = await p.exited;
  clearTimeout(timer);
  return result;
}

/** A fake exporter whose body names the path it was asked for. */
async function startUpstream(): Promise<string> {
  const server = createServer((req, res) => {
    const body = `fake_up{path="${req.url}"} 1\n`;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port that is busy for the rest of the file. */
async function occupiedPort(): Promise<number> {
  const server = createNetServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Distinct ports that were free a moment ago (for tests that cannot learn the ports from the log). */
async function freePorts(n: number): Promise<number[]> {
  const held = Array.from({ length: n }, () => createNetServer());
  await Promise.all(held.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const ports = held.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

describe('--check-config', { concurrency: true }, () => {
  it('exits 0 and says OK for a valid file', async () => {
    const file = writeConfig(VALID);
    const r = await run(['--config.file', file, '--check-config']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${file}: OK (1 route)\n`);
    assert.equal(r.stderr, '');
  });

  it('exits 1 and prints every problem of an invalid file, not just the first', async () => {
    const file = writeConfig(
      'listen: nowhere\nroutes:\n  - name: a\n    path: /a\n    upstream: ftp://h/\n    ttl: 5x\n    bogus: 1\n',
    );
    const r = await run(['--config.file', file, '--check-config']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.deepEqual(stderrLines(r.stderr), [
      `${file}:1:9: listen: invalid listen address "nowhere" (expected host:port, e.g. 0.0.0.0:9180 or [::1]:9180)`,
      `${file}:5:15: routes[0].upstream: upstream must be http:// or https://, got "ftp:"`,
      `${file}:6:10: routes[0].ttl: invalid duration "5x" (expected e.g. 500ms, 30s, 5m, 1h30m, 7d)`,
      `${file}:7:5: unknown key "bogus" in routes[0]`,
      '4 problems found',
    ]);
  });

  it('exits 1 naming the file when it does not exist', async () => {
    const missing = join(tempDir(), 'nope.yaml');
    const r = await run(['--config.file', missing, '--check-config']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*no such file`));
  });
});

describe('choosing the config file', { concurrency: true }, () => {
  for (const [label, args] of [
    ['--config.file F', (f: string) => ['--config.file', f]],
    ['--config.file=F', (f: string) => [`--config.file=${f}`]],
    ['--config F', (f: string) => ['--config', f]],
    ['-c F', (f: string) => ['-c', f]],
  ] as const) {
    it(`reads the file given as ${label}`, async () => {
      const file = writeConfig(`${LOOPBACK}routes:\n${routeYaml('a', '/a', 'http://h/')}${routeYaml('b', '/b', 'http://h/')}`, 'chosen.yaml');
      const r = await run([...args(file), '--check-config']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${file}: OK (2 routes)\n`);
    });
  }

  it('reads ./proxy.yaml from the working directory by default', async () => {
    const file = writeConfig(VALID);
    const r = await run(['--check-config'], { cwd: join(file, '..') });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'proxy.yaml: OK (1 route)\n');
  });

  it('fails naming proxy.yaml when there is no file in the working directory', async () => {
    const r = await run(['--check-config'], { cwd: tempDir() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /proxy\.yaml.*no such file/);
  });
});

describe('informational flags', { concurrency: true }, () => {
  it('prints the package version with --version and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^scrapecache ${version.replace(/\./g, '\\.')}\\b`));
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1);
  });

  it('prints usage naming every flag with --help and exits 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: scrapecache/);
    for (const flag of ['--config.file', '--config', '-c', '--check-config', '--log.level', '--web.listen-address', '--web.admin-listen-address', '--web.config.file', '--version', '--help']) {
      assert.ok(r.stdout.includes(flag), `--help does not mention ${flag}`);
    }
  });

  it('refuses an unknown flag with one line naming it, exit 1', async () => {
    const r = await run(['--bogus']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^scrapecache: .*--bogus/);
  });

  it('refuses a positional argument instead of ignoring it', async () => {
    const r = await run([writeConfig(VALID)]);
    assert.equal(r.code, 1);
    assert.equal(stderrLines(r.stderr).length, 1);
  });

  it('refuses an invalid --log.level naming the valid levels, exit 1', async () => {
    const r = await run(['--config.file', writeConfig(VALID), '--log.level', 'verbose']);
    assert.equal(r.code, 1);
    assert.deepEqual(stderrLines(r.stderr), ['scrapecache: --log.level must be one of trace, debug, info, warn, error']);
  });
});

describe('start-up failures', { concurrency: true }, () => {
  it('exits 1 with file:line:column on stderr when the config is invalid', async () => {
    const file = writeConfig(`${LOOPBACK}routes:\n${routeYaml('a', '/a', 'ftp://h/')}`);
    const r = await run(['--config.file', file]);
    assert.equal(r.code, 1);
    assert.deepEqual(stderrLines(r.stderr), [
      `scrapecache: invalid config: ${file}:7:15: routes[0].upstream: upstream must be http:// or https://, got "ftp:"`,
    ]);
  });

  it('exits 1 with one stderr line naming the address when the scrape port is taken', async () => {
    const port = await occupiedPort();
    const file = writeConfig(`listen: 127.0.0.1:${port}\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n${routeYaml('a', '/a', 'http://h/')}`);
    const r = await run(['--config.file', file]);
    assert.equal(r.code, 1);
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.includes(`127.0.0.1:${port}`), lines[0]);
    assert.match(lines[0]!, /address already in use/);
  });

  it('exits 1 with one stderr line naming the address when the admin port is taken', async () => {
    const port = await occupiedPort();
    const file = writeConfig(`listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:${port}\nroutes:\n${routeYaml('a', '/a', 'http://h/')}`);
    const r = await run(['--config.file', file]);
    assert.equal(r.code, 1);
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.includes(`127.0.0.1:${port}`), lines[0]);
  });
});

describe('a running proxy', { concurrency: true }, () => {
  it('answers /-/healthy and exits 0 on SIGTERM', async () => {
    const p = await startCli(['--config.file', writeConfig(VALID)]);
    const health = await get(`${p.admin}/-/healthy`);
    assert.equal(health.status, 200);
    const { code, signal } = await stopCli(p, 'SIGTERM');
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
  });

  it('exits 0 on SIGINT', async () => {
    const p = await startCli(['--config.file', writeConfig(VALID)]);
    assert.equal((await get(`${p.admin}/-/healthy`)).status, 200);
    const { code, signal } = await stopCli(p, 'SIGINT');
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
  });

  it('logs at the --log.level given on the command line over the file', async () => {
    // The file says error; the flag says info, so the info line "scrapecache listening" appears.
    const file = writeConfig(VALID.replace('routes:', 'log:\n  level: error\nroutes:'));
    const p = await startCli(['--config.file', file, '--log.level', 'info']);
    assert.equal((await stopCli(p)).code, 0);
  });

  it('stays quiet below the --log.level given on the command line', async () => {
    const [scrape, admin] = await freePorts(2);
    const file = writeConfig(`listen: 127.0.0.1:${scrape}\nadmin:\n  listen: 127.0.0.1:${admin}\nlog:\n  level: info\nroutes:\n${routeYaml('a', '/a', 'http://h/')}`);
    const p = spawnCli(['--config.file', file, '--log.level', 'error']);
    await until('/-/healthy', async () => ((await get(`http://127.0.0.1:${admin}/-/healthy`).catch(() => undefined))?.status === 200 ? true : undefined));
    const { code } = await stopCli(p);
    assert.equal(code, 0, p.stderr());
    assert.deepEqual(logLines(p.stdout()).filter((l) => (l.level as number) < 50), []);
  });

  it('adds a route on SIGHUP after the file gained one', async () => {
    const upstream = await startUpstream();
    const file = writeConfig(`${LOOPBACK}routes:\n${routeYaml('old', '/old', `${upstream}/old-metrics`)}`);
    const p = await startCli(['--config.file', file]);
    assert.equal((await get(`${p.scrape}/new`)).status, 404);

    writeFileSync(file, `${LOOPBACK}routes:\n${routeYaml('old', '/old', `${upstream}/old-metrics`)}${routeYaml('new', '/new', `${upstream}/new-metrics`)}`);
    p.child.kill('SIGHUP');
    const res = await until('the new route to answer', async () => {
      const r = await get(`${p.scrape}/new`);
      return r.status === 200 ? r : undefined;
    });
    assert.equal(res.body.toString(), 'fake_up{path="/new-metrics"} 1\n');
    assert.equal((await get(`${p.scrape}/old`)).status, 200);
    assert.equal((await stopCli(p)).code, 0);
  });

  it('keeps serving the old routes when SIGHUP finds a broken file', async () => {
    const upstream = await startUpstream();
    const file = writeConfig(`${LOOPBACK}routes:\n${routeYaml('old', '/old', `${upstream}/old-metrics`)}`);
    const p = await startCli(['--config.file', file]);
    assert.equal((await get(`${p.scrape}/old`)).status, 200);

    writeFileSync(file, `${LOOPBACK}routes:\n${routeYaml('old', '/old', `${upstream}/old-metrics`)}    bogus: true\n${routeYaml('new', '/new', `${upstream}/new-metrics`)}`);
    p.child.kill('SIGHUP');
    const failed = await until('the reload failure to be logged', () => logLines(p.stdout()).find((l) => /reload failed/.test(String(l.msg))));
    assert.match(String(failed.error), /:8:5: unknown key "bogus" in routes\[0\]/);

    const old = await get(`${p.scrape}/old`);
    assert.equal(old.status, 200);
    assert.equal(old.body.toString(), 'fake_up{path="/old-metrics"} 1\n');
    assert.equal((await get(`${p.scrape}/new`)).status, 404);
    assert.equal((await get(`${p.admin}/-/healthy`)).status, 200);
    const { code } = await stopCli(p);
    assert.equal(code, 0);
  });
});

describe('--web.listen-address and --web.admin-listen-address', { concurrency: true }, () => {
  it('override listen and admin.listen from the file, and a reload keeps them without a restart warning', async () => {
    const upstream = await startUpstream();
    const [scrapeTaken, adminTaken] = [await occupiedPort(), await occupiedPort()];
    const file = writeConfig(`listen: 127.0.0.1:${scrapeTaken}\nadmin:\n  listen: 127.0.0.1:${adminTaken}\nroutes:\n${routeYaml('node', '/node', `${upstream}/metrics`)}`);
    const p = await startCli(['--config.file', file, '--web.listen-address', '127.0.0.1:0', '--web.admin-listen-address', '127.0.0.1:0']);
    assert.notEqual(p.scrape, `http://127.0.0.1:${scrapeTaken}`);
    assert.notEqual(p.admin, `http://127.0.0.1:${adminTaken}`);
    assert.equal((await get(`${p.scrape}/node`)).status, 200);
    assert.equal((await get(`${p.admin}/-/healthy`)).status, 200);
    p.child.kill('SIGHUP');
    await until('the reload', () => logLines(p.stdout()).find((l) => l.msg === 'config reloaded'));
    assert.equal(logLines(p.stdout()).filter((l) => /only on restart/.test(String(l.msg))).length, 0, p.stdout());
    assert.equal((await get(`${p.scrape}/node`)).status, 200);
    assert.equal((await stopCli(p)).code, 0);
  });

  it('take :PORT for every address, as Go does, and count for --check-config', async () => {
    const r = await run(['--config.file', writeConfig(VALID), '--check-config', '--web.admin-listen-address', ':9181']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^scrapecache: warning: .*admin.*0\.0\.0\.0:9181/m);
  });

  it('refuse an address that is not host:port, naming the flag, exit 1', async () => {
    for (const [flag, value] of [['--web.listen-address', 'localhost'], ['--web.admin-listen-address', '127.0.0.1:99999']]) {
      const r = await run(['--config.file', writeConfig(VALID), flag!, value!]);
      assert.equal(r.code, 1);
      assert.deepEqual(stderrLines(r.stderr), [`scrapecache: ${flag}: invalid address "${value}" (expected host:port, e.g. 0.0.0.0:9180, :9180 or [::1]:9180)`]);
    }
  });
});

describe('messages that name things', { concurrency: true }, () => {
  it('a reload names the routes it changed (a ttl too), added and removed', async () => {
    const upstream = await startUpstream();
    const file = writeConfig(`${LOOPBACK}routes:\n${routeYaml('a', '/a', `${upstream}/a`)}    ttl: 30s\n${routeYaml('b', '/b', `${upstream}/b`)}${routeYaml('gone', '/gone', `${upstream}/gone`)}`);
    const p = await startCli(['--config.file', file]);
    writeFileSync(file, `${LOOPBACK}routes:\n${routeYaml('a', '/a', `${upstream}/a`)}    ttl: 1m\n${routeYaml('b', '/b', `${upstream}/b`)}${routeYaml('new', '/new', `${upstream}/new`)}`);
    p.child.kill('SIGHUP');
    const line = await until('the reload', () => logLines(p.stdout()).find((l) => l.msg === 'config reloaded'));
    assert.deepEqual(line.changedRoutes, ['a']);
    assert.deepEqual(line.addedRoutes, ['new']);
    assert.deepEqual(line.removedRoutes, ['gone']);
    assert.equal((await stopCli(p)).code, 0);
  });

  it('a missing config file is named without a line and column', async () => {
    const missing = join(tempDir(), 'nope.yaml');
    const r = await run(['--config.file', missing]);
    assert.equal(r.code, 1);
    assert.deepEqual(stderrLines(r.stderr), [`scrapecache: invalid config: ${missing}: cannot read config: no such file`]);
  });

  it('an upstream without a scheme says what was meant', async () => {
    const file = writeConfig(`${LOOPBACK}routes:\n${routeYaml('x', '/x', 'localhost:22100')}`);
    const r = await run(['--config.file', file, '--check-config']);
    assert.equal(r.code, 1);
    assert.equal(
      stderrLines(r.stderr)[0],
      `${file}:7:15: routes[0].upstream: upstream must be an http:// or https:// URL, e.g. "http://localhost:22100/metrics"; got "localhost:22100"`,
    );
  });
});
