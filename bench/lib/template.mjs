import { readFile } from 'node:fs/promises';

/** Fills `{{NAME}}` placeholders; a placeholder without a value is an error, not an empty string. */
export async function renderTemplate(path, values) {
  const text = await readFile(path, 'utf8');
  return text.replace(/\{\{(\w+)\}\}/g, (_, name) => {
    if (!(name in values)) throw new Error(`${path}: no value for {{${name}}}`);
    return String(values[name]);
  });
}
