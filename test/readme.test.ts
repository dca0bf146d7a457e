/**
 * The README cannot drift: the shell blocks it marks `<!-- runnable -->` are run, as written
 * from the repository root, against the shipped proxy.yaml started on loopback with a fake
 * exporter in place of node_exporter and blackbox_exporter. The README's well-known ports
 * (9180, 9181) are mapped to the ports the test got; nothing else is changed. Its YAML examples
 * are checked too (the route by the proxy's own parser, the scrape configs by promtool), and so
 * is every relative link of the README and docs/.
 *
 * `npm ci && npm run build` (the README's build step) is what `npm test` runs after in CI.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../src/config/load.js';
import { startCli, type CliProcess } from './helpers/cli-process.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const PROMTOOL = '/usr/bin/promtool';

/** The shell blocks marked runnable: an HTML comment (invisible on GitHub) right before the fence. */
function runnableBlocks(text: string): string[] {
  return [...text.matchAll(/^<!-- runnable -->\n```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

function fencedBlocks(text: string, language: string): string[] {
  return [...text.matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => m[1]!);
}

/** Runs a script with bash -euo pipefail (and -x, for the failure message) from the repository root. */
function bash(script: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', `set -x\n${script}`], {
      cwd: root,
      env: { ...process.env, SCRAPECACHE_ADMIN_TOKEN: '', npm_config_yes: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout, stderr });
    });
  });
}

const CURL = '/usr/bin/curl';

describe("the README's runnable blocks, against the shipped proxy.yaml", { skip: existsSync(CURL) ? false : `no ${CURL}: run \`bash .ci/install-e2e.sh\`` }, () => {
  let exporter: FakeExporter;
  let proxy: CliProcess;

  before(async () => {
    exporter = await startFakeExporter();
    const dir = mkdtempSync(join(tmpdir(), 'scrapecache-readme-'));
    const shipped = readFileSync(join(root, 'proxy.yaml'), 'utf8');
    // The shipped file with loopback port-0 listeners, the fake exporter as both exporters, and a
    // cache directory of its own; every other line as shipped.
    const config = shipped
      .replace(/^listen: 0\.0\.0\.0:9180$/m, 'listen: 127.0.0.1:0')
      .replace(/^ {2}listen: 127\.0\.0\.1:9181$/m, '  listen: 127.0.0.1:0')
      .replace(/http:\/\/127\.0\.0\.1:(9100|9115)\//g, `${exporter.url}/`)
      .replace(/^ {4}path: cache$/m, `    path: ${join(dir, 'cache')}`);
    assert.notEqual(config, shipped);
    const settings = config.replace(/#.*$/gm, '');
    assert.doesNotMatch(settings, /:9100|:9115|:9180|:9181|path: cache$/m, 'every address of the shipped file was mapped');
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, config);
    proxy = await startCli(file);
  });

  after(async () => {
    proxy?.child.kill('SIGTERM');
    await proxy?.exited;
    await exporter?.close();
  });

  it('has runnable blocks for running the command, seeing it work and the admin calls', () => {
    const blocks = runnableBlocks(readme);
    assert.ok(blocks.length >= 3, `found ${blocks.length}`);
    const all = blocks.join('\n');
    for (const needed of ['npx scrapecache --version', '--check-config', 'localhost:9180/node/metrics', 'localhost:9180/metrics', 'localhost:9181/invalidate', 'localhost:9181/cache', 'localhost:9181/-/reload']) {
      assert.ok(all.includes(needed), `a runnable block runs ${needed}`);
    }
  });

  it('runs every runnable block with bash -euo pipefail, each command succeeding', async () => {
    const scrape = proxy.scrapeUrl.replace('http://', '');
    const admin = proxy.adminUrl.replace('http://', '');
    for (const block of runnableBlocks(readme)) {
      const script = block.replace(/\blocalhost:9180\b/g, scrape).replace(/\blocalhost:9181\b/g, admin);
      assert.doesNotMatch(script, /localhost:\d+/, 'only the ports the test maps');
      // Not spawnSync: the fake exporter answers from this process's event loop.
      const run = await bash(script);
      assert.equal(run.status, 0, `block failed:\n${block}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`);
    }
    // They did what they say: scraped through the proxy, counted it, invalidated and refreshed.
    assert.ok(exporter.count >= 2, `the exporter was fetched ${exporter.count} times`);
  });
});

describe("the README's other promises", () => {
  it('names the Node.js version package.json requires', () => {
    const { engines } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    const version = engines.node.replace(/^>=\s*/, '');
    assert.ok(readme.includes(`Node.js ${version} or newer`), `README says "Node.js ${version} or newer"`);
  });

  it("its route example is a valid proxy.yaml for the proxy's own parser", () => {
    const routes = fencedBlocks(readme, 'yaml').filter((b) => b.startsWith('routes:'));
    assert.ok(routes.length >= 1);
    for (const block of routes) {
      const config = parseConfig(block, 'README.md');
      assert.ok(config.routes.length >= 1);
    }
  });

  it('its Prometheus scrape configs pass promtool check config', { skip: existsSync(PROMTOOL) ? false : `no ${PROMTOOL}: run \`bash .ci/install-e2e.sh\`` }, () => {
    accessSync(PROMTOOL, constants.X_OK);
    const blocks = fencedBlocks(readme, 'yaml').filter((b) => b.startsWith('scrape_configs:'));
    assert.ok(blocks.length >= 2);
    const dir = mkdtempSync(join(tmpdir(), 'scrapecache-readme-prom-'));
    for (const [i, block] of blocks.entries()) {
      const file = join(dir, `prometheus-${i}.yml`);
      writeFileSync(file, block);
      const run = spawnSync(PROMTOOL, ['check', 'config', '--syntax-only', file], { encoding: 'utf8' });
      assert.equal(run.status, 0, `${block}\n${run.stdout}${run.stderr}`);
    }
  });
});

/** GitHub's heading anchors: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = !fence && /^#{1,6} (.*)$/.exec(line);
    if (m) out.add(m[1]!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return out;
}

describe('links', () => {
  const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  for (const page of pages) {
    it(`every relative link of ${page} reaches a file, and its #anchor a heading there`, () => {
      const text = readFileSync(join(root, page), 'utf8');
      const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
      if (page === 'README.md') assert.ok(links.length > 0);
      for (const link of links) {
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? join(root, page) : resolve(dirname(join(root, page)), path);
        assert.ok(existsSync(target), `${page}: ${link} -> ${target} is missing`);
        if (anchor !== undefined && target.endsWith('.md')) {
          assert.ok(anchors(readFileSync(target, 'utf8')).has(anchor), `${page}: ${link}: no heading gives #${anchor}`);
        }
      }
    });
  }
});
