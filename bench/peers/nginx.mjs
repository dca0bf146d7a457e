// nginx with proxy_cache in front of the fixture exporter, as a foreground process with its own
// prefix, config and cache in a temp dir (never the system service).
import { mkdir, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, versionLine } from '../lib/binaries.mjs';
import { startChild, stopChild, tail } from '../lib/children.mjs';
import { freePort } from '../lib/ports.mjs';
import { waitForHttp } from '../lib/http-client.mjs';
import { renderTemplate } from '../lib/template.mjs';

const TEMPLATE = new URL('../nginx.conf.tmpl', import.meta.url).pathname;

export function nginxAvailable() {
  const binary = findBinary('nginx');
  return binary ? { binary, version: versionLine(binary, ['-v'], /nginx\/(\S+)/) } : null;
}

export async function startNginx({ tmpDir, upstreamPort, workers = 1, cpus }) {
  const found = nginxAvailable();
  if (!found) return null;
  const dir = join(tmpDir, 'nginx');
  await mkdir(dir, { recursive: true });
  // Workers run as "nobody" when nginx starts as root: they must be able to write the cache.
  await chmod(tmpDir, 0o755);
  await chmod(dir, 0o777);
  for (const sub of ['cache', 'proxy_temp', 'client_body', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp']) {
    await mkdir(join(dir, sub), { recursive: true });
    await chmod(join(dir, sub), 0o777);
  }
  const port = await freePort();
  const config = await renderTemplate(TEMPLATE, { DIR: dir, PORT: port, UPSTREAM_PORT: upstreamPort, WORKERS: workers });
  const configFile = join(dir, 'nginx.conf');
  await writeFile(configFile, config);
  const handle = startChild('nginx', found.binary, ['-p', dir, '-c', configFile, '-e', join(dir, 'error.log')], { cpus });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${baseUrl}/-/nothing`, { alive: () => !handle.exited, timeoutMs: 15_000 });
  } catch (error) {
    await stopChild(handle);
    throw new Error(`nginx did not start: ${error.message}\n${tail(handle)}`);
  }
  return {
    name: 'nginx',
    version: `nginx ${found.version}`,
    pid: handle.pid,
    baseUrl,
    handle,
    servingProcesses: workers,
    stop: () => stopChild(handle),
  };
}
