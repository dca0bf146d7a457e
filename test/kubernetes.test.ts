/**
 * deploy/kubernetes: every kustomization builds with the real kustomize, every object validates
 * against the Kubernetes and prometheus-operator schemas (kubernetes-models), and the objects
 * agree with each other and with the proxy.yaml they mount: what `kubectl apply -k` would only
 * find out in a cluster.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { parse } from 'yaml';
import { parseSize } from '../src/config/units.js';
import {
  allContainers,
  build,
  deployables,
  kubernetesDir,
  kustomizations,
  named,
  ofKind,
  quantityBytes,
  root,
  selects,
  workloads,
  type K8sObject,
} from './helpers/kubernetes-manifests.js';
import { skipUnlessUnstable } from './helpers/unstable-binaries.js';

const skip = skipUnlessUnstable('kustomize');
const cli = join(root, 'dist/src/cli.js');
const MiB = 2 ** 20;

/** Secrets the user creates (docs/kubernetes.md says how); no manifest holds them. */
const USER_SECRETS = ['scrapecache-admin-token', 'scrapecache-web-config', 'scrapecache-redis'];

/** The module that has the model of an apiVersion/kind: kubernetes-models or its prometheus-operator package. */
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface ProxyContainer {
  workload: K8sObject;
  // The container and its Pod spec, as kustomize printed them.
  container: any;
  podSpec: any;
  configPath: string;
  webConfigPath: string | undefined;
  configText: string;
  config: any;
  /** mountPath -> volume */
  mounts: Map<string, any>;
}

/** The volume mounted where `path` lies, and the path inside it. */
function mountOf(proxy: Pick<ProxyContainer, 'mounts'>, path: string): { mountPath: string; volume: any; rest: string } {
  const mountPath = [...proxy.mounts.keys()].filter((m) => path === m || path.startsWith(`${m}/`)).sort((a, b) => b.length - a.length)[0];
  assert.ok(mountPath, `${path} lies on a volume mount of the container`);
  return { mountPath, volume: proxy.mounts.get(mountPath), rest: posix.relative(mountPath, path) };
}

/** Every scrapecache container in a build, with the proxy.yaml its ConfigMap holds. */
function proxyContainers(objects: K8sObject[]): ProxyContainer[] {
  const found: ProxyContainer[] = [];
  for (const workload of workloads(objects)) {
    const podSpec = workload.spec.template.spec;
    for (const container of allContainers(podSpec)) {
      if (!String(container.image).startsWith('scrapecache')) continue;
      const args: string[] = container.command ?? [];
      const configPath = args[args.indexOf('--config.file') + 1];
      assert.ok(args.includes('--config.file') && configPath, `${workload.metadata.name}: the command names --config.file`);
      const webConfigPath = args.find((a) => a.startsWith('--web.config.file='))?.slice('--web.config.file='.length);
      const volumes = new Map(podSpec.volumes.map((v: { name: string }) => [v.name, v]));
      const claims = new Map((workload.spec.volumeClaimTemplates ?? []).map((c: { metadata: { name: string } }) => [c.metadata.name, { name: c.metadata.name, claim: c }]));
      const mounts = new Map();
      for (const m of container.volumeMounts ?? []) {
        const volume = volumes.get(m.name) ?? claims.get(m.name);
        assert.ok(volume, `${workload.metadata.name}: volumeMount ${m.name} names a volume or a volume claim template`);
        mounts.set(m.mountPath, { ...volume, readOnly: m.readOnly === true });
      }
      const proxy = { mounts };
      const { volume, rest } = mountOf(proxy, configPath);
      assert.ok(volume.configMap, `${configPath} comes from a ConfigMap`);
      const configText = named(objects, 'ConfigMap', volume.configMap.name).data?.[rest];
      assert.ok(typeof configText === 'string', `ConfigMap ${volume.configMap.name} has the key ${rest}`);
      found.push({ workload, container, podSpec, configPath, webConfigPath, configText, config: parse(configText), mounts });
    }
  }
  return found;
}

const port = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
const routePaths = (config: { routes: Array<{ path?: string }> }) => new Set(config.routes.map((r) => r.path).filter(Boolean));

