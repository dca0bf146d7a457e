// Writes dist/src/build-info.json (or OUT_DIR/build-info.json) with the git revision this build
// came from, which scrapecache_build_info reports (src/build-info.ts). Run by `npm run build`,
// after tsc.   usage: node scripts/write-build-info.mjs [OUT_DIR]
// SCRAPECACHE_REVISION wins: the Docker build passes it as a build argument, its context having
// no .git. Else `git rev-parse HEAD` when this package is the root of its git work tree (not a
// checkout that merely contains it). Else "unknown".
// It also marks the command (cli.js, package.json's "bin") executable when it is there: tsc writes
// it 0644, and `npx scrapecache` from a clone runs the file itself. npm fixes the mode on the way
// when run by hand, but not with CI=true, where the README's `npx scrapecache` then fails with
// "Permission denied".
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const git = (...args) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

function revision() {
  const given = process.env.SCRAPECACHE_REVISION?.trim();
  if (given) return /^[\w.+-]{1,64}$/.test(given) ? given : 'unknown';
  try {
    if (realpathSync(git('rev-parse', '--show-toplevel')) !== realpathSync(root)) return 'unknown';
    return git('rev-parse', 'HEAD');
  } catch {
    return 'unknown';
  }
}

const out = process.argv[2] ?? fileURLToPath(new URL('../dist/src/', import.meta.url));
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'build-info.json'), `${JSON.stringify({ revision: revision() })}\n`);
const command = join(out, 'cli.js');
if (existsSync(command)) chmodSync(command, 0o755);
