/**
 * A real redis-server (Debian's /usr/bin/redis-server) for tests: a free loopback port, its own
 * temporary directory, no persistence (`--save ''`, `--appendonly no`). It can be killed,
 * stopped (SIGSTOP, to make it slow), restarted on the same port, and configured.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER = process.env['REDIS_SERVER'] ?? '/usr/bin/redis-server';

export interface TestRedis {
  readonly port: number;
  /** With `tls` given: the port that speaks TLS (the plain port stays, for control). */
  readonly tlsPort: number | undefined;
  readonly url: string;
  /** Starts it again on the same port after kill() or stop(). */
  start(): Promise<void>;
  /** SIGKILL: connections drop at once, everything it held is gone. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: connections stay open but nothing answers (a slow Redis). */
  pause(): void;
  resume(): void;
  /** Sends one command and resolves to the raw RESP reply text. */
  command(...args: string[]): Promise<string>;
  /** Set after `CONFIG SET requirepass`, so that command() authenticates. */
  password: string | undefined;
  /** Removes the process and its directory. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const resp = (args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/** One command in RESP (after AUTH when a password is set), the reply as text once it has all arrived. */
function send(port: number, args: string[], timeoutMs = 2000, password?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis on ${port}: no answer to ${args[0]} within ${timeoutMs}ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write((password === undefined ? '' : resp(['AUTH', password])) + resp(args)));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      const skip = password === undefined ? 0 : parsedUpTo(reply, 0);
      if (skip !== -1 && parsedUpTo(reply, skip) !== -1) {
        clearTimeout(timer);
        socket.end();
        resolve(reply.slice(skip));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The offset just past one RESP value starting at `at`, or -1 when more bytes are needed. */
function parsedUpTo(reply: string, at: number): number {
  const nl = reply.indexOf('\r\n', at);
  if (nl === -1) return -1;
  const n = Number(reply.slice(at + 1, nl));
  switch (reply[at]) {
    case '$':
      return n < 0 ? nl + 2 : reply.length >= nl + 2 + n + 2 ? nl + 2 + n + 2 : -1;
    case '*': {
      let next = nl + 2;
      for (let i = 0; i < n; i++) {
        next = parsedUpTo(reply, next);
        if (next === -1) return -1;
      }
      return next;
    }
    default:
      return nl + 2;
  }
}

/** `tls`: PEM file paths for the server's certificate, key and the CA it trusts. */
export async function startRedis(options: { tls?: { cert: string; key: string; ca: string } } = {}): Promise<TestRedis> {
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  const tlsArgs = options.tls
    ? ['--tls-port', String(tlsPort), '--tls-cert-file', options.tls.cert, '--tls-key-file', options.tls.key, '--tls-ca-cert-file', options.tls.ca, '--tls-auth-clients', 'no']
    : [];
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-redis-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    const proc = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', ...tlsArgs],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    // Ready once it answers PING; bounded, so a broken install fails the test instead of hanging it.
    const until = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`${REDIS_SERVER} exited with ${proc.exitCode}`);
      try {
        if ((await send(port, ['PING'], 500)).startsWith('+PONG')) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > until) throw new Error(`${REDIS_SERVER} on port ${port} did not answer PING within 10s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function kill(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await exited;
  }

  await start();
  const self: TestRedis = {
    port,
    tlsPort,
    url: `redis://127.0.0.1:${port}/0`,
    start,
    kill,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    password: undefined,
    command: (...args) => send(port, args, 2000, self.password),
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}