test('every kustomization under deploy/kubernetes builds with kustomize 5.8', { skip }, () => {
  const all = kustomizations();
  assert.ok(all.length >= 10, `found ${all.map((k) => k.dir).join(', ')}`);
  for (const { dir, component } of all) if (!component) assert.ok(build(dir).length > 0, `${dir} builds objects`);
  assert.deepEqual(
    deployables().filter((d) => d.startsWith('overlays/')),
    ['overlays/central', 'overlays/central-disk', 'overlays/central-tls', 'overlays/ha', 'overlays/ha-external-redis', 'overlays/sidecar', 'overlays/sidecar-plain'],
  );
});

test('every object of every kustomization validates against the Kubernetes and prometheus-operator schemas', { skip }, async () => {
  for (const { dir, component } of kustomizations()) {
    if (component) continue;
    for (const object of build(dir)) {
      const where = `${dir}: ${object.kind} ${object.metadata.name}`;
      const module = (await import(modelModule(object.apiVersion, object.kind))) as Record<string, new (data: unknown) => { validate(): void }>;
      const Model = module[object.kind];
      assert.ok(Model, `${where}: a model for ${object.apiVersion} ${object.kind}`);
      assert.doesNotThrow(() => new Model(object).validate(), where);
    }
  }
});

test('a misspelt field, a wrong type or a bad enum value fails the schema check', async () => {
  const { Deployment } = await import('kubernetes-models/apps/v1/Deployment');
  const { ServiceMonitor } = await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor');
  const pod = { containers: [{ name: 'a', image: 'a', ports: [{ containerPort: '9180' }] }] };
  assert.throws(() => new Deployment({ metadata: { name: 'x' }, spec: { selector: {}, template: { spec: pod } } } as never).validate(), /containerPort must be integer/);
  assert.throws(
    () => new ServiceMonitor({ metadata: { name: 'x' }, spec: { selector: {}, endpoints: [{ port: 'scrape' }], fallbackScrapeProtocol: 'Text' } } as never).validate(),
    /fallbackScrapeProtocol must be equal to one of the allowed values/,
  );
  // The runtime schemas accept unknown fields; the typed check below catches them.
  assert.match(typeErrors([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { selektor: {} } }]).join('\n'), /selektor/);
});

/**
 * TypeScript's excess-property check against kubernetes-models' interfaces: a field that the
 * API does not have (a typo kubectl --validate=strict would refuse) is an error, which the
 * runtime schemas let through.
 */
