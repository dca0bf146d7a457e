// The one builder of client TLS options (issue 18) that the fetcher, the pass-through, the
// fresh-connection check and the Redis client share; test/upstream-tls.test.ts drives them end to end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlsClientOptions } from '../src/net/tls-client-options.js';

test('without a tls block the client verifies the upstream certificate and sets nothing else', () => {
  assert.deepEqual(tlsClientOptions(undefined), { rejectUnauthorized: true });
  assert.deepEqual(tlsClientOptions({ insecureSkipVerify: false }), { rejectUnauthorized: true });
});

test('insecure_skip_verify turns verification off; ca, cert, key and server_name pass through as set', () => {
  const ca = Buffer.from('ca');
  const cert = Buffer.from('cert');
  const key = Buffer.from('key');
  assert.deepEqual(tlsClientOptions({ insecureSkipVerify: true }), { rejectUnauthorized: false });
  assert.deepEqual(tlsClientOptions({ ca, cert, key, serverName: 'exporter.internal', insecureSkipVerify: false }), {
    ca,
    cert,
    key,
    servername: 'exporter.internal',
    rejectUnauthorized: true,
  });
});
