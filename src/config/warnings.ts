/** Configs that are valid but probably not what the operator meant: logged at start-up, printed by --check-config. */
import { hostPort, isLoopback } from '../net/host-port.js';
import type { Config, ListenAddress } from './types.js';
import type { WebConfig } from './web-config.js';

const where = (a: ListenAddress) => hostPort(a.host, a.port);

/** Basic auth from --web.config.file protects the admin listener as a token does. */
export function configWarnings(config: Config, web?: WebConfig): string[] {
  const warnings: string[] = [];
  if (config.admin.token === '' && !isLoopback(config.admin.listen.host) && !(web && web.users.size > 0)) {
    warnings.push(
      `admin.listen ${where(config.admin.listen)} is reachable beyond loopback and admin.token is empty: anyone who reaches it can reload, invalidate and read the cache`,
    );
  }
  return warnings;
}
