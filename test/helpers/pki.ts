/** A throwaway PKI made by openssl for listener TLS tests: CAs, server and client certificates. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const OPENSSL = '/usr/bin/openssl';
export const HTPASSWD = '/usr/bin/htpasswd';
export const missingTools = [OPENSSL, HTPASSWD].filter((bin) => !existsSync(bin));

export interface Pki {
  dir: string;
  /** Absolute path of a file in dir, e.g. `server.pem`. */
  path(name: string): string;
  read(name: string): string;
  /** Signs another leaf with `ca` (or `other-ca`): NAME.pem and NAME.key. */
  leaf(name: string, cn: string, ext: string, ca?: 'ca' | 'other-ca'): void;
}

/**
 * ca and other-ca; server (127.0.0.1 and localhost) and server2 (the same names, for
 * rotation); client (DNS:prometheus.test), client-intruder (DNS:intruder.test), both from ca;
 * client-foreign (DNS:prometheus.test) from other-ca.
 */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-pki-'));
  const ssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const name of ['ca', 'other-ca']) {
    ssl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  }
  const leaf = (name: string, cn: string, ext: string, ca: 'ca' | 'other-ca' = 'ca') => {
    ssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2',
      '-out', `${name}.pem`, '-extfile', `${name}.ext`);
  };
  const server = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
  leaf('server', 'scrapecache-1', server);
  leaf('server2', 'scrapecache-2', server);
  leaf('client', 'prometheus', 'subjectAltName=DNS:prometheus.test\nextendedKeyUsage=clientAuth\n');
  leaf('client-intruder', 'intruder', 'subjectAltName=DNS:intruder.test\nextendedKeyUsage=clientAuth\n');
  leaf('client-foreign', 'prometheus', 'subjectAltName=DNS:prometheus.test\nextendedKeyUsage=clientAuth\n', 'other-ca');
  return {
    dir,
    path: (name) => join(dir, name),
    read: (name) => readFileSync(join(dir, name), 'utf8'),
    leaf,
  };
}

/** A bcrypt hash as `htpasswd -nBC COST` writes it (Apache's $2y$). */
export function htpasswdHash(password: string, cost = 10): string {
  const line = execFileSync(HTPASSWD, ['-nbBC', String(cost), 'user', password], { encoding: 'utf8' }).trim();
  return line.slice(line.indexOf(':') + 1);
}
