// Retakes docs/status-page.png and docs/landing-page.png from the demo, as a newcomer sees it
// after `npm run demo`: the demo program (built) on its own ports, then Debian's chromium
// headless through playwright-core (never a browser download).
//   usage: npm run build && node scripts/screenshots.mjs
// The demo's ports (9279, 9280, 9181) must be free; SCRAPECACHE_DEMO_* move them as for the demo.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const demo = spawn(process.execPath, ['dist/src/demo/demo.js'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
const stopDemo = () => new Promise((resolve) => {
  if (demo.exitCode !== null) return resolve(undefined);
  demo.once('exit', resolve);
  demo.kill('SIGINT');
});

try {
  // The demo prints its table, then the URLs it keeps serving.
  const out = await new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`the demo printed no status page line within 60 s:\n${text}`)), 60_000);
    demo.stdout.setEncoding('utf8').on('data', (chunk) => {
      text += chunk;
      process.stdout.write(chunk);
      if (/^ {2}status page\s+http:\/\/\S+$/m.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
    demo.once('exit', (code) => reject(new Error(`the demo exited with ${code}`)));
  });
  const url = (name) => new RegExp(`^  ${name}\\s+(http://\\S+)$`, 'm').exec(out)[1];

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    await page.goto(url('status page'));
    // The page script has run and refreshed the numbers once.
    await page.waitForSelector('#updated:not(:empty)', { timeout: 15_000 });
    await page.screenshot({ path: `${root}docs/status-page.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 520 });
    await page.goto(url('landing page'));
    await page.screenshot({ path: `${root}docs/landing-page.png`, fullPage: true });
    console.log('wrote docs/status-page.png and docs/landing-page.png');
  } finally {
    await browser.close();
  }
} finally {
  await stopDemo();
}
