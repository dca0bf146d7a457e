import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** autocannon from the project's node_modules or BENCH_AUTOCANNON, or null. */
export async function loadAutocannon() {
  const candidates = [process.env.BENCH_AUTOCANNON, 'autocannon'].filter(Boolean);
  for (const candidate of candidates) {
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
