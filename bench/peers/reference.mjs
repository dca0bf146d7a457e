// The bare-Node reference server (bench/reference-server.mjs) in its own process.
import { startChild, stopChild, waitForLine } from '../lib/children.mjs';

const SCRIPT = new URL('../reference-server.mjs', import.meta.url).pathname;

/** `routes`: [{ path, upstream }] — the reference fetches each upstream once at start. */
export async function startReference({ routes, workers = 1, cpus }) {
  const args = [SCRIPT, '--port', '0', '--workers', String(workers)];
  for (const route of routes) args.push('--route', `${route.path}=${route.upstream}`);
  const handle = startChild('reference', process.execPath, args, { cpus });
  const line = await waitForLine(handle, (l) => l.startsWith('{"port"'), 60_000);
  const { port } = JSON.parse(line);
  return {
    name: 'reference',
    version: `node:http ${process.version}`,
    pid: handle.pid,
    baseUrl: `http://127.0.0.1:${port}`,
    handle,
    servingProcesses: workers,
    stop: () => stopChild(handle),
  };
}
