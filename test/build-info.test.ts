/** scrapecache_build_info's revision: written at build time, so it is known from git, npm and the image alike. */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// dist/test/build-info.test.js -> the repository root
const root = fileURLToPath(new URL('../../', import.meta.url));
const script = join(root, 'scripts/write-build-info.mjs');

function written(scriptPath: string, env: NodeJS.ProcessEnv): string {
  const out = mkdtempSync(join(tmpdir(), 'scrapecache-build-info-'));
  const result = spawnSync(process.execPath, [scriptPath, out], { env, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return (JSON.parse(readFileSync(join(out, 'build-info.json'), 'utf8')) as { revision: string }).revision;
}

const withoutRevision = () => {
  const env = { ...process.env };
  delete env['SCRAPECACHE_REVISION'];
  return env;
};

test('a revision passed in SCRAPECACHE_REVISION (the Docker build argument) is the one written', () => {
  assert.equal(written(script, { ...process.env, SCRAPECACHE_REVISION: '0123abc' }), '0123abc');
});

test('a SCRAPECACHE_REVISION that is not a plain token is written as unknown, never into a label as is', () => {
  assert.equal(written(script, { ...process.env, SCRAPECACHE_REVISION: 'a"b\nc' }), 'unknown');
});

test('from a git checkout the revision is the commit checked out', (t) => {
  let head: string;
  try {
    head = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return t.skip('not a git checkout');
  }
  assert.equal(written(script, withoutRevision()), head);
});

test('outside a git checkout (the image build context, an unpacked tarball) the revision is unknown', () => {
  const copy = mkdtempSync(join(tmpdir(), 'scrapecache-no-git-'));
  mkdirSync(join(copy, 'scripts'));
  copyFileSync(script, join(copy, 'scripts/write-build-info.mjs'));
  assert.equal(written(join(copy, 'scripts/write-build-info.mjs'), withoutRevision()), 'unknown');
});

test('the build leaves the command file executable, so `npx scrapecache` runs it from a clone even with CI=true', () => {
  const out = mkdtempSync(join(tmpdir(), 'scrapecache-build-bin-'));
  writeFileSync(join(out, 'cli.js'), '#!/usr/bin/env node\n', { mode: 0o644 });
  const result = spawnSync(process.execPath, [script, out], { env: { ...process.env, CI: 'true' }, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(statSync(join(out, 'cli.js')).mode & 0o111, 0o111);
  assert.equal(statSync(join(root, 'dist/src/cli.js')).mode & 0o111, 0o111, 'npm run build made dist/src/cli.js executable');
});
