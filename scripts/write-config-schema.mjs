// Regenerates proxy.schema.json from the zod config schema: `npm run schema` (after a build).
import { writeFileSync } from 'node:fs';
import { renderConfigJsonSchema } from '../dist/src/config/json-schema.js';

writeFileSync(new URL('../proxy.schema.json', import.meta.url), renderConfigJsonSchema());
console.log('wrote proxy.schema.json');
