/** Reads and prints what survivor-sampler.ts wrote for a relay process (BENCH_HEAP_SURVIVORS=DIR). */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SurvivorReport } from './survivor-sampler.js';

/** Lines for the benchmark's output: live KB per window and the top allocating functions. */
export function survivorLines(dir: string, pid: number, label: string, top = 12): string[] {
  const file = join(dir, `${pid}-survivors.json`);
  if (!existsSync(file)) return [`${label}: no survivor report in ${file} (the phase ended before the sampler's windows did?)`];
  const r = JSON.parse(readFileSync(file, 'utf8')) as SurvivorReport;
  const kb = (bytes: number) => (bytes / r.windows / 1024).toFixed(1);
  return [
    `${label}: ${kb(r.totalBytes)} KiB sampled alive at the end of each ${r.windowMs} ms window (mean of ${r.windows}), by allocating function:`,
    ...r.sites.slice(0, top).map((s) => `  ${kb(s.bytes).padStart(7)} KiB  ${((100 * s.bytes) / r.totalBytes).toFixed(1).padStart(5)}%  ${s.site}`),
  ];
}

/** Pids of the reports written to `dir` since `sinceMs` (epoch ms; older ones are another run's). */
export function survivorPids(dir: string, sinceMs: number): number[] {
  return readdirSync(dir)
    .filter((f) => /^\d+-survivors\.json$/.test(f) && statSync(join(dir, f)).mtimeMs >= sinceMs)
    .map((f) => Number.parseInt(f, 10));
}