function typeErrors(objects: Array<{ apiVersion: string; kind: string; [field: string]: unknown }>): string[] {
  // Never written: the compiler host serves it, from the root so that node_modules resolves.
  const file = join(root, 'kubernetes-objects.virtual.ts');
  const lines = objects.map((o, i) => `import type { I${o.kind} as T${i} } from '${modelModule(o.apiVersion, o.kind)}';`);
  objects.forEach((o, i) => lines.push(`export const o${i}: T${i} = ${JSON.stringify(o)};`));
  const source = lines.join('\n');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) => (name === file ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

test('no object of any kustomization has a field the Kubernetes or prometheus-operator API does not know', { skip }, () => {
  const objects = kustomizations().filter((k) => !k.component).flatMap((k) => build(k.dir));
  assert.deepEqual(typeErrors(objects), []);
});

test('Services select Pods and name their ports; StatefulSets name a Service; PodDisruptionBudgets select Pods', { skip }, () => {
  for (const dir of deployables()) {
    const objects = build(dir);
    const pods = workloads(objects).map((w) => ({ w, labels: w.spec.template.metadata.labels, containers: allContainers(w.spec.template.spec) }));
    for (const w of workloads(objects)) assert.ok(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${dir}: ${w.metadata.name} selects its own Pods`);
    for (const service of ofKind(objects, 'Service')) {
      const selected = pods.filter((p) => selects(service.spec.selector, p.labels));
      assert.ok(selected.length > 0, `${dir}: Service ${service.metadata.name} selects a Pod of this build`);
      for (const p of service.spec.ports) {
        for (const pod of selected) {
          const ports = pod.containers.flatMap((c) => c.ports ?? []);
          const target = ports.find((cp: { name: string; containerPort: number }) => cp.name === p.targetPort || cp.containerPort === p.targetPort);
          assert.ok(target, `${dir}: Service ${service.metadata.name} port ${p.name} -> ${p.targetPort} is a container port of ${pod.w.metadata.name}`);
        }
      }
    }
    for (const sts of ofKind(objects, 'StatefulSet')) named(objects, 'Service', sts.spec.serviceName);
    for (const pdb of ofKind(objects, 'PodDisruptionBudget')) {
      assert.ok(pods.some((p) => selects(pdb.spec.selector.matchLabels, p.labels)), `${dir}: PodDisruptionBudget ${pdb.metadata.name} selects Pods`);
    }
  }
});

test('ServiceMonitors, PodMonitors and Probes scrape the proxy: its port names, its route paths and /metrics', { skip }, () => {
  let monitors = 0;
  for (const dir of deployables().filter((d) => d.startsWith('overlays/'))) {
    const objects = build(dir);
    const proxies = proxyContainers(objects);
    assert.ok(proxies.length > 0, `${dir} runs scrapecache`);
    const paths = new Set([...proxies.flatMap((p) => [...routePaths(p.config)]), '/metrics']);
    for (const sm of ofKind(objects, 'ServiceMonitor')) {
      const services = ofKind(objects, 'Service').filter((s) => selects(sm.spec.selector.matchLabels, s.metadata.labels));
      assert.equal(services.length, 1, `${dir}: ServiceMonitor ${sm.metadata.name} selects one Service (two would scrape every target twice)`);
      for (const endpoint of sm.spec.endpoints) {
        const servicePort = services[0]!.spec.ports.find((p: { name: string }) => p.name === endpoint.port);
        assert.ok(servicePort, `${dir}: ServiceMonitor ${sm.metadata.name} port ${endpoint.port} is a Service port`);
        assert.equal(servicePort.targetPort, 'scrape', `${dir}: ServiceMonitor ${sm.metadata.name} scrapes the proxy's scrape port`);
        assert.ok(paths.has(endpoint.path), `${dir}: ServiceMonitor ${sm.metadata.name} path ${endpoint.path} is a route or /metrics`);
        monitors++;
      }
    }
    for (const pm of ofKind(objects, 'PodMonitor')) {
      const pods = workloads(objects).filter((w) => selects(pm.spec.selector.matchLabels, w.spec.template.metadata.labels));
      assert.ok(pods.length > 0, `${dir}: PodMonitor ${pm.metadata.name} selects Pods`);
      for (const endpoint of pm.spec.podMetricsEndpoints) {
        for (const pod of pods) {
          const container = allContainers(pod.spec.template.spec).find((c) => (c.ports ?? []).some((p: { name: string }) => p.name === endpoint.port));
          assert.ok(container && String(container.image).startsWith('scrapecache'), `${dir}: PodMonitor ${pm.metadata.name} port ${endpoint.port} is the proxy's`);
        }
        assert.ok(paths.has(endpoint.path), `${dir}: PodMonitor ${pm.metadata.name} path ${endpoint.path} is a route or /metrics`);
        monitors++;
      }
    }
    for (const probe of ofKind(objects, 'Probe')) {
      const [host, portText] = probe.spec.prober.url.split(':');
      const [serviceName, namespace, svc] = host.split('.');
      assert.equal(svc, 'svc', `${dir}: Probe ${probe.metadata.name} prober.url is a Service's cluster name`);
      const service = named(objects, 'Service', serviceName);
      assert.equal(namespace, service.metadata.namespace, `${dir}: Probe ${probe.metadata.name} names the namespace the overlay deploys to`);
      const servicePort = service.spec.ports.find((p: { port: number }) => p.port === Number(portText));
      assert.equal(servicePort?.targetPort, 'scrape', `${dir}: Probe ${probe.metadata.name} goes to the scrape port`);
      const route = proxies[0]!.config.routes.find((r: { path?: string }) => r.path === probe.spec.prober.path);
      assert.ok(route, `${dir}: Probe ${probe.metadata.name} path ${probe.spec.prober.path} is a route`);
      assert.deepEqual([...route.query_keys].sort(), ['module', 'target'], `${dir}: the Probe's route takes target and module`);
      monitors++;
    }
    // Every route is scraped by something, and so are the proxy's own metrics.
    const scraped = new Set([
      ...ofKind(objects, 'ServiceMonitor').flatMap((s) => s.spec.endpoints.map((e: { path: string }) => e.path)),
      ...ofKind(objects, 'PodMonitor').flatMap((s) => s.spec.podMetricsEndpoints.map((e: { path: string }) => e.path)),
      ...ofKind(objects, 'Probe').map((p) => p.spec.prober.path),
    ]);
    assert.deepEqual([...paths].sort(), [...scraped].sort(), `${dir}: every route and /metrics has a scrape object, and no scrape object more`);
  }
  assert.ok(monitors >= 15, `${monitors} scrape endpoints checked`);
});

