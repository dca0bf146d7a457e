// The image's HEALTHCHECK: exit 0 when the admin listener answers /-/healthy with 200.
// Node itself does the request because the slim base image has no curl or wget.
// SCRAPECACHE_HEALTHCHECK_URL overrides the URL, for a config whose admin listener is elsewhere.
const url = process.env.SCRAPECACHE_HEALTHCHECK_URL || 'http://127.0.0.1:9181/-/healthy';

try {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  if (res.status !== 200) {
    console.error(`healthcheck: ${url} answered ${res.status}`);
    process.exit(1);
  }
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? (err.cause?.message ?? err.message) : err}`);
  process.exit(1);
}
