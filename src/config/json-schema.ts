/**
 * proxy.yaml as JSON Schema, generated from the zod schema so that the two never disagree.
 * Editors use it through the `# yaml-language-server: $schema=...` line in proxy.yaml.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    $schema: schema['$schema'],
    $id: 'https://github.com/scrapecache/scrapecache/proxy.schema.json',
    title: 'scrapecache proxy.yaml',
    description: 'Config of scrapecache, a caching reverse proxy for Prometheus exporters. See docs/configuration.md.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

/** The committed proxy.schema.json text: stable key order, two-space indent, final newline. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
