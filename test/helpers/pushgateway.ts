/**
 * A real Pushgateway (Debian unstable's 1.11, client_golang's promhttp behind its /metrics) on a
 * free loopback port, without a persistence file, accepting UTF-8 names. Push groups to it as
 * protobuf (so native histograms and exemplars survive), then read /metrics with any Accept.
 */
import { Child, freePort, waitFor } from './processes.js';
import { unstableBinary } from './unstable-binaries.js';

export const PROTOBUF_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

export interface Pushgateway {
  url: string;
  /** PUT a length-delimited MetricFamily body as the group `job`; throws unless it is taken. */
  push(job: string, body: Uint8Array): Promise<void>;
  /** GET /metrics with `accept`: status, Content-Type and the body's bytes. */
  scrape(accept: string): Promise<{ status: number; contentType: string; body: Buffer }>;
  stop(): Promise<void>;
}

export async function startPushgateway(): Promise<Pushgateway> {
  const binary = unstableBinary('pushgateway');
  if (!binary) throw new Error('pushgateway is not unpacked: run .ci/install-unstable.sh');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = new Child('pushgateway', binary, [
    `--web.listen-address=127.0.0.1:${port}`,
    '--persistence.file=',
    '--push.enable-utf8-names',
  ]);
  try {
    await waitFor('pushgateway ready', async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), { watch: [child] });
  } catch (err) {
    await child.stop();
    throw err;
  }
  return {
    url,
    async push(job, body) {
      const res = await fetch(`${url}/metrics/job/${encodeURIComponent(job)}`, {
        method: 'PUT',
        headers: { 'content-type': PROTOBUF_TYPE },
        body: Buffer.from(body),
        signal: AbortSignal.timeout(5000),
      });
      if (res.status !== 200 && res.status !== 202) throw new Error(`push refused: ${res.status} ${await res.text()}`);
    },
    async scrape(accept) {
      const res = await fetch(`${url}/metrics`, { headers: { accept }, signal: AbortSignal.timeout(5000) });
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
    },
    async stop() {
      await child.stop();
    },
  };
}