test('Secrets and ConfigMaps that Pods and monitors name exist in the build or are the documented user Secrets', { skip }, () => {
  const docs = readFileSync(join(root, 'docs/kubernetes.md'), 'utf8');
  for (const name of USER_SECRETS) assert.match(docs, new RegExp(`create secret generic ${name}\\b`), `docs/kubernetes.md tells how to create ${name}`);
  for (const dir of deployables()) {
    const objects = build(dir);
    assert.deepEqual(ofKind(objects, 'Secret'), [], `${dir}: no Secret in the manifests`);
    const secrets: string[] = [];
    const configMaps: string[] = [];
    const walk = (value: unknown, key = ''): void => {
      if (Array.isArray(value)) return value.forEach((v) => walk(v, key));
      if (value === null || typeof value !== 'object') return;
      const o = value as Record<string, unknown>;
      if (key === 'secret' && typeof o['secretName'] === 'string') secrets.push(o['secretName']);
      if ((key === 'secretKeyRef' || key === 'secret') && typeof o['name'] === 'string') secrets.push(o['name']);
      if ((key === 'configMap' || key === 'configMapKeyRef') && typeof o['name'] === 'string') configMaps.push(o['name']);
      for (const [k, v] of Object.entries(o)) walk(v, k);
    };
    for (const object of objects) walk(object);
    for (const name of configMaps) named(objects, 'ConfigMap', name);
    for (const name of secrets) assert.ok(USER_SECRETS.includes(name), `${dir}: Secret ${name} is one the user creates (${USER_SECRETS.join(', ')})`);
  }
});

