// Top self-time functions of a V8 .cpuprofile (as written by node --cpu-prof).
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export async function newestProfile(dir) {
  let newest = null;
  for (const name of await readdir(dir).catch(() => [])) {
    if (!name.endsWith('.cpuprofile')) continue;
    const { mtimeMs } = await stat(join(dir, name));
    if (!newest || mtimeMs > newest.mtimeMs) newest = { path: join(dir, name), mtimeMs };
  }
  return newest?.path ?? null;
}

/** node_modules/<package>/..., dist/src/..., or the URL as it is (node:internal/...). */
function shortPath(url) {
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules !== -1) return path.slice(inModules + 1);
  const inDist = path.lastIndexOf('/dist/src/');
  if (inDist !== -1) return path.slice(inDist + 1);
  return path;
}

/** [{ name, location, selfMs, percent }] sorted by self time, `(idle)` left out of the total. */
export async function topSelfTime(path, top = 20, only = () => true) {
  const profile = JSON.parse(await readFile(path, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byFunction = new Map();
  let total = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = nodes.get(id);
    const name = callFrame.functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)') continue;
    const file = shortPath(callFrame.url);
    const location = file ? `${file}:${callFrame.lineNumber + 1}` : '(native)';
    const key = `${name} ${location}`;
    const entry = byFunction.get(key) ?? { name, location, selfMs: 0 };
    entry.selfMs += us / 1000;
    byFunction.set(key, entry);
    total += us / 1000;
  }
  return [...byFunction.values()]
    .filter(only)
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top)
    .map((e) => ({ ...e, percent: (100 * e.selfMs) / total }));
}
