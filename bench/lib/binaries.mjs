import { accessSync, constants } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { delimiter, join } from 'node:path';

/** Absolute path of an executable on PATH or in the sbin dirs (which PATH may lack), or null. */
export function findBinary(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch { /* not here */ }
  }
  return null;
}

/** First line of `binary args` (stdout or stderr), or "unknown". */
export function versionLine(binary, args, pattern) {
  const { stdout = '', stderr = '' } = spawnSync(binary, args, { encoding: 'utf8', timeout: 5000 });
  return pick(`${stdout}\n${stderr}`, pattern);
}

function pick(text, pattern) {
  const match = pattern ? pattern.exec(text) : null;
  if (match) return match[1] ?? match[0];
  return text.trim().split('\n')[0] || 'unknown';
}
