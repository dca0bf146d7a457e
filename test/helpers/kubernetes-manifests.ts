/**
 * The Kubernetes manifests of deploy/kubernetes as kubectl would receive them: every
 * kustomization built by the real kustomize (5.8, from .ci/install-unstable.sh), parsed into
 * objects, with lookups the cross-reference tests share.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { unstableBinary } from './unstable-binaries.js';

// dist/test/helpers/kubernetes-manifests.js -> the repository root
export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const kubernetesDir = join(root, 'deploy/kubernetes');

/** A manifest object; the tests read their fields loosely, as kubectl does before validation. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [field: string]: any };

/** Every folder under deploy/kubernetes with a kustomization.yaml, relative, and whether it is a Component. */
export function kustomizations(): Array<{ dir: string; component: boolean }> {
  const found: Array<{ dir: string; component: boolean }> = [];
  const walk = (dir: string) => {
    const file = join(dir, 'kustomization.yaml');
    if (existsSync(file)) {
      const kind = (parse(readFileSync(file, 'utf8')) as { kind?: string }).kind;
      found.push({ dir: relative(kubernetesDir, dir), component: kind === 'Component' });
    }
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(join(dir, entry.name));
  };
  walk(kubernetesDir);
  return found.sort((a, b) => a.dir.localeCompare(b.dir));
}

/** What a user applies: the overlays and the examples. */
export function deployables(): string[] {
  return kustomizations()
    .filter((k) => !k.component && /^(overlays|examples)\/[^/]+$/.test(k.dir))
    .map((k) => k.dir);
}

const built = new Map<string, K8sObject[]>();

/** `kustomize build deploy/kubernetes/DIR`, parsed; fails the test with kustomize's error. */
export function build(dir: string): K8sObject[] {
  const cached = built.get(dir);
  if (cached) return cached;
  const kustomize = unstableBinary('kustomize');
  assert.ok(kustomize, 'kustomize is unpacked (bash .ci/install-unstable.sh)');
  const result = spawnSync(kustomize, ['build', join(kubernetesDir, dir)], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `kustomize build ${dir}:\n${result.stderr}`);
  const objects = parseAllDocuments(result.stdout).map((doc) => {
    assert.deepEqual(doc.errors, [], `kustomize build ${dir} printed YAML that parses`);
    return doc.toJS() as K8sObject;
  });
  built.set(dir, objects);
  return objects;
}

export const ofKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

export function named(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `a ${kind} named ${name}`);
  return found;
}

/** Deployments and StatefulSets, with their Pod templates. */
export const workloads = (objects: K8sObject[]) => objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');

/** Whether a matchLabels-style selector selects these labels. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The containers of a Pod spec, native sidecars (init containers) included. */
export const allContainers = (podSpec: any): any[] => [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];

/** Kubernetes quantities in bytes: 240Mi, 2Gi, 1G, 1000. */
export function quantityBytes(quantity: string | number): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  assert.ok(match, `a byte quantity: ${quantity}`);
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(match[1]) * (match[2] ? units[match[2]]! : 1);
}
