/**
 * What this build is, for scrapecache_build_info and --version: the version from package.json
 * and the git revision that `npm run build` wrote beside the compiled code
 * (scripts/write-build-info.mjs). Written at build time, it is known alike from a git checkout,
 * from the npm package and in the Docker image, none of which need git at run time.
 */
import { readFileSync } from 'node:fs';

export interface BuildInfo {
  version: string;
  revision: string;
  nodejsVersion: string;
}

function readJson(url: URL): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(url, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  cached ??= {
    // dist/src/build-info.js -> the package root.
    version: String(readJson(new URL('../../package.json', import.meta.url))?.['version'] ?? 'unknown'),
    revision: String(readJson(new URL('./build-info.json', import.meta.url))?.['revision'] ?? 'unknown'),
    nodejsVersion: process.version,
  };
  return cached;
}
