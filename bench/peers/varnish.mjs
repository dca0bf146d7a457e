// Varnish in front of the fixture exporter, as a foreground varnishd (-F) with its own working
// dir and VCL in a temp dir (never the system service).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, versionLine } from '../lib/binaries.mjs';
import { startChild, stopChild, tail } from '../lib/children.mjs';
import { freePort } from '../lib/ports.mjs';
import { waitForHttp } from '../lib/http-client.mjs';
import { renderTemplate } from '../lib/template.mjs';

const TEMPLATE = new URL('../varnish.vcl.tmpl', import.meta.url).pathname;

export function varnishAvailable() {
  const binary = findBinary('varnishd');
  return binary ? { binary, version: versionLine(binary, ['-V'], /(varnish-[\d.]+)/) } : null;
}

export async function startVarnish({ tmpDir, upstreamPort, cpus, storage = 'malloc,4G' }) {
  const found = varnishAvailable();
  if (!found) return null;
  const dir = join(tmpDir, 'varnish');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const vclFile = join(dir, 'bench.vcl');
  await writeFile(vclFile, await renderTemplate(TEMPLATE, { UPSTREAM_PORT: upstreamPort }));
  const args = [
    '-F', // foreground
    '-n', join(dir, 'work'),
    '-a', `127.0.0.1:${port}`,
    '-f', vclFile,
    '-s', storage,
    '-T', 'none', // no management CLI port
    '-p', 'default_grace=0',
  ];
  // As root varnishd drops privileges into a jail whose user must reach the temp dir; the
  // benchmark needs no jail.
  if (process.getuid?.() === 0) args.unshift('-j', 'none');
  const handle = startChild('varnish', found.binary, args, { cpus });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${baseUrl}/-/nothing`, { alive: () => !handle.exited, timeoutMs: 30_000 });
  } catch (error) {
    await stopChild(handle);
    throw new Error(`varnishd did not start: ${error.message}\n${tail(handle)}`);
  }
  return {
    name: 'varnish',
    version: found.version,
    pid: handle.pid,
    baseUrl,
    handle,
    servingProcesses: 1, // the cache process (its threads serve)
    stop: () => stopChild(handle),
  };
}
