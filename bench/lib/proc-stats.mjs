// CPU time and memory of a process and its descendants, read from /proc (Linux only).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond;
function clockTicks() {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** `rootPid` and every live descendant. */
export function processTree(rootPid) {
  const parentOf = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      parentOf.set(Number(entry), Number(statFields(entry)[1]));
    } catch { /* exited meanwhile */ }
  }
  const tree = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (!tree.has(pid) && tree.has(ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return [...tree];
}

/** User + system CPU seconds of the process tree (all threads). */
export function cpuSeconds(rootPid) {
  let ticks = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const fields = statFields(pid);
      // utime and stime are fields 14 and 15 of stat; here indexes 11 and 12.
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* exited meanwhile */ }
  }
  return ticks / clockTicks();
}

/** CPU seconds of each process of the tree: Map pid -> { seconds, comm, root }. */
export function cpuByProcess(rootPid) {
  const byPid = new Map();
  for (const pid of processTree(rootPid)) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      byPid.set(pid, { seconds: (Number(fields[11]) + Number(fields[12])) / clockTicks(), comm, root: pid === rootPid });
    } catch { /* exited meanwhile */ }
  }
  return byPid;
}

/**
 * Memory of the process tree: `rss` sums VmRSS (pages shared between the processes, such as the
 * node binary's text, are counted once per process); `private` sums Private_Clean + Private_Dirty
 * from smaps_rollup (pages only that process maps: what the tree's exit would free, shared text
 * left out); `processes` counts them.
 */
export function memoryOfTree(rootPid) {
  let rss = 0;
  let priv = 0;
  let processes = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const match = /VmRSS:\s+(\d+) kB/.exec(status);
      if (!match) continue; // a kernel thread or a zombie
      rss += Number(match[1]) * 1024;
      processes++;
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      for (const m of rollup.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) priv += Number(m[1]) * 1024;
    } catch { /* exited meanwhile, or no smaps_rollup */ }
  }
  return { rss, private: priv, processes };
}

/**
 * For each established TCP connection to `serverPort` on 127.0.0.1 (/proc/net/tcp), the process
 * of `rootPid`'s tree that holds the server-side socket: Map clientPort -> pid.
 */
export function connectionOwners(rootPid, serverPort) {
  const inodeToClientPort = new Map();
  const hexPort = serverPort.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const [local, remote, state, inode] = [cols[1], cols[2], cols[3], cols[9]];
    if (state !== '01' || !local.endsWith(`:${hexPort}`)) continue; // 01: ESTABLISHED
    inodeToClientPort.set(inode, parseInt(remote.split(':')[1], 16));
  }
  const owners = new Map();
  for (const pid of processTree(rootPid)) {
    let fds;
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match && inodeToClientPort.has(match[1])) owners.set(inodeToClientPort.get(match[1]), pid);
      } catch { /* closed meanwhile */ }
    }
  }
  return owners;
}

/** Resident set size in bytes of the process tree (shared pages are counted once per process). */
export function rssBytes(rootPid) {
  let bytes = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) bytes += Number(match[1]) * 1024;
    } catch { /* exited meanwhile */ }
  }
  return bytes;
}

/** Machine-wide CPU seconds from /proc/stat: busy (user, nice, system, irq, softirq) and steal. */
export function machineCpuSeconds() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal = 0] = fields;
  return { busy: (user + nice + system + irq + softirq) / clockTicks(), steal: steal / clockTicks() };
}

/** CPU seconds of this process plus its children that have exited and been reaped. */
export function selfAndReapedChildrenSeconds() {
  const fields = statFields('self');
  // utime, stime, cutime, cstime: fields 14-17 of stat.
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / clockTicks();
}
