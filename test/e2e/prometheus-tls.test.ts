// End to end (SPEC 3.6): Debian's Prometheus scrapes scrapecache over https with a client
// certificate and basic auth, as an exporter behind exporter-toolkit's web config is scraped.
// One job has the right password (up == 1), one a wrong one (up == 0).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeExporter, type FakeExporter } from '../helpers/fake-exporter.js';
import { htpasswdHash, makePki, missingTools, type Pki } from '../helpers/pki.js';
import { askTls } from '../helpers/tls-client.js';
import { canRead, Child, freePort, isExecutable, waitFor } from '../helpers/processes.js';

const prometheus = process.env.SCRAPECACHE_E2E_PROMETHEUS ?? '/usr/bin/prometheus';
const cliPath = process.env.SCRAPECACHE_E2E_CLI ?? fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const missing = [...missingTools, ...(isExecutable(prometheus) ? [] : [prometheus]), ...(canRead(cliPath) ? [] : [cliPath])];
const skip = missing.length > 0 ? `missing ${missing.join(', ')}: run \`bash .ci/install-e2e.sh\` and \`npm run build\`` : false;

let pki: Pki;
let exporter: FakeExporter;
let workDir: string;
const children: Child[] = [];
let ports: { proxy: number; admin: number; prometheus: number };

interface Target {
  labels: Record<string, string>;
  health: string;
  lastError: string;
}

async function promGet(path: string): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${ports.prometheus}${path}`, { signal: AbortSignal.timeout(5000) });
  return (await res.json()) as unknown;
}

before(async () => {
  if (skip) return;
  pki = makePki();
  exporter = await startFakeExporter();
  workDir = await mkdtemp(join(tmpdir(), 'scrapecache-e2e-tls-'));
  ports = { proxy: await freePort(), admin: await freePort(), prometheus: await freePort() };
  const web = join(workDir, 'web.yml');
  await writeFile(
    web,
    `tls_server_config:
  cert_file: ${pki.path('server.pem')}
  key_file: ${pki.path('server.key')}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ${pki.path('ca.pem')}
basic_auth_users:
  prometheus: '${htpasswdHash('scrape-secret')}'
`,
  );
  const proxyConfig = join(workDir, 'proxy.yaml');
  await writeFile(
    proxyConfig,
    `listen: 127.0.0.1:${ports.proxy}
admin:
  listen: 127.0.0.1:${ports.admin}
log:
  level: warn
routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
    ttl: 5s
`,
  );
  const proxy = new Child('scrapecache', process.execPath, [cliPath, '--config.file', proxyConfig, '--web.config.file', web]);
  children.push(proxy);
  await waitFor(
    'scrapecache /-/ready over TLS',
    async () => ((await askTls(pki, ports.admin, '/-/ready', { client: 'client' })).status === 200 ? true : undefined),
    { watch: [proxy] },
  );

  const job = (name: string, password: string) => `  - job_name: ${name}
    scheme: https
    metrics_path: /node/metrics
    tls_config:
      ca_file: ${pki.path('ca.pem')}
      cert_file: ${pki.path('client.pem')}
      key_file: ${pki.path('client.key')}
    basic_auth:
      username: prometheus
      password: ${password}
    static_configs:
      - targets: ['127.0.0.1:${ports.proxy}']
`;
  const prometheusConfig = join(workDir, 'prometheus.yml');
  await writeFile(
    prometheusConfig,
    `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
${job('tls-good', 'scrape-secret')}${job('tls-wrong', 'not-the-password')}`,
  );
  const server = new Child('prometheus', prometheus, [
    `--config.file=${prometheusConfig}`,
    `--storage.tsdb.path=${join(workDir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${ports.prometheus}`,
    '--log.level=warn',
  ]);
  children.push(server);
  await waitFor('Prometheus /-/ready', async () => ((await fetch(`http://127.0.0.1:${ports.prometheus}/-/ready`)).status === 200 ? true : undefined), {
    watch: [server],
  });
});

after(async () => {
  for (const child of [...children].reverse()) await child.stop();
  await exporter?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test('Prometheus scrapes the proxy over https with a client certificate and basic auth: up == 1, and up == 0 with a wrong password', { skip }, async () => {
  const targets = await waitFor(
    'both jobs scraped at least once',
    async () => {
      const body = (await promGet('/api/v1/targets?state=active')) as { data: { activeTargets: Target[] } };
      const byJob = new Map(body.data.activeTargets.map((t) => [t.labels['job'], t]));
      const good = byJob.get('tls-good');
      const wrong = byJob.get('tls-wrong');
      return good?.health === 'up' && wrong?.health === 'down' ? { good, wrong } : undefined;
    },
    { watch: children },
  );
  assert.match(targets.wrong.lastError, /401/);
  const up = async (job: string) => {
    const body = (await promGet(`/api/v1/query?query=${encodeURIComponent(`up{job="${job}"}`)}`)) as { data: { result: Array<{ value: [number, string] }> } };
    return body.data.result[0]?.value[1];
  };
  assert.equal(await waitFor('up{job="tls-good"} == 1', async () => ((await up('tls-good')) === '1' ? '1' : undefined), { watch: children }), '1');
  assert.equal(await up('tls-wrong'), '0');
  // The good job's scrapes reached the exporter through the cache: once per TTL, not once a second.
  assert.ok(exporter.count >= 1 && exporter.count <= 3, `exporter fetched ${exporter.count} times`);
});
