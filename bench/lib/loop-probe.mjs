// Bench only, loaded into scrapecache with `node --import <this file>` (never in the product):
// the event loop's longest stall and the process's own CPU time, read by the bench at chosen
// moments. On SIGUSR2 it writes, to the file named by BENCH_LOOP_FILE, what it saw since the
// previous SIGUSR2 (or the start): the longest, 99th percentile and mean delay of a 1 ms timer
// (monitorEventLoopDelay: a synchronous stretch of T ms shows as a delay of about T ms), and
// the CPU time process.cpuUsage() counts in microseconds (finer than /proc's 10 ms ticks); then starts afresh.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { writeFileSync, renameSync } from 'node:fs';

const file = process.env.BENCH_LOOP_FILE;
if (file) {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
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
    };
    delay.reset();
    // Written whole, then renamed: the bench never reads half a file.
    writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    renameSync(`${file}.tmp`, file);
  });
}
