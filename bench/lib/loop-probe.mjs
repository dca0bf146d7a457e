// Bench only, loaded into scrapecache with `node --import <this file>` (never in the product):
// the event loop's longest stall and the process's own CPU time, read by the bench at chosen
// moments. On SIGUSR2 it writes, to the file named by BENCH_LOOP_FILE, what it saw since the
// previous SIGUSR2 (or the start): the longest, 99th percentile and mean delay of a 1 ms timer
// (monitorEventLoopDelay: a synchronous stretch of T ms shows as a delay of about T ms), and
// the CPU time process.cpuUsage() counts in microseconds (finer than /proc's 10 ms ticks), and the garbage collections
// (longest pause, full ones); then starts afresh.
import { monitorEventLoopDelay, PerformanceObserver, constants } from 'node:perf_hooks';
import { writeFileSync, renameSync } from 'node:fs';

const file = process.env.BENCH_LOOP_FILE;
if (file) {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  // Garbage collections: the longest pause, and how many were full (mark-sweep-compact) ones.
  let gc = { maxMs: 0, totalMs: 0, major: 0, majorMaxMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.maxMs = Math.max(gc.maxMs, entry.duration);
      gc.totalMs += entry.duration;
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major++;
        gc.majorMaxMs = Math.max(gc.majorMaxMs, entry.duration);
      }
    }
  }).observe({ entryTypes: ['gc'] });
  let seq = 0;
  let since = process.cpuUsage();
  process.on('SIGUSR2', () => {
    const cpu = process.cpuUsage(since);
    since = process.cpuUsage();
    const ms = (ns) => (Number.isFinite(ns) ? ns / 1e6 : 0);
    const snapshot = {
      seq: ++seq,
      maxMs: ms(delay.max),
      p99Ms: ms(delay.percentile(99)),
      meanMs: ms(delay.mean),
      samples: delay.count,
      cpuUs: cpu.user + cpu.system,
      gc,
    };
    delay.reset();
    gc = { maxMs: 0, totalMs: 0, major: 0, majorMaxMs: 0 };
    // Written whole, then renamed: the bench never reads half a file.
    writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    renameSync(`${file}.tmp`, file);
  });
}
