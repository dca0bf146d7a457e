/** The alert rules docs/metrics.md gives operators: valid for promtool, and firing when they should (promtool test rules). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PROMTOOL = '/usr/bin/promtool';
// dist/test/alert-rules.test.js -> the repository root
const root = fileURLToPath(new URL('../../', import.meta.url));

function promtoolMissing(): string | undefined {
  try {
    accessSync(PROMTOOL, constants.X_OK);
    return undefined;
  } catch {
    return `no ${PROMTOOL}: run \`bash .ci/install-e2e.sh\``;
  }
}

/** The YAML block between the alert-rules markers in docs/metrics.md, written beside the promtool test. */
function rulesFromReadme(): string {
  const readme = readFileSync(join(root, 'docs/metrics.md'), 'utf8');
  const match = /<!-- alert-rules:start -->\n```yaml\n([\s\S]*?)```\n<!-- alert-rules:end -->/.exec(readme);
  assert.ok(match, 'docs/metrics.md has a ```yaml block between <!-- alert-rules:start --> and <!-- alert-rules:end -->');
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-rules-'));
  writeFileSync(join(dir, 'rules.yml'), match[1]!);
  copyFileSync(join(root, 'test/fixtures/alert-rules/scrapecache.test.yml'), join(dir, 'scrapecache.test.yml'));
  return dir;
}

function promtool(...args: string[]): void {
  const result = spawnSync(PROMTOOL, args, { encoding: 'utf8' });
  assert.equal(result.status, 0, `promtool ${args.join(' ')}:\n${result.stdout}${result.stderr}`);
}

test("promtool check rules accepts the alert rules", { skip: promtoolMissing() }, () => {
  promtool('check', 'rules', join(rulesFromReadme(), 'rules.yml'));
});

test("the alerts fire for stale copies covering a dead upstream and for a collapsed hit ratio, and not before (promtool test rules)", { skip: promtoolMissing() }, () => {
  promtool('test', 'rules', join(rulesFromReadme(), 'scrapecache.test.yml'));
});
