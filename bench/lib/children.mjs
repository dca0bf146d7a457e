// Every process the benchmark starts goes through here, so that all of them are ended on exit,
// on error and on SIGINT/SIGTERM. Each child leads its own process group, so nginx's workers and
// varnishd's cache process go down with their parent.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const running = new Set();
let interruptedBy = null;

/** The signal that stopped the run, or null. */
export function interrupted() {
  return interruptedBy;
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try { child.kill(signal); } catch { /* already gone */ }
  }
}

let cleanupInstalled = false;
function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of running) killGroup(child, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      interruptedBy = signal;
      process.stderr.write(`\nbench: ${signal}, stopping ${running.size} child process(es)\n`);
      for (const child of running) killGroup(child, 'SIGTERM');
      setTimeout(() => process.exit(130), 300).unref();
    });
  }
}

/**
 * Starts a tracked child. `cpus` (e.g. "1") pins it with taskset, which execs in place, so
 * `pid` is the process itself. Output is kept (last 64 KiB of each stream) for error messages.
 */
export function startChild(name, command, args, { cpus, env, cwd, inherit = false } = {}) {
  installCleanup();
  const [cmd, argv] = cpus ? ['taskset', ['-c', cpus, command, ...args]] : [command, args];
  const child = spawn(cmd, argv, {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', inherit ? 'inherit' : 'pipe'],
  });
  running.add(child);
  const handle = {
    name,
    child,
    pid: child.pid,
    stdout: '',
    stderr: '',
    exited: false,
    exitCode: null,
    lineWaiters: [],
  };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    handle.stdout = (handle.stdout + chunk).slice(-65536);
    for (const waiter of handle.lineWaiters) waiter();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk) => {
    handle.stderr = (handle.stderr + chunk).slice(-65536);
  });
  child.on('exit', (code, signal) => {
    handle.exited = true;
    handle.exitCode = code ?? signal;
    running.delete(child);
    for (const waiter of handle.lineWaiters) waiter();
  });
  child.on('error', (error) => {
    handle.exited = true;
    handle.exitCode = error.code;
    handle.stderr += String(error);
    running.delete(child);
  });
  return handle;
}

/** Resolves with the first stdout line matching `test`; rejects if the child exits or times out. */
export function waitForLine(handle, test, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${handle.name}: no ready line after ${timeoutMs} ms\n${tail(handle)}`)), timeoutMs);
    const check = () => {
      const line = handle.stdout.split('\n').find((l) => test(l));
      if (line !== undefined) finish(null, line);
      else if (handle.exited) finish(new Error(`${handle.name} exited (${handle.exitCode}) before it was ready\n${tail(handle)}`));
    };
    function finish(error, line) {
      clearTimeout(timer);
      handle.lineWaiters = handle.lineWaiters.filter((w) => w !== check);
      if (error) reject(error);
      else resolve(line);
    }
    handle.lineWaiters.push(check);
    check();
  });
}

/** Resolves when the child has exited; returns its exit code (or signal name). */
export async function waitForExit(handle) {
  if (!handle.exited) await once(handle.child, 'exit');
  return handle.exitCode;
}

/** SIGTERM the child's group, then SIGKILL after `graceMs`. */
export async function stopChild(handle, graceMs = 5000) {
  if (!handle || handle.exited) return;
  killGroup(handle.child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(handle.child, 'SIGKILL'), graceMs);
  await waitForExit(handle);
  clearTimeout(timer);
  // Grandchildren (nginx workers) that outlived the leader.
  killGroup(handle.child, 'SIGKILL');
}

export async function stopAllChildren() {
  await Promise.all([...running].map((child) => {
    killGroup(child, 'SIGTERM');
    return once(child, 'exit');
  }));
}

export function tail(handle, lines = 15) {
  const text = `${handle.stderr}\n${handle.stdout}`.trim().split('\n').slice(-lines).join('\n');
  return text ? `--- last output of ${handle.name} ---\n${text}` : '';
}
