// The bare-Node reference server (bench/reference-server.mjs) in its own process.
import { startChild, stopChild, waitForLine } from '../lib/children.mjs';

const SCRIPT = new URL('../reference-server.mjs', import.meta.url).pathname;

/** `routes`: [{ path, upstream }] — the reference fetches each upstream once at start. */
export async function startReference({ routes, workers = 1, cpus, tls, basicAuth, cpuProfDir, name = 'reference' }) {
  // `cpuProfDir`: run under node --cpu-prof (written there when it exits on SIGTERM).
  const args = [...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []), SCRIPT, '--port', '0', '--workers', String(workers)];
  for (const route of routes) args.push('--route', `${route.path}=${route.upstream}`);
  // `tls`: { cert, key } file paths; `basicAuth`: [user, password].
  if (tls) args.push('--tls-cert', tls.cert, '--tls-key', tls.key);
  if (basicAuth) args.push('--basic-auth', basicAuth.join(':'));
  const handle = startChild('reference', process.execPath, args, { cpus });
  const line = await waitForLine(handle, (l) => l.startsWith('{"port"'), 60_000);
  const { port } = JSON.parse(line);
  return {
    name,
    version: `node:http${tls ? 's' : ''} ${process.version}`,
    pid: handle.pid,
    baseUrl: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    headers: basicAuth ? { authorization: `Basic ${Buffer.from(basicAuth.join(':')).toString('base64')}` } : {},
    handle,
    servingProcesses: workers,
    stop: () => stopChild(handle),
  };
}
