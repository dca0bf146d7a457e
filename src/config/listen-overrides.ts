/**
 * `--web.listen-address` and `--web.admin-listen-address` (SPEC 1): addresses from the command
 * line that win over `listen` and `admin.listen` in the file, at start-up and on every reload.
 */
import type { Config, ListenAddress } from './types.js';

export interface ListenOverrides {
  listen?: ListenAddress;
  adminListen?: ListenAddress;
}

export function applyListenOverrides(config: Config, overrides: ListenOverrides | undefined): Config {
  if (!overrides?.listen && !overrides?.adminListen) return config;
  return {
    ...config,
    listen: overrides.listen ?? config.listen,
    admin: { ...config.admin, listen: overrides.adminListen ?? config.admin.listen },
  };
}
