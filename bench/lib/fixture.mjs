// Starts bench/fixture-exporter.mjs with the profiles a run needs.
import { startChild, stopChild, waitForLine } from './children.mjs';
import { request } from './http-client.mjs';

const SCRIPT = new URL('../fixture-exporter.mjs', import.meta.url).pathname;

/** `profiles`: [{ name, bytes, identityOnly }]. */
export async function startFixture({ profiles, latencyMs = 0, cpus }) {
  const args = [SCRIPT, '--port', '0', '--latency', String(latencyMs)];
  for (const p of profiles) args.push('--profile', `${p.name}=${p.bytes}${p.identityOnly ? ':identity' : ''}`);
  const handle = startChild('fixture-exporter', process.execPath, args, { cpus });
  const line = await waitForLine(handle, (l) => l.startsWith('{"port"'), 120_000);
  const { port, profiles: sizes } = JSON.parse(line);
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    port,
    baseUrl,
    sizes,
    upstream: (name) => `${baseUrl}/p/${name}/metrics`,
    path: (name) => `/p/${name}/metrics`,
    stats: async () => JSON.parse((await request(`${baseUrl}/-/stats`)).body.toString()),
    stop: () => stopChild(handle),
  };
}
