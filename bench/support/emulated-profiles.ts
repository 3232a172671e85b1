/**
 * The emulator's own capacity per GPU type and size bucket under a mean-TPOT SLO — what `melangectl profile`
 * measures against the emulator, computed exactly in simulated time with `emulatedProfile()` (each bucket at its
 * upper edges, like the paper's profiler). docs/emulator.md: plan emulator experiments with these, not with the
 * illustrative catalog, which overstates the emulator in long-prompt buckets.
 *
 * About a minute of CPU per GPU type and SLO, so results are cached under
 * ~/.cache/melange-operator/bench/ keyed by a hash of the emulator's model and engine sources, the edges, the SLO
 * and the options: any change to the emulator recomputes them.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GPU_MODELS, MODEL_CONSTANTS, emulatedMaxThroughput, type GpuType } from '../../src/emulator/index.js';
import { repoPath } from '../../test/support/paths.js';

const ITERATIONS = 14;
const SOURCES = [...['engine.ts', 'simulate.ts', 'gpu-models.ts'].map((f) => repoPath('src', 'emulator', f)), repoPath('src', 'common', 'random.ts')];

export function profileCacheFile(gpu: GpuType, inputEdges: readonly number[], outputEdges: readonly number[], tpotMillis: number): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: 1, gpu: GPU_MODELS[gpu], c: MODEL_CONSTANTS, inputEdges, outputEdges, tpotMillis, iterations: ITERATIONS }));
  for (const f of SOURCES) h.update(readFileSync(f));
  const dir = join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'melange-operator', 'bench');
  mkdirSync(dir, { recursive: true });
  return join(dir, `emulated-profile-${gpu}-${tpotMillis}ms-${h.digest('hex').slice(0, 16)}.json`);
}

/** [input range][output range] → req/s one replica of `gpu` sustains at mean TPOT ≤ tpotMillis (0 = cannot serve). */
export function cachedEmulatedProfile(
  gpu: GpuType,
  inputEdges: readonly number[],
  outputEdges: readonly number[],
  tpotMillis: number,
  log: (s: string) => void = () => undefined,
): { matrix: number[][]; cached: boolean; seconds: number } {
  const file = profileCacheFile(gpu, inputEdges, outputEdges, tpotMillis);
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as { matrix: number[][] };
    if (m.matrix.length === inputEdges.length && m.matrix.every((r) => r.length === outputEdges.length)) return { matrix: m.matrix, cached: true, seconds: 0 };
  } catch {
    /* not cached yet */
  }
  log(`  profiling the ${gpu} emulator at ${tpotMillis} ms in simulated time (about a minute; cached afterwards)`);
  const t0 = performance.now();
  const matrix = inputEdges.map((i) => outputEdges.map((o) => Number(emulatedMaxThroughput(gpu, i, o, tpotMillis, { iterations: ITERATIONS }).toPrecision(3))));
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(`${file}.tmp`, JSON.stringify({ gpu, tpotMillis, inputEdges, outputEdges, iterations: ITERATIONS, matrix }));
  renameSync(`${file}.tmp`, file);
  return { matrix, cached: false, seconds };
}