test('the scrapecache containers run as the ConfigMap says: ports, probes, mounts, non-root, read-only root, memory from the README formula', { skip }, () => {
  for (const dir of deployables().filter((d) => d.startsWith('overlays/'))) {
    for (const proxy of proxyContainers(build(dir))) {
      const where = `${dir}: ${proxy.workload.metadata.name}/${proxy.container.name}`;
      const { config, container, podSpec } = proxy;
      assert.match(container.image, /^scrapecache:\d+\.\d+\.\d+$/, `${where}: the image has the overlay's tag`);
      const ports = new Map(container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
      assert.equal(ports.get('scrape'), port(config.listen), `${where}: the scrape port is listen's`);
      assert.equal(ports.get('admin'), port(config.admin.listen), `${where}: the admin port is admin.listen's`);
      for (const listen of [config.listen, config.admin.listen]) assert.match(listen, /^0\.0\.0\.0:/, `${where}: ${listen} is reachable on the Pod's address`);
      const scheme = proxy.webConfigPath ? 'HTTPS' : undefined;
      for (const [probe, path] of [['startupProbe', '/-/healthy'], ['livenessProbe', '/-/healthy'], ['readinessProbe', '/-/ready']] as const) {
        assert.deepEqual(container[probe]?.httpGet, { path, port: 'admin', ...(scheme && { scheme }) }, `${where}: ${probe} on ${path}, admin listener`);
      }
      // Secrets: the admin token is required (the admin listener is on the Pod's address), from a file.
      assert.equal(config.admin.token, undefined, `${where}: no token inline`);
      const token = mountOf(proxy, config.admin.token_file);
      assert.equal(token.volume.secret?.secretName, 'scrapecache-admin-token', `${where}: admin.token_file is on the admin token Secret`);
      if (config.cache.redis) {
        const password = mountOf(proxy, config.cache.redis.password_file);
        assert.equal(password.volume.secret?.secretName, 'scrapecache-redis', `${where}: the Redis password is on the Redis Secret`);
        assert.equal(password.rest, 'password');
      }
      if (proxy.webConfigPath) assert.equal(mountOf(proxy, proxy.webConfigPath).volume.secret?.secretName, 'scrapecache-web-config');
      // Every ${VAR} the config uses is set in the container's environment.
      for (const [, name] of proxy.configText.matchAll(/\$\{(\w+)(?::-[^}]*)?\}/g)) {
        assert.ok((container.env ?? []).some((e: { name: string }) => e.name === name), `${where}: ${name} is in the container's env`);
      }
      if (config.cache.disk) {
        const disk = mountOf(proxy, config.cache.disk.path);
        assert.ok(disk.volume.claim, `${where}: cache.disk.path is on a volume claim template`);
        assert.equal(disk.volume.readOnly, false);
        assert.ok(quantityBytes(disk.volume.claim.spec.resources.requests.storage) >= parseSize(config.cache.disk.max_bytes)!, `${where}: the volume holds cache.disk.max_bytes`);
      } else {
        for (const volume of proxy.mounts.values()) assert.ok(!volume.claim, `${where}: no volume claim without cache.disk`);
      }
      // Hardening, as the prometheus-community charts do it.
      const podSecurity = podSpec.securityContext ?? {};
      const security = { ...podSecurity, ...container.securityContext };
      assert.equal(security.runAsNonRoot, true, `${where}: runAsNonRoot`);
      assert.notEqual(security.runAsUser, 0);
      assert.equal(security.readOnlyRootFilesystem, true, `${where}: read-only root filesystem`);
      assert.equal(security.allowPrivilegeEscalation, false);
      assert.deepEqual(security.capabilities?.drop, ['ALL']);
      assert.equal(podSpec.automountServiceAccountToken, false, `${where}: no API token in the Pod`);
      // README "Performance": cached bytes + a third + 65 MiB steady; 1.7 x max_bytes + 60 MiB under churn; times workers + 1.
      const maxBytes = parseSize(config.cache.max_bytes)!;
      const processes = (config.workers ?? 1) > 1 ? config.workers + 1 : 1;
      const request = quantityBytes(container.resources.requests.memory);
      const limit = quantityBytes(container.resources.limits.memory);
      assert.ok(request >= processes * ((maxBytes * 4) / 3 + 65 * MiB), `${where}: memory request ${container.resources.requests.memory} covers steady keys`);
      assert.ok(request <= processes * ((maxBytes * 4) / 3 + 65 * MiB) + 16 * MiB, `${where}: memory request ${container.resources.requests.memory} is not far above the formula`);
      assert.ok(limit >= processes * (1.7 * maxBytes + 60 * MiB), `${where}: memory limit ${container.resources.limits.memory} covers churning keys`);
    }
  }
});

test('scrapecache --check-config accepts the proxy.yaml of every overlay, with its files where the Pod mounts them', { skip }, () => {
  for (const dir of deployables().filter((d) => d.startsWith('overlays/'))) {
    for (const proxy of proxyContainers(build(dir))) {
      // A stand-in for the Pod's filesystem: each mount becomes a folder, paths in the config move with it.
      const fsRoot = mkdtempSync(join(tmpdir(), 'scrapecache-k8s-'));
      for (const mountPath of proxy.mounts.keys()) mkdirSync(join(fsRoot, mountPath), { recursive: true });
      const inPod = (path: string) => join(fsRoot, path);
      // Absolute paths on a mount move with it; route paths stay.
      const onMount = (path: string) => [...proxy.mounts.keys()].some((m) => path === m || path.startsWith(`${m}/`));
      const text = proxy.configText.replace(/^(\s*[\w-]+: )(\/\S+)$/gm, (line, key: string, path: string) => (onMount(path) ? key + inPod(path) : line));
      writeFileSync(inPod(proxy.configPath), text);
      writeFileSync(join(fsRoot, mountOf(proxy, proxy.config.admin.token_file).mountPath, 'token'), 'a-token\n');
      if (proxy.config.cache.redis) writeFileSync(inPod(proxy.config.cache.redis.password_file), 'a-password\n');
      const args = [cli, '--config.file', inPod(proxy.configPath), '--check-config'];
      if (proxy.webConfigPath) {
        // What the web-config Secret holds: web.yml naming tls.crt and tls.key beside it.
        const web = dirname(inPod(proxy.webConfigPath));
        execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
          '-keyout', join(web, 'tls.key'), '-out', join(web, 'tls.crt'), '-subj', '/CN=scrapecache', '-addext', 'subjectAltName=DNS:scrapecache'], { stdio: 'ignore' });
        writeFileSync(inPod(proxy.webConfigPath), 'tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n');
        args.push(`--web.config.file=${inPod(proxy.webConfigPath)}`);
        assert.equal(basename(proxy.webConfigPath), 'web.yml');
      }
      const env = { ...process.env, SCRAPECACHE_REDIS_URL: 'redis://redis.example:6379/0' };
      const result = spawnSync(process.execPath, args, { encoding: 'utf8', env });
      assert.equal(result.status, 0, `${dir}: ${proxy.workload.metadata.name}: --check-config\n${result.stdout}${result.stderr}`);
    }
  }
});

