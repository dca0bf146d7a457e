/**
 * Real replicas: processes of the built CLI (dist/src/cli.js), each on its own loopback ports,
 * all with the same routes and the same Redis. Their JSON log lines are kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface Replica {
  name: string;
  scrape: string;
  admin: string;
  child: ChildProcess;
  logs(): Array<Record<string, unknown>>;
  exited: Promise<void>;
  /** SIGKILL: no shutdown, leases it holds stay until they lapse. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<void>;
}

export interface ReplicaSet {
  replicas: Replica[];
  close(): Promise<void>;
}

/** `yaml` is everything below the listen/admin lines: cache, defaults, routes. */
export async function startReplicas(count: number, yaml: string): Promise<ReplicaSet> {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-replicas-'));
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  level: debug\n${yaml}`);
  const replicas = await Promise.all(Array.from({ length: count }, (_, i) => startReplica(String.fromCharCode(65 + i), file)));
  return {
    replicas,
    async close() {
      await Promise.all(replicas.map((r) => r.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startReplica(name: string, file: string): Promise<Replica> {
  const child = spawn(process.execPath, [cli, '--config.file', file], {
    env: { ...process.env, SCRAPECACHE_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const line of parts) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setInterval(() => {
      const line = lines.find((l) => l['msg'] === 'scrapecache listening');
      if (line) {
        clearInterval(timer);
        resolve(line);
      }
    }, 20);
    void exited.then(() => {
      clearInterval(timer);
      reject(new Error(`replica ${name} exited before listening: ${stderr}`));
    });
  });
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return {
    name,
    scrape: `http://${String(listening['scrape'])}`,
    admin: `http://${String(listening['admin'])}`,
    child,
    logs: () => lines,
    exited,
    kill,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls until check passes (bounded), for states reached by other processes. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
