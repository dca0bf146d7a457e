// The one module for host:port text, IPv6 brackets and loopback (issue 18): what the listeners, the
// config warnings and the status page link all decide with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressText, bracketHost, hostHeaderName, hostPort, isLoopback, isWildcardHost, unbracketHost } from '../src/net/host-port.js';
import { configWarnings } from '../src/config/warnings.js';
import { parseConfig } from '../src/config/load.js';

test('loopback is localhost, 127.0.0.0/8 and ::1 in any spelling, bracketed or not, and IPv4-mapped 127.x', () => {
  for (const host of ['localhost', 'LOCALHOST', '127.0.0.1', '127.255.0.9', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.1.2.3', '[::ffff:127.0.0.1]', '::ffff:7f00:1']) {
    assert.equal(isLoopback(host), true, host);
  }
});

test('a name that starts with 127., a mapped non-loopback address and the wildcards are not loopback', () => {
  // The status page's own copy took any "127."-prefixed text for loopback; the config's did not.
  for (const host of ['127.internal.example', '128.0.0.1', '10.0.0.5', '::ffff:10.0.0.1', '::2', '0.0.0.0', '::', '', 'localhost.example']) {
    assert.equal(isLoopback(host), false, host);
  }
});

test('brackets go on IPv6 literals only and come off only when both are there', () => {
  assert.equal(bracketHost('::1'), '[::1]');
  assert.equal(bracketHost('[::1]'), '[::1]');
  assert.equal(bracketHost('127.0.0.1'), '127.0.0.1');
  assert.equal(bracketHost('metrics.example'), 'metrics.example');
  assert.equal(unbracketHost('[2001:db8::1]'), '2001:db8::1');
  assert.equal(unbracketHost('2001:db8::1'), '2001:db8::1');
  assert.equal(unbracketHost('[broken'), '[broken');
  assert.equal(hostPort('::', 9181), '[::]:9181');
  assert.equal(hostPort('0.0.0.0', 9180), '0.0.0.0:9180');
  assert.equal(addressText({ address: '::1', family: 'IPv6', port: 9180 }), '[::1]:9180');
  assert.equal(addressText({ address: '127.0.0.1', family: 'IPv4', port: 9180 }), '127.0.0.1:9180');
});

test('the wildcard listen hosts are 0.0.0.0, :: (bracketed or not) and empty', () => {
  for (const host of ['', '0.0.0.0', '::', '[::]']) assert.equal(isWildcardHost(host), true, host);
  for (const host of ['127.0.0.1', '::1', 'localhost']) assert.equal(isWildcardHost(host), false, host);
});

test('the config warns about an open admin listener on a 127.-prefixed name, not on an IPv4-mapped loopback address', () => {
  const config = (host: string) => parseConfig(`admin:\n  listen: "${host}:9181"\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: http://127.0.0.1:9100/metrics\n    ttl: 30s\n`, 'proxy.yaml');
  assert.equal(configWarnings(config('127.internal.example')).length, 1);
  assert.deepEqual(configWarnings(config('[::ffff:127.0.0.1]')), []);
});

test('a Host header names its host without port, brackets, case or trailing dot', () => {
  assert.equal(hostHeaderName('[::1]:9181'), '::1');
  assert.equal(hostHeaderName('[2001:DB8::1]'), '2001:db8::1');
  assert.equal(hostHeaderName('Metrics.Example.:9181'), 'metrics.example');
  assert.equal(hostHeaderName('127.0.0.1:9181'), '127.0.0.1');
  assert.equal(hostHeaderName('localhost'), 'localhost');
});
