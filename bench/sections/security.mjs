// Listener security (issue 11): the hit path over TLS, and over TLS with basic auth, against the
// reference doing the same (https, and a constant-time check of the same Authorization header).
// Both the same bytes as the plain comparison's 10 KB gzip profile.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { measureProfile } from './compare.mjs';
import { logPoint } from '../lib/log.mjs';
import { startReference } from '../peers/reference.mjs';
import { startScrapecache } from '../peers/scrapecache.mjs';

const USER = 'prometheus';
const PASSWORD = 'bench-scrape-secret';

/** A self-signed certificate for 127.0.0.1 and a bcrypt hash (htpasswd's if installed, as operators make it). */
async function material(dir) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.pem'), '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let hash;
  if (existsSync('/usr/bin/htpasswd')) {
    const line = execFileSync('/usr/bin/htpasswd', ['-nbBC', '10', USER, PASSWORD], { encoding: 'utf8' }).trim();
    hash = line.slice(line.indexOf(':') + 1);
  } else {
    hash = await (await import('@node-rs/bcrypt')).hash(PASSWORD, 10);
  }
  return { cert: join(dir, 'tls.pem'), key: join(dir, 'tls.key'), hash };
}

export async function runSecurity(ctx, routes) {
  const profile = ctx.plan.compare[0];
  const { cert, key, hash } = await material(ctx.tmpDir);
  const tlsYaml = `tls_server_config:\n  cert_file: ${cert}\n  key_file: ${key}\n`;
  const authorization = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const setups = [
    { id: 'tls', label: `${profile.label}, over TLS`, web: tlsYaml, basicAuth: undefined },
    { id: 'tls-basic-auth', label: `${profile.label}, over TLS with basic auth`, web: `${tlsYaml}basic_auth_users:\n  ${USER}: '${hash}'\n`, basicAuth: [USER, PASSWORD] },
  ];
  const results = [];
  for (const setup of setups) {
    const peers = [];
    try {
      peers.push(await startReference({ routes, cpus: ctx.options.serverCpus, tls: { cert, key }, basicAuth: setup.basicAuth }));
      peers.push(await startScrapecache({
        tmpDir: ctx.tmpDir, label: `scrapecache-${setup.id}`, routes, cpus: ctx.options.serverCpus,
        webConfig: setup.web, headers: setup.basicAuth ? { authorization } : {},
      }));
      const points = await measureProfile(ctx, peers, profile);
      for (const point of points) logPoint(setup.id, point);
      results.push({ profile: { id: setup.id, label: setup.label, goal: true }, points });
    } finally {
      for (const peer of peers) await peer.stop();
    }
  }
  return results;
}
