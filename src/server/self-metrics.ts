/**
 * `GET /metrics` on the scrape listener where no route claims it: the proxy's own metrics, where
 * Prometheus looks first, read only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProxyError } from '../errors.js';
import { writeError } from './respond.js';
import { ALLOW_GET_AND_HEAD, CLOSE, hasBody } from './scrape-request.js';

/** Where the scrape listener answers with the proxy's own metrics when no route serves the path. */
export const SELF_METRICS_PATH = '/metrics';

export interface SelfMetricsText {
  contentType: string;
  text: string;
}

const GET_AND_HEAD_ONLY = new ProxyError('METHOD_NOT_ALLOWED', `${SELF_METRICS_PATH} (the proxy's own metrics) answers GET and HEAD only`, {
  headers: ALLOW_GET_AND_HEAD,
});
const BODY_REFUSED = new ProxyError('BAD_REQUEST', `${SELF_METRICS_PATH}: a GET or HEAD request must not carry a body`, { headers: CLOSE });

export async function serveSelfMetrics(req: IncomingMessage, res: ServerResponse, selfMetrics: () => Promise<SelfMetricsText>): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return writeError(res, GET_AND_HEAD_ONLY);
  if (hasBody(req)) return writeError(res, BODY_REFUSED);
  let metrics: SelfMetricsText;
  try {
    metrics = await selfMetrics();
  } catch (err) {
    const unavailable = new ProxyError('SELF_METRICS_UNAVAILABLE', `the proxy's own metrics are not available: ${(err as Error).message}`, { cause: err });
    return writeError(res, unavailable, { head: req.method === 'HEAD' });
  }
  const body = Buffer.from(metrics.text);
  res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
