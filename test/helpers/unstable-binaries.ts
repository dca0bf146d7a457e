/**
 * Current Go binaries from Debian's unstable suite, unpacked by .ci/install-unstable.sh into
 * folders of their own (never over the system's packages): Prometheus 3.5, vmagent 1.145,
 * pushgateway 1.11 and kustomize 5.8. A test that needs one skips when it is missing outside
 * CI and fails inside CI (CI=true), so a broken install step cannot pass unnoticed.
 */
import { join } from 'node:path';
import { isExecutable } from './processes.js';

const root = process.env.SCRAPECACHE_UNSTABLE_ROOT ?? '/opt/scrapecache-unstable';

const paths = {
  prometheus3: join(root, 'prometheus/usr/bin/prometheus'),
  vmagentCurrent: join(root, 'victoria-metrics/usr/bin/vmagent'),
  pushgateway: join(root, 'prometheus-pushgateway/usr/bin/prometheus-pushgateway'),
  kustomize: join(root, 'kustomize/usr/bin/kustomize'),
} as const;

export type UnstableBinary = keyof typeof paths;

/** The binary's path, or undefined when it is not unpacked. */
export function unstableBinary(name: UnstableBinary): string | undefined {
  return isExecutable(paths[name]) ? paths[name] : undefined;
}

/**
 * node:test's `skip` option for a test that needs the binary: false when it is there; a reason
 * outside CI; and in CI (where .ci/run installs it) a thrown error instead of a silent skip.
 */
export function skipUnlessUnstable(name: UnstableBinary): false | string {
  if (unstableBinary(name)) return false;
  const reason = `${paths[name]} missing: run .ci/install-unstable.sh`;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}
