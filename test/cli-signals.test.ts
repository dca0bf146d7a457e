// Signals during start-up and start-up warnings (issue 8, defects 10 and 12), with the CLI in a
// child process as operators run it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli.js');
const DEADLINE_MS = 20_000;
const children = new Set<ChildProcess>();
const temps: string[] = [];

after(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function writeConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-signals-'));
  temps.push(dir);
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, yaml);
  return file;
}

const routes = 'routes:\n  - name: node\n    path: /node/metrics\n    upstream: http://127.0.0.1:1/metrics\n';

interface Child {
  child: ChildProcess;
  stderr: () => string;
  /** Every log message seen so far. */
  seen: Set<string>;
  /** Resolves when a JSON log line with this msg appears on stdout. */
  logged(msg: string): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(args: string[]): Child {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, SCRAPECACHE_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const seen = new Set<string>();
  const waiters = new Map<string, () => void>();
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue; // --check-config prints plain text
      const msg = (JSON.parse(line) as { msg: string }).msg;
      seen.add(msg);
      waiters.get(msg)?.();
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    stderr: () => stderr,
    seen,
    exited,
    logged: (msg) => (seen.has(msg) ? Promise.resolve() : new Promise((r) => waiters.set(msg, r))),
  };
}

const WORKERS = `listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\n${routes}`;

describe('signals during start-up (defect 12)', () => {
  test('a SIGHUP while the workers start does not kill the process: it reloads once started', async () => {
    const c = start(['--config.file', writeConfig(WORKERS)]);
    await c.logged('primary listening');
    c.child.kill('SIGHUP');
    await c.logged('scrapecache listening');
    await c.logged('config reloaded');
    c.child.kill('SIGTERM');
    assert.deepEqual(await c.exited, { code: 0, signal: null }, c.stderr());
  });

  test('a SIGTERM while the workers start is a clean shutdown once started: exit 0', async () => {
    const c = start(['--config.file', writeConfig(WORKERS)]);
    await c.logged('primary listening');
    c.child.kill('SIGTERM');
    assert.deepEqual(await c.exited, { code: 0, signal: null }, c.stderr());
  });
});

describe('admin listener beyond loopback without a token (defect 10)', () => {
  const exposed = `listen: 127.0.0.1:0\nadmin:\n  listen: 0.0.0.0:0\n  token: ""\n${routes}`;

  test('--check-config warns that the admin listener is reachable without a token, and passes', async () => {
    const c = start(['--config.file', writeConfig(exposed), '--check-config']);
    const { code } = await c.exited;
    assert.equal(code, 0);
    assert.match(c.stderr(), /^scrapecache: warning: admin\.listen 0\.0\.0\.0:0 is reachable beyond loopback and admin\.token is empty/m);
  });

  test('start-up logs the same warning; a loopback admin listener or a token gets none', async () => {
    const c = start(['--config.file', writeConfig(exposed)]);
    await c.logged('scrapecache listening');
    c.child.kill('SIGTERM');
    await c.exited;
    assert.ok([...c.seen].some((m) => /^admin\.listen 0\.0\.0\.0:0 is reachable beyond loopback/.test(m)), [...c.seen].join('\n'));
    for (const quiet of [`listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${routes}`, `listen: 127.0.0.1:0\nadmin:\n  listen: 0.0.0.0:0\n  token: s3cret\n${routes}`]) {
      const q = start(['--config.file', writeConfig(quiet), '--check-config']);
      assert.equal((await q.exited).code, 0);
      assert.doesNotMatch(q.stderr(), /warning/);
    }
  });
});
