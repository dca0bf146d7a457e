/** proxy.schema.json is generated from the zod schema and must be current; configs point editors at it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderConfigJsonSchema } from '../src/config/json-schema.js';

const root = new URL('../../', import.meta.url);

test('the committed proxy.schema.json matches the config schema (run `npm run schema` after changing it)', () => {
  assert.equal(readFileSync(new URL('proxy.schema.json', root), 'utf8'), renderConfigJsonSchema());
});

test('the JSON Schema rejects unknown keys and knows every route field', () => {
  const schema = JSON.parse(renderConfigJsonSchema()) as {
    additionalProperties: boolean;
    properties: { routes: { items: { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean } } };
  };
  assert.equal(schema.additionalProperties, false);
  const route = schema.properties.routes.items;
  assert.equal(route.additionalProperties, false);
  assert.deepEqual(route.required.sort(), ['name', 'upstream']);
  for (const key of ['path', 'path_prefix', 'ttl', 'timeout', 'prefetch', 'stale_if_error', 'query_keys', 'tls', 'basic_auth', 'bearer_token_file', 'cache']) {
    assert.ok(key in route.properties, key);
  }
});

test('the shipped configs name the schema for yaml-language-server', () => {
  assert.match(readFileSync(new URL('proxy.yaml', root), 'utf8'), /^# yaml-language-server: \$schema=\.\/proxy\.schema\.json$/m);
  assert.match(readFileSync(new URL('deploy/proxy.docker.yaml', root), 'utf8'), /^# yaml-language-server: \$schema=\.\.\/proxy\.schema\.json$/m);
});
