/**
 * Every failure as one status and one plain-text line (SPEC 3.3). Below the server and the
 * upstream: the listeners answer with it, and so does the pass-through when its upstream fails.
 */
import type { ServerResponse } from 'node:http';

const TEXT = 'text/plain; charset=utf-8';

/** A one-line plain-text answer; errors are never cached downstream either. */
export function writeText(
  res: ServerResponse,
  status: number,
  message: string,
  extra: Record<string, string> = {},
  head = false,
): void {
  if (res.destroyed || res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, {
    'Content-Type': TEXT,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...extra,
  });
  res.end(head ? undefined : body);
}
