// Deterministic, realistic Prometheus text exposition of a requested size.
// Small bodies look like node_exporter, large ones like kube-state-metrics: many series per
// family, long label sets, mostly-repeating names. The mix is tuned so that a node_exporter-sized
// body (~60 KB) gzips to ~10 KB, as a real one does.

/** mulberry32: a tiny seeded PRNG, so every run serves the same bytes. */
function createRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CPU_MODES = ['idle', 'iowait', 'irq', 'nice', 'softirq', 'steal', 'system', 'user'];
const DEVICES = ['eth0', 'eth1', 'lo', 'docker0', 'veth1a2b3c', 'veth4d5e6f'];
const DISKS = ['nvme0n1', 'nvme1n1', 'sda', 'sdb', 'dm-0', 'dm-1'];
const MOUNTS = [
  ['/dev/nvme0n1p1', 'ext4', '/'],
  ['/dev/nvme0n1p2', 'vfat', '/boot/efi'],
  ['/dev/nvme1n1', 'xfs', '/var/lib/data'],
  ['tmpfs', 'tmpfs', '/run'],
  ['tmpfs', 'tmpfs', '/run/lock'],
];
const COLLECTORS = ['arp', 'bcache', 'bonding', 'btrfs', 'conntrack', 'cpu', 'cpufreq', 'diskstats',
  'dmi', 'edac', 'entropy', 'fibrechannel', 'filefd', 'filesystem', 'hwmon', 'infiniband', 'ipvs',
  'loadavg', 'mdadm', 'meminfo', 'netclass', 'netdev', 'netstat', 'nfs', 'nfsd', 'nvme', 'os',
  'powersupplyclass', 'pressure', 'rapl', 'schedstat', 'selinux', 'sockstat', 'softnet', 'stat',
  'tapestats', 'textfile', 'thermal_zone', 'time', 'timex', 'udp_queues', 'uname', 'vmstat', 'xfs', 'zfs'];
const NAMESPACES = ['default', 'kube-system', 'monitoring', 'ingress-nginx', 'payments', 'search',
  'checkout', 'logging', 'cert-manager', 'argocd'];
const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

function counterValue(rand) {
  return (rand() * 1e11).toFixed(3);
}
function gaugeValue(rand) {
  const r = rand();
  return r < 0.3 ? String(Math.floor(r * 100)) : (r * 1e9).toExponential(6).replace('e+', 'e+0');
}

/** Node-exporter-like families; `i` makes each pass through the list produce new series. */
function* nodeFamilies(rand) {
  for (let i = 0; ; i++) {
    const cpus = 4;
    yield ['node_cpu_seconds_total', 'Seconds the CPUs spent in each mode.', 'counter',
      Array.from({ length: cpus * CPU_MODES.length }, (_, k) =>
        [`{cpu="${i * cpus + Math.floor(k / CPU_MODES.length)}",mode="${CPU_MODES[k % CPU_MODES.length]}"}`, counterValue(rand)])];
    for (const metric of ['receive_bytes', 'receive_packets', 'receive_errs', 'receive_drop',
      'transmit_bytes', 'transmit_packets', 'transmit_errs', 'transmit_drop']) {
      yield [`node_network_${metric}_total`, `Network device statistic ${metric}.`, 'counter',
        DEVICES.map((d) => [`{device="${d}${i ? `_${i}` : ''}"}`, counterValue(rand)])];
    }
    for (const metric of ['reads_completed', 'read_bytes', 'read_time_seconds', 'writes_completed',
      'written_bytes', 'write_time_seconds', 'io_time_seconds']) {
      yield [`node_disk_${metric}_total`, `The total number of ${metric.replace(/_/g, ' ')}.`, 'counter',
        DISKS.map((d) => [`{device="${d}${i ? `p${i}` : ''}"}`, counterValue(rand)])];
    }
    for (const metric of ['avail_bytes', 'free_bytes', 'size_bytes', 'files', 'files_free', 'readonly']) {
      yield [`node_filesystem_${metric}`, `Filesystem ${metric.replace(/_/g, ' ')}.`, 'gauge',
        MOUNTS.map(([dev, fs, mp]) => [`{device="${dev}",fstype="${fs}",mountpoint="${mp}${i ? `/${i}` : ''}"}`, gaugeValue(rand)])];
    }
    yield ['node_scrape_collector_duration_seconds', 'node_exporter: Duration of a collector scrape.', 'gauge',
      COLLECTORS.map((c) => [`{collector="${c}${i ? i : ''}"}`, rand().toFixed(9)])];
    yield ['node_scrape_collector_success', 'node_exporter: Whether a collector succeeded.', 'gauge',
      COLLECTORS.map((c) => [`{collector="${c}${i ? i : ''}"}`, rand() < 0.9 ? '1' : '0'])];
    for (const metric of ['MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'SwapTotal',
      'SwapFree', 'Dirty', 'Writeback', 'AnonPages', 'Mapped', 'Shmem', 'Slab', 'SReclaimable']) {
      yield [`node_memory_${metric}${i ? i : ''}_bytes`, `Memory information field ${metric}_bytes.`, 'gauge',
        [['', gaugeValue(rand)]]];
    }
    yield [`go_gc_duration_seconds${i ? `_${i}` : ''}`, 'A summary of the pause duration of garbage collection cycles.', 'summary',
      [...['0', '0.25', '0.5', '0.75', '1'].map((q) => [`{quantile="${q}"}`, (rand() / 1e3).toExponential(4)]),
        ['_sum', rand().toFixed(6)], ['_count', String(Math.floor(rand() * 1e5))]]];
  }
}

