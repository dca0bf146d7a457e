// A redis-server for the bench (Debian's /usr/bin/redis-server or REDIS_SERVER): a free loopback
// port, its own directory, no persistence, as the tests run it.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, versionLine } from '../lib/binaries.mjs';
import { startChild, stopChild, waitForLine } from '../lib/children.mjs';
import { freePort } from '../lib/ports.mjs';

export function redisAvailable() {
  const binary = process.env.REDIS_SERVER ?? findBinary('redis-server');
  if (!binary) return null;
  return { binary, version: `redis-server ${versionLine(binary, ['--version'], /v=(\S+)/)}` };
}

export async function startRedisServer({ tmpDir, cpus }) {
  const found = redisAvailable();
  if (!found) return null;
  const dir = join(tmpDir, 'redis');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const handle = startChild('redis-server', found.binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'notice'],
    { cpus });
  await waitForLine(handle, (l) => l.includes('Ready to accept connections'), 20_000);
  return { url: `redis://127.0.0.1:${port}/0`, port, version: found.version, stop: () => stopChild(handle) };
}
