/**
 * Every way the product is started runs node with the same flags: the installed command (the
 * shebang), `npm start`, the Docker image and the benchmark. --max-semi-space-size=4 keeps V8's
 * young generation small: about 20 MiB less RSS once the cache is full (bench/RESULTS.md).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const FLAG = '--max-semi-space-size=4';

test('the scrapecache command, npm start, the image and the benchmark all run node with the same flags', () => {
  assert.equal(read('src/cli.ts').split('\n')[0], `#!/usr/bin/env -S node ${FLAG}`);
  assert.equal(read('dist/src/cli.js').split('\n')[0], `#!/usr/bin/env -S node ${FLAG}`, 'the built entry keeps the shebang');
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts['start']!, new RegExp(`^node ${FLAG} dist/src/cli\\.js `));
  assert.match(read('Dockerfile'), new RegExp(`^ENTRYPOINT \\["node", "${FLAG}", "/app/dist/src/cli\\.js"`, 'm'));
  assert.ok(read('bench/peers/scrapecache.mjs').includes(`'${FLAG}'`), 'the benchmark measures what users run');
});
