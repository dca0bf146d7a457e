/** The built CLI as a child process, started on a config file and waited for until it listens. */
import { spawn, type ChildProcess } from 'node:child_process';

const cli = new URL('../../src/cli.js', import.meta.url).pathname;

export interface LogEntry {
  msg: string;
  pid: number;
  scrape?: string;
  admin?: string;
}

export interface CliProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  scrapeUrl: string;
  adminUrl: string;
}

/**
 * Spawns `scrapecache --config.file FILE` and resolves once it logs "scrapecache listening"
 * (with workers, once every worker is up). `onEntry` sees every JSON log line, before and after.
 */
export async function startCli(file: string, options: { onEntry?: (entry: LogEntry) => void; timeoutMs?: number; args?: string[] } = {}): Promise<CliProcess> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const child = spawn(process.execPath, [cli, '--config.file', file, ...(options.args ?? [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const urls = await new Promise<{ scrapeUrl: string; adminUrl: string }>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      // A start that hangs (the test's subject, perhaps) must not outlive the test.
      child.kill('SIGKILL');
      reject(new Error(`no "scrapecache listening" line within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        const entry = JSON.parse(line) as LogEntry;
        options.onEntry?.(entry);
        if (entry.msg === 'scrapecache listening') {
          clearTimeout(timer);
          resolve({ scrapeUrl: `http://${entry.scrape}`, adminUrl: `http://${entry.admin}` });
        }
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
  });
  return { child, exited, ...urls };
}
