// The layout check behind `npm run lint` (issue 18): run as CI runs it, `node
// scripts/check-layout.mjs ROOT`, over small source trees written into temp directories.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/layout-check.test.js -> the repository root
const root = fileURLToPath(new URL('../../', import.meta.url));
const script = join(root, 'scripts/check-layout.mjs');

const temps: string[] = [];
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** Writes FILES (path under the tree -> text) into a fresh temp dir; returns the dir. */
function sourceTree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-layout-test-'));
  temps.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function runCheck(dir: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [script, dir], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** A function whose body spans BODY_LINES lines, braces included. */
function functionOfLines(name: string, bodyLines: number): string {
  const statements = Array.from({ length: bodyLines - 4 }, (_, i) => `  total += ${i};`);
  return [`export function ${name}(): number {`, '  let total = 0;', ...statements, '  return total;', '}', ''].join('\n');
}

const cleanTree = {
  'src/errors.ts': "export class ProxyError extends Error {}\n",
  'src/net/write-text.ts': "import { ProxyError } from '../errors.js';\nexport const wrap = (m: string) => new ProxyError(m);\n",
  'src/cache/store.ts': 'export interface Store { get(key: string): string | undefined }\n',
  'src/cache/scrape-cache.ts': "import type { Store } from './store.js';\nexport class ScrapeCache { constructor(readonly store: Store) {} }\n",
  'src/upstream/fetch-upstream.ts': "import type { Store } from '../cache/store.js';\nexport const fetchInto = (s: Store) => s.get('k');\n",
  'src/server/scrape-listener.ts': "import { ScrapeCache } from '../cache/scrape-cache.js';\nimport { wrap } from '../net/write-text.js';\nexport { ScrapeCache, wrap };\n",
  'src/cli.ts': `import './server/scrape-listener.js';\n${functionOfLines('main', 80)}`,
};

describe('layout check', () => {
  it('passes a tree whose imports run downward and whose functions are at most 80 lines', () => {
    const run = runCheck(sourceTree(cleanTree));
    assert.equal(run.stderr, '');
    assert.equal(run.status, 0);
    assert.match(run.stdout, /no function over 80 lines, no upward import/);
  });

  it('fails naming file:line of a function over 80 lines, an upward import and a sideways one', () => {
    const run = runCheck(
      sourceTree({
        ...cleanTree,
        // line 3: a function whose body is 81 lines
        'src/server/scrape-listener.ts': `import { ScrapeCache } from '../cache/scrape-cache.js';\nexport { ScrapeCache };\n${functionOfLines('handleScrape', 81)}`,
        // line 2: the net helpers reaching up into the server
        'src/net/write-text.ts': "import { ProxyError } from '../errors.js';\nimport { ScrapeCache } from '../server/scrape-listener.js';\nexport const wrap = (m: string) => new ProxyError(m + String(ScrapeCache));\n",
        // line 2: the cache coordinator reaching into its peer, the upstream
        'src/cache/scrape-cache.ts':
          "import type { Store } from './store.js';\nimport { fetchInto } from '../upstream/fetch-upstream.js';\nexport class ScrapeCache { constructor(readonly store: Store) { fetchInto(store); } }\n",
      }),
    );
    assert.equal(run.status, 1, run.stderr);
    const lines = run.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      'src/cache/scrape-cache.ts:2: imports ../upstream/fetch-upstream.js sideways: cache may not import upstream (peers in cache | upstream)',
      'src/net/write-text.ts:2: imports ../server/scrape-listener.js upward: foundation (foundation) may not import listeners (listeners)',
      'src/server/scrape-listener.ts:3: handleScrape is 81 lines long (at most 80): split it into functions named after their jobs',
      'check-layout: 3 violation(s)',
    ]);
  });

  it('names a source file that no layer lists, so a new folder gets a place before it grows', () => {
    const run = runCheck(sourceTree({ ...cleanTree, 'src/scratch/helper.ts': 'export const x = 1;\n' }));
    assert.equal(run.status, 1);
    assert.match(run.stderr, /^src\/scratch\/helper\.ts:1: is in no layer: add it to LAYERS in scripts\/check-layout\.mjs$/m);
  });
});