test('the central, disk and ha overlays proxy the same routes, and the StatefulSet runs the same container as the Deployment', { skip }, () => {
  const routesOf = (dir: string) => proxyContainers(build(dir))[0]!.config.routes;
  const base = routesOf('overlays/central');
  for (const dir of ['overlays/central-disk', 'overlays/central-tls', 'overlays/ha', 'overlays/ha-external-redis']) assert.deepEqual(routesOf(dir), base, `${dir}: routes as in base/proxy.yaml`);
  const deployment = named(build('overlays/central'), 'Deployment', 'scrapecache').spec.template.spec;
  const statefulSet = named(build('overlays/central-disk'), 'StatefulSet', 'scrapecache').spec.template.spec;
  const withoutData = (spec: typeof deployment) => ({
    ...spec,
    volumes: spec.volumes.map((v: { name: string; configMap?: object }) => (v.configMap ? { ...v, configMap: {} } : v)),
    containers: spec.containers.map((c: { volumeMounts: Array<{ name: string }> }) => ({ ...c, volumeMounts: c.volumeMounts.filter((m) => m.name !== 'data') })),
  });
  assert.deepEqual(withoutData(statefulSet), withoutData(deployment));
  assert.equal(workloads(build('overlays/central-disk')).length, 1, 'the StatefulSet replaces the Deployment');
});

test('ha: two replicas spread over nodes, sharing a Redis with maxmemory and allkeys-lru that only they reach', { skip }, () => {
  for (const dir of ['overlays/ha', 'overlays/ha-external-redis']) {
    const objects = build(dir);
    const deployment = named(objects, 'Deployment', 'scrapecache');
    assert.ok(deployment.spec.replicas >= 2, `${dir}: two or more replicas`);
    const anti = deployment.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    assert.equal(anti.topologyKey, 'kubernetes.io/hostname');
    assert.ok(selects(anti.labelSelector.matchLabels, deployment.spec.template.metadata.labels), `${dir}: anti-affinity against its own Pods`);
    assert.ok(proxyContainers(objects).every((p) => p.config.cache.redis), `${dir}: every replica has cache.redis`);
  }
  const objects = build('overlays/ha');
  const [proxy] = proxyContainers(objects);
  const url = new URL(proxy!.config.cache.redis.url);
  const service = named(objects, 'Service', url.hostname);
  assert.ok(service.spec.ports.some((p: { port: number }) => p.port === Number(url.port)), 'the Redis URL names the Redis Service and port');
  const redis = named(objects, 'StatefulSet', 'redis');
  const container = redis.spec.template.spec.containers[0];
  const conf = named(objects, 'ConfigMap', redis.spec.template.spec.volumes.find((v: { configMap?: object }) => v.configMap).configMap.name).data['redis.conf'] as string;
  const setting = (name: string) => new RegExp(`^${name} (.+)$`, 'm').exec(conf)?.[1];
  assert.equal(setting('maxmemory-policy'), 'allkeys-lru');
  const maxmemory = quantityBytes(setting('maxmemory')!.replace(/mb$/, 'Mi').replace(/gb$/, 'Gi'));
  assert.ok(maxmemory >= parseSize(proxy!.config.cache.max_bytes)!, 'maxmemory holds one cache.max_bytes (the replicas cache the same keys)');
  assert.ok(maxmemory < quantityBytes(container.resources.limits.memory), "maxmemory is under the container's memory limit");
  assert.equal(setting('appendonly'), 'no');
  assert.deepEqual(container.command.slice(0, 2), ['redis-server', '/etc/redis/redis.conf']);
  const policy = named(objects, 'NetworkPolicy', 'redis');
  assert.ok(selects(policy.spec.podSelector.matchLabels, redis.spec.template.metadata.labels));
  assert.deepEqual(policy.spec.ingress.map((r: { from: Array<{ podSelector: { matchLabels: Record<string, string> } }> }) => r.from.map((f) => f.podSelector.matchLabels)), [
    [named(objects, 'Deployment', 'scrapecache').spec.selector.matchLabels],
  ]);
});

