/** HTTPS requests to the proxy's listeners, trusting a test PKI, one new connection each. */
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import type { SecureVersion, TLSSocket } from 'node:tls';
import type { Pki } from './pki.js';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** CN of the certificate the server presented. */
  server: string;
}

export interface Ask {
  auth?: [string, string];
  headers?: Record<string, string>;
  client?: 'client' | 'client-intruder' | 'client-foreign';
  maxVersion?: SecureVersion;
}


/** One HTTPS request on a new connection, trusting the test CA. */
export function askTls(pki: Pki, port: number, path: string, options: Ask = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.auth) headers['authorization'] = `Basic ${Buffer.from(options.auth.join(':')).toString('base64')}`;
    let server = '';
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        headers,
        agent: false,
        ca: pki.read('ca.pem'),
        ...(options.client ? { cert: pki.read(`${options.client}.pem`), key: pki.read(`${options.client}.key`) } : {}),
        ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, server }));
        res.on('error', reject);
      },
    );
    req.on('socket', (socket: TLSSocket) => socket.once('secureConnect', () => (server = String(socket.getPeerCertificate().subject?.CN))));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves to the error a refused request ends with. */
export async function refused(answer: Promise<Answer>): Promise<Error> {
  try {
    const a = await answer;
    throw new assert.AssertionError({ message: `expected the connection to be refused, got ${a.status} ${a.body}` });
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err as Error;
  }
}

