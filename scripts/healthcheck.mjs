// The image's HEALTHCHECK: exit 0 when the admin listener answers /-/healthy with 200.
// Node itself does the request because the slim base image has no curl or wget.
// SCRAPECACHE_HEALTHCHECK_URL overrides the URL, for a config whose admin listener is elsewhere,
// or https://127.0.0.1:9181/-/healthy when --web.config.file turns TLS on: the check is over
// loopback, so the certificate is not verified; /-/healthy needs no basic auth. Where the web
// config requires client certificates, SCRAPECACHE_HEALTHCHECK_CERT_FILE and _KEY_FILE name one.
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';

const url = process.env.SCRAPECACHE_HEALTHCHECK_URL || 'http://127.0.0.1:9181/-/healthy';
const certFile = process.env.SCRAPECACHE_HEALTHCHECK_CERT_FILE;
const keyFile = process.env.SCRAPECACHE_HEALTHCHECK_KEY_FILE;

function check() {
  return new Promise((resolve, reject) => {
    const tls = url.startsWith('https:');
    const options = { timeout: 2000, ...(tls ? { rejectUnauthorized: false } : {}) };
    if (tls && certFile && keyFile) Object.assign(options, { cert: readFileSync(certFile), key: readFileSync(keyFile) });
    const req = (tls ? httpsGet : httpGet)(url, options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', reject);
  });
}

try {
  const status = await check();
  if (status !== 200) {
    console.error(`healthcheck: ${url} answered ${status}`);
    process.exit(1);
  }
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