test('NetworkPolicies: the scrape port open to Prometheus, the admin port to the namespace only', { skip }, () => {
  for (const dir of deployables().filter((d) => d.startsWith('overlays/'))) {
    const objects = build(dir);
    for (const proxy of proxyContainers(objects)) {
      const policies = ofKind(objects, 'NetworkPolicy').filter((p) => selects(p.spec.podSelector.matchLabels, proxy.workload.spec.template.metadata.labels));
      assert.equal(policies.length, 1, `${dir}: one NetworkPolicy selects ${proxy.workload.metadata.name}`);
      const rules = policies[0]!.spec.ingress as Array<{ from?: unknown[]; ports: Array<{ port: string }> }>;
      const rulesFor = (name: string) => rules.filter((r) => r.ports.some((p) => p.port === name));
      assert.deepEqual(rulesFor('admin').map((r) => r.from), [[{ podSelector: {} }]], `${dir}: admin port from this namespace's Pods only`);
      assert.deepEqual(rulesFor('scrape').map((r) => r.from), [undefined], `${dir}: scrape port from anywhere`);
      const portNames = new Set(proxy.container.ports.map((p: { name: string }) => p.name));
      for (const r of rules) for (const p of r.ports) assert.ok(portNames.has(p.port), `${dir}: NetworkPolicy port ${p.port} is a container port`);
    }
  }
});

test('sidecar: the proxy in the exporter Pod, native and plain, in front of an exporter bound to loopback', { skip }, () => {
  const forms = { 'overlays/sidecar': 'initContainers', 'overlays/sidecar-plain': 'containers' } as const;
  for (const [dir, list] of Object.entries(forms)) {
    const objects = build(dir);
    const [proxy] = proxyContainers(objects);
    assert.ok(proxy);
    const spec = proxy.podSpec;
    assert.ok(spec[list].includes(proxy.container), `${dir}: scrapecache is in ${list}`);
    assert.equal(proxy.container.restartPolicy, list === 'initContainers' ? 'Always' : undefined, `${dir}: restartPolicy`);
    const exporter = spec.containers.find((c: { name: string }) => c !== proxy.container);
    for (const route of proxy.config.routes) {
      const upstream = new URL(route.upstream);
      assert.equal(upstream.hostname, '127.0.0.1', `${dir}: route ${route.name} goes to the exporter in the Pod`);
      assert.ok(exporter.args.includes(`--web.listen-address=127.0.0.1:${upstream.port}`), `${dir}: the exporter listens on 127.0.0.1:${upstream.port} only`);
    }
    assert.equal(exporter.ports, undefined, `${dir}: the exporter exposes no port`);
    assert.deepEqual(ofKind(objects, 'Service'), [], `${dir}: no Service: the PodMonitor finds the Pods`);
  }
});

test('what a user edits lives in files the docs name', () => {
  const docs = readFileSync(join(root, 'docs/kubernetes.md'), 'utf8');
  for (const { dir, component } of kustomizations()) {
    if (dir === 'overlays/ha/redis' || dir === 'base' || dir === 'monitoring') continue;
    assert.ok(docs.includes(`deploy/kubernetes/${dir}`), `docs/kubernetes.md mentions deploy/kubernetes/${dir}${component ? ' (a component)' : ''}`);
  }
  assert.ok(readFileSync(join(kubernetesDir, 'base/proxy.yaml'), 'utf8').includes('routes:'));
});

/** The docs' shell commands, one per line (continuations joined, comments dropped). */
function docsCommands(): string[] {
  const docs = readFileSync(join(root, 'docs/kubernetes.md'), 'utf8');
  return [...docs.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1]!.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').replace(/^#.*$/, '').trim())
    .filter(Boolean);
}

