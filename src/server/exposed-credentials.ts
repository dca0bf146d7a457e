/** SPEC 3.6's start-up warning: credentials the proxy sends upstream, behind a listener anyone can read. */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { WebConfig } from '../config/web-config.js';
import { isLoopback } from '../net/host-port.js';


/**
 * SPEC 3.6: a route that sends credentials upstream (basic_auth, bearer_token_file, a client
 * certificate) while anyone who can reach the scrape listener can read what it answers.
 */
export function warnExposedCredentials(config: Config, web: WebConfig | undefined, log: Logger): void {
  if (isLoopback(config.listen.host)) return;
  if (web && (web.tls !== undefined || web.users.size > 0)) return;
  for (const route of config.routes) {
    // `headers:` may spell it Authorization: any case is the same header.
    const authorization = Object.entries(route.headers).find(([name]) => name.toLowerCase() === 'authorization')?.[1] ?? '';
    const sends = [
      /^basic /i.test(authorization) ? 'basic_auth' : undefined,
      /^bearer /i.test(authorization) ? 'bearer_token_file' : undefined,
      authorization !== '' && !/^(basic|bearer) /i.test(authorization) ? 'authorization header' : undefined,
      route.tls?.cert ? 'tls client certificate' : undefined,
    ].filter((s) => s !== undefined);
    if (sends.length === 0) continue;
    log.warn(
      { route: route.name, credentials: sends, listen: `${config.listen.host}:${config.listen.port}` },
      `route ${route.name} sends credentials upstream (${sends.join(', ')}) while the scrape listener has neither TLS nor basic auth and listens beyond loopback: anyone who reaches it gets what those credentials protect (see --web.config.file)`,
    );
  }
}
