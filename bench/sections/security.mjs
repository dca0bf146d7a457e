// Listener security (issue 11): the hit path over TLS, and over TLS with basic auth, against the
// reference doing the same (https, and a constant-time check of the same Authorization header).
// Both the same bytes as the plain comparison's 10 KB gzip profile.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
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

/** One TLS connection to `baseUrl` (resuming `session` if given): what was negotiated. */
function handshake(baseUrl, session) {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    let ticket;
    // wrk's side of it: OpenSSL's defaults, no ALPN offered; `rejectUnauthorized: false` as wrk (the certificate is the run's own).
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false, session, servername: undefined }, () => {
      const cipher = socket.getCipher();
      const result = {
        protocol: socket.getProtocol(),
        cipher: cipher.standardName ?? cipher.name,
        group: socket.getEphemeralKeyInfo()?.name ?? '?',
        certificate: socket.getPeerX509Certificate()?.fingerprint256 ?? '?',
        resumed: socket.isSessionReused(),
      };
      // TLS 1.3 sends its tickets after the handshake: wait briefly for one.
      const done = () => {
        socket.end();
        resolve({ ...result, session: ticket });
      };
      if (ticket) done();
      else socket.once('session', () => setImmediate(done));
      setTimeout(done, 500).unref();
    });
    socket.on('session', (s) => { ticket = s; });
    socket.on('error', reject);
  });
}

/**
 * What each server negotiates with an OpenSSL client as wrk is: protocol, cipher suite, key
 * exchange group, certificate, and whether a second connection resumes the first's session.
 */
export async function tlsParameters(peer) {
  const first = await handshake(peer.baseUrl);
  const again = first.session ? await handshake(peer.baseUrl, first.session) : { resumed: false };
  const { session: _, ...rest } = first;
  return { ...rest, ticket: first.session !== undefined, resumption: again.resumed };
}

const describeTls = (t) => `${t.protocol} ${t.cipher} ${t.group}, ${t.ticket ? 'session ticket' : 'no session ticket'}, ${t.resumption ? 'resumes' : 'does not resume'}`;

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
    // With --cpu-prof: both servers profiled, each into its own directory.
    const profDir = async (peer) => {
      if (!ctx.cpuProfDir) return undefined;
      const dir = join(ctx.cpuProfDir, `${setup.id}-${peer}`);
      await mkdir(dir, { recursive: true });
      return dir;
    };
    try {
      peers.push(await startReference({ routes, cpus: ctx.options.serverCpus, tls: { cert, key }, basicAuth: setup.basicAuth, cpuProfDir: await profDir('reference') }));
      peers.push(await startScrapecache({
        tmpDir: ctx.tmpDir, label: `scrapecache-${setup.id}`, routes, cpus: ctx.options.serverCpus,
        webConfig: setup.web, headers: setup.basicAuth ? { authorization } : {}, cpuProfDir: await profDir('scrapecache'),
      }));
      // Same certificate, protocol, cipher suite, group and session resumption on both, or the point says so.
      const params = new Map();
      for (const peer of peers) params.set(peer.name, await tlsParameters(peer));
      const seen = new Set([...params.values()].map((t) => `${t.certificate} ${describeTls(t)}`));
      const points = await measureProfile(ctx, peers, profile);
      for (const point of points) {
        const t = params.get(point.peer);
        if (t) point.tls = describeTls(t);
        if (seen.size > 1) point.problem = [point.problem, 'TLS parameters differ between the peers'].filter(Boolean).join('; ');
        logPoint(setup.id, point);
      }
      console.log(`    TLS: ${[...params].map(([name, t]) => `${name} ${describeTls(t)}`).join(' | ')}${seen.size > 1 ? ' (DIFFER)' : ''}`);
      results.push({ profile: { id: setup.id, label: setup.label, goal: true }, points });
    } finally {
      for (const peer of peers) await peer.stop();
    }
  }
  return results;
}