test("docs/kubernetes.md's commands name kustomizations, objects, ports and Secret keys that exist", { skip }, () => {
  const commands = docsCommands();
  const everything = deployables().map((dir) => ({ dir, objects: build(dir) }));
  const kinds: Record<string, string> = { deployment: 'Deployment', statefulset: 'StatefulSet', svc: 'Service', pod: 'Pod' };
  const find = (namespace: string, kind: string, name: string) =>
    everything.some(({ objects }) => objects.some((o) => o.kind === kinds[kind] && o.metadata.name === name && o.metadata.namespace === namespace));
  const secretKeys = new Map<string, Set<string>>();
  let checked = 0;
  for (const command of commands) {
    for (const [, path] of command.matchAll(/kubectl (?:apply|create) -k (\S+)/g)) {
      const dir = path!.replace(/^deploy\/kubernetes\//, '');
      assert.ok(kustomizations().some((k) => k.dir === dir && !k.component), `${command}: ${path} is a kustomization`);
      checked++;
    }
    const ns = /kubectl -n (\S+) /.exec(command)?.[1];
    for (const [, kind, name] of command.matchAll(/rollout (?:status|restart) (deployment|statefulset)\/(\S+)/g)) {
      assert.ok(ns && find(ns, kind!, name!), `${command}: a ${kind} ${name} in namespace ${ns}`);
      checked++;
    }
    for (const [, name, local, remote] of command.matchAll(/port-forward svc\/(\S+) (\d+):(\d+)/g)) {
      assert.equal(local, remote);
      const service = everything.flatMap(({ objects }) => objects).find((o) => o.kind === 'Service' && o.metadata.name === name && (o.metadata.namespace === ns || (name === 'prometheus-operated' && ns === 'monitoring')));
      // prometheus-operated is the operator's Service for the example Prometheus (port 9090).
      assert.ok(name === 'prometheus-operated' ? remote === '9090' : service?.spec.ports.some((p: { port: number }) => p.port === Number(remote)), `${command}: Service ${name} has port ${remote}`);
      checked++;
    }
    const secret = /create secret generic (\S+)/.exec(command)?.[1];
    if (secret) {
      assert.ok(USER_SECRETS.includes(secret), `${command}: ${secret} is one of the Secrets the manifests name`);
      const keys = secretKeys.get(secret) ?? new Set<string>();
      for (const [, key] of command.matchAll(/--from-(?:literal|file)=([^=\s]+)/g)) keys.add(key!);
      secretKeys.set(secret, keys);
    }
  }
  assert.ok(checked >= 15, `${checked} commands checked`);
  // Every key a manifest reads from a user Secret is one the docs' command puts there.
  const needed = new Map<string, Set<string>>();
  const need = (name: string, key: string) => needed.set(name, (needed.get(name) ?? new Set()).add(key));
  for (const { dir, objects } of everything) {
    const walk = (value: unknown, key = ''): void => {
      if (Array.isArray(value)) return value.forEach((v) => walk(v, key));
      if (value === null || typeof value !== 'object') return;
      const o = value as Record<string, unknown>;
      if ((key === 'secretKeyRef' || key === 'secret') && typeof o['name'] === 'string' && typeof o['key'] === 'string') need(o['name'], o['key']);
      if (key === 'secret' && typeof o['secretName'] === 'string') for (const item of (o['items'] as Array<{ key: string }> | undefined) ?? []) need(o['secretName'], item.key);
      for (const [k, v] of Object.entries(o)) walk(v, k);
    };
    for (const object of objects) walk(object);
    if (!dir.startsWith('overlays/')) continue;
    for (const proxy of proxyContainers(objects)) {
      const token = mountOf(proxy, proxy.config.admin.token_file);
      need(token.volume.secret.secretName, token.rest);
      if (proxy.webConfigPath) need('scrapecache-web-config', mountOf(proxy, proxy.webConfigPath).rest);
    }
  }
  for (const [name, keys] of needed) {
    for (const key of keys) assert.ok(secretKeys.get(name)?.has(key), `docs/kubernetes.md creates ${name} with the key ${key}`);
  }
  assert.deepEqual([...needed.keys()].sort(), [...USER_SECRETS].sort());
});
