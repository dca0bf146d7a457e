import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Where autocannon may be: BENCH_AUTOCANNON (its package dir or entry file), then `autocannon` as
 * Node resolves it from bench/ (a node_modules in the repo or above it, or NODE_PATH; it is not in
 * package.json), then the global install of this node (`npm install -g autocannon`, which puts it
 * in <prefix>/lib/node_modules, a place require() does not look by itself).
 */
export function autocannonCandidates(env = process.env) {
  const globalRoot = join(dirname(dirname(process.execPath)), 'lib', 'node_modules');
  return [env.BENCH_AUTOCANNON, 'autocannon', join(globalRoot, 'autocannon')].filter(Boolean);
}

/** autocannon from the first candidate that loads, with its version, or null. */
export async function loadAutocannon() {
  for (const candidate of autocannonCandidates()) {
    try {
      const require = createRequire(import.meta.url);
      const resolved = require.resolve(candidate);
      const module = (await import(pathToFileURL(resolved).href)).default;
      let version = '?';
      try {
        version = require(require.resolve(`${candidate.replace(/\/$/, '')}/package.json`)).version;
      } catch { /* no package.json beside it */ }
      module.version = version;
      return module;
    } catch { /* next */ }
  }
  return null;
}