/** kube-state-metrics-like families: one series per pod, long label sets. */
function* ksmFamilies(rand) {
  for (let i = 0; ; i++) {
    const pods = Array.from({ length: 200 }, (_, k) => {
      const n = i * 200 + k;
      const ns = NAMESPACES[n % NAMESPACES.length];
      return { ns, pod: `${ns}-deployment-${(n * 2654435761 >>> 0).toString(36).slice(0, 9)}-${(n * 40503 >>> 0).toString(36).slice(0, 5)}`, n };
    });
    yield ['kube_pod_info', 'Information about pod.', 'gauge', pods.map((p) =>
      [`{namespace="${p.ns}",pod="${p.pod}",uid="${(p.n * 97531 >>> 0).toString(16).padStart(8, '0')}-7f3c-4a1e-9b2d-${(p.n * 1234567 >>> 0).toString(16).padStart(12, '0')}",host_ip="10.0.${p.n % 250}.${p.n % 7}",pod_ip="10.244.${p.n % 250}.${p.n % 251}",node="worker-${p.n % 40}",created_by_kind="ReplicaSet",created_by_name="${p.pod.slice(0, -6)}",priority_class="",host_network="false"}`, '1'])];
    yield ['kube_pod_status_phase', 'The pods current phase.', 'gauge', pods.flatMap((p) =>
      PHASES.map((ph) => [`{namespace="${p.ns}",pod="${p.pod}",uid="${(p.n * 97531 >>> 0).toString(16).padStart(8, '0')}",phase="${ph}"}`, ph === 'Running' ? '1' : '0']))];
    yield ['kube_pod_container_resource_requests', 'The number of requested resource by a container.', 'gauge', pods.flatMap((p) =>
      [['cpu', 'core', (rand() * 2).toFixed(3)], ['memory', 'byte', String(Math.floor(rand() * 4e9))]].map(([r, u, v]) =>
        [`{namespace="${p.ns}",pod="${p.pod}",uid="${(p.n * 97531 >>> 0).toString(16).padStart(8, '0')}",container="app",node="worker-${p.n % 40}",resource="${r}",unit="${u}"}`, v]))];
    yield ['kube_pod_start_time', 'Start time in unix timestamp for a pod.', 'gauge', pods.map((p) =>
      [`{namespace="${p.ns}",pod="${p.pod}",uid="${(p.n * 97531 >>> 0).toString(16).padStart(8, '0')}"}`, String(1.7e9 + Math.floor(rand() * 1e7))])];
    yield ['kube_pod_container_status_restarts_total', 'The number of container restarts per container.', 'counter', pods.map((p) =>
      [`{namespace="${p.ns}",pod="${p.pod}",uid="${(p.n * 97531 >>> 0).toString(16).padStart(8, '0')}",container="app"}`, String(Math.floor(rand() * rand() * 20))])];
  }
}

/**
 * Text exposition (format 0.0.4) of about `bytes` bytes, ending on a whole line.
 * Bodies up to 1 MB are node_exporter-like, larger ones kube-state-metrics-like.
 */
export function generateExposition(bytes, seed = 42) {
  const rand = createRandom(seed);
  const families = bytes <= 1_000_000 ? nodeFamilies(rand) : ksmFamilies(rand);
  const parts = [];
  let size = 0;
  for (const [name, help, type, series] of families) {
    let block = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
    for (const [suffix, value] of series) {
      block += `${name}${suffix} ${value}\n`;
    }
    parts.push(block);
    size += Buffer.byteLength(block);
    if (size >= bytes) break;
  }
  const text = parts.join('');
  // Cut back to the last whole line at or below the target, keeping at least one line.
  if (text.length <= bytes) return text;
  const cut = text.lastIndexOf('\n', bytes - 1);
  const body = text.slice(0, cut > 0 ? cut + 1 : text.indexOf('\n') + 1);
  // A body that ends inside a family still parses; drop a dangling "# HELP"/"# TYPE" pair.
  return body.replace(/(# HELP [^\n]*\n)(# TYPE [^\n]*\n)?$/, '');
}
