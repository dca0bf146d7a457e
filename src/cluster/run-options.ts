/** What the CLI hands to a process of a `workers: N` group (SPEC 2), primary or worker, and gets back. */
import type { Logger } from 'pino';
import type { AppOptions } from '../app.js';
import type { ListenOverrides } from '../config/listen-overrides.js';
import type { Config } from '../config/types.js';

export interface RunOptions {
  config: Config;
  /** The config text `config` was parsed from: the primary hands this same text to every worker. */
  source: string;
  file: string;
  log: Logger;
  logLevelOverride: boolean;
  /** --web.listen-address and --web.admin-listen-address, kept over the file on reload. */
  listenOverrides?: ListenOverrides;
  /** --web.config.file: every process that listens reads and watches it. */
  webConfigFile?: string;
}

export interface Running {
  /** Re-reads the config; in the primary, workers follow a successful reload. */
  reload(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** What every process of the group, primary or worker, starts its app with. */
export function appOptionsOf(run: RunOptions): Pick<AppOptions, 'config' | 'log' | 'configFile' | 'logLevelOverride' | 'listenOverrides' | 'webConfigFile'> {
  return {
    config: run.config,
    log: run.log,
    configFile: run.file,
    logLevelOverride: run.logLevelOverride,
    ...(run.listenOverrides ? { listenOverrides: run.listenOverrides } : {}),
    ...(run.webConfigFile !== undefined ? { webConfigFile: run.webConfigFile } : {}),
  };
}
