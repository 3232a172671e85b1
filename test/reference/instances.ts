// Shared by the solver parity test (test/unit/solver/parity.test.ts) and the solver benchmark
// (bench/solver.bench.ts): a seeded PRNG, the paper-scale catalogue, random instance builders, an
// independent capacity check, and the runner for the PuLP + CBC reference (melange_pulp.py).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GpuOption, SolveInput, SolveSuccess } from '../../src/solver/types.js';

// ---------------------------------------------------------------------------------------------------------
// Seeded PRNG (mulberry32): deterministic across runs and platforms.

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  float(lo: number, hi: number): number;
  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    float: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)] as T;
    },
  };
}

/** Rounds to `digits` significant digits (keeps JSON short, values still irregular). */
const sig = (v: number, digits = 6): number => Number(v.toPrecision(digits));

// ---------------------------------------------------------------------------------------------------------
// Paper-scale catalogue: the evaluation's 10 x 6 buckets and four GPU types at their list prices.

export const PAPER_INPUT_EDGES = [25, 100, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000];
export const PAPER_OUTPUT_EDGES = [25, 100, 250, 500, 1000, 2000];

/** A simple serving model: one request costs in/prefill + out/decode + overhead seconds of one replica. */
interface ServingModel {
  id: string;
  costPerHour: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  overheadS: number;
  /** Largest input (tokens) the replica's memory takes; larger buckets get throughput 0. */
  maxInput: number;
}

/**
 * Calibrated to the paper's rate sweep (≈1k in / 250–500 out: A100 ≈ 2.0 req/s, A10G ≈ 0.37 req/s), with
 * L4/A10G unable to take 12k+ token inputs. The fixed per-request overhead makes the cheap types the most
 * cost-efficient on small requests and the big ones on large requests, as in the paper.
 */
const PAPER_MODELS: ServingModel[] = [
  { id: 'L4', costPerHour: 0.7, prefillTokPerS: 3500, decodeTokPerS: 170, overheadS: 0.02, maxInput: 8000 },
  { id: 'A10G', costPerHour: 1.01, prefillTokPerS: 4000, decodeTokPerS: 200, overheadS: 0.02, maxInput: 8000 },
  { id: 'A100', costPerHour: 3.67, prefillTokPerS: 20000, decodeTokPerS: 1100, overheadS: 0.02, maxInput: 16000 },
  { id: 'H100', costPerHour: 7.516, prefillTokPerS: 45000, decodeTokPerS: 2400, overheadS: 0.02, maxInput: 16000 },
];

function throughputMatrix(m: ServingModel, inputEdges: number[], outputEdges: number[]): number[][] {
  return inputEdges.map((inp) =>
    outputEdges.map((out) =>
      inp > m.maxInput ? 0 : sig(1 / (inp / m.prefillTokPerS + out / m.decodeTokPerS + m.overheadS), 4),
    ),
  );
}

export function paperGpus(): GpuOption[] {
  return PAPER_MODELS.map((m) => ({
    id: m.id,
    costPerHour: m.costPerHour,
    maxThroughput: throughputMatrix(m, PAPER_INPUT_EDGES, PAPER_OUTPUT_EDGES),
  }));
}

function outer(pIn: number[], pOut: number[]): number[][] {
  const f = pIn.map((a) => pOut.map((b) => a * b));
  const sum = f.flat().reduce((x, y) => x + y, 0);
  return f.map((row) => row.map((v) => v / sum));
}

const SHORT_CHAT = outer([0.1, 0.25, 0.25, 0.2, 0.12, 0.05, 0.03, 0, 0, 0], [0.15, 0.35, 0.3, 0.15, 0.05, 0]);
const LONG_DOCS = outer([0, 0, 0, 0, 0.05, 0.15, 0.3, 0.3, 0.12, 0.08], [0.2, 0.4, 0.25, 0.1, 0.05, 0]);
const MIXED = SHORT_CHAT.map((row, i) => row.map((v, o) => 0.8 * v + 0.2 * (LONG_DOCS[i]?.[o] ?? 0)));

/** The paper's three workload mixes as [input][output] fractions over the 10 x 6 buckets. */
export const PAPER_MIXES: Record<'short-chat' | 'long-docs' | 'mixed-80-20', number[][]> = {
  'short-chat': SHORT_CHAT,
  'long-docs': LONG_DOCS,
  'mixed-80-20': MIXED,
};

export const PAPER_RATES = [1, 2, 4, 8, 12, 16, 24, 32];

export interface NamedInstance {
  name: string;
  input: SolveInput;
}

/** Paper scale: every mix x every rate, as a fractional-mode input (set mode/sliceFactor per use). */
export function paperScaleInstances(): NamedInstance[] {
  const gpus = paperGpus();
  const out: NamedInstance[] = [];
  for (const [mix, fractions] of Object.entries(PAPER_MIXES)) {
    for (const rate of PAPER_RATES) {
      out.push({
        name: `${mix}@${rate}`,
        input: {
          buckets: { inputEdges: PAPER_INPUT_EDGES, outputEdges: PAPER_OUTPUT_EDGES },
          workload: { totalRate: rate, fractions },
          gpus,
        },
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Large scale: many GPU types (think shapes: 1/2/4/8-GPU replicas of several families) over a fine grid.

const geometricEdges = (first: number, count: number, factor: number): number[] =>
  Array.from({ length: count }, (_, k) => Math.round(first * factor ** k));

export function largeScaleInstance(seed: number, opts: { types?: number; inputs?: number; outputs?: number } = {}): NamedInstance {
  const rng = seededRng(seed);
  const types = opts.types ?? 16;
  const inputEdges = geometricEdges(16, opts.inputs ?? 20, 1.6);
  const outputEdges = geometricEdges(16, opts.outputs ?? 10, 1.8);
  const gpus: GpuOption[] = [];
  for (let g = 0; g < types; g++) {
    const power = rng.float(1, 16); // relative compute of the replica shape
    const model: ServingModel = {
      id: `gpu-${g}`,
      // Price roughly proportional to power, with ±35% vendor/region noise: no type dominates.
      costPerHour: sig(0.45 * power * rng.float(0.65, 1.35), 4),
      prefillTokPerS: 3000 * power * rng.float(0.7, 1.3),
      decodeTokPerS: 150 * power * rng.float(0.7, 1.3),
      overheadS: rng.float(0.01, 0.04),
      maxInput: power < 3 ? rng.pick([4000, 8000, 12000]) : power < 6 ? rng.pick([16000, 32000]) : 1e9,
    };
    gpus.push({ id: model.id, costPerHour: model.costPerHour, maxThroughput: throughputMatrix(model, inputEdges, outputEdges) });
  }
  // Everything must be servable: the strongest type takes every input size.
  const strongest = gpus.reduce((a, b) => (b.costPerHour > a.costPerHour ? b : a));
  const strongModel: ServingModel = { id: strongest.id, costPerHour: strongest.costPerHour, prefillTokPerS: 40000, decodeTokPerS: 2000, overheadS: 0.02, maxInput: 1e9 };
  strongest.maxThroughput = throughputMatrix(strongModel, inputEdges, outputEdges);

  // Sparse-ish workload concentrated around a random "typical" request size.
  const ci = rng.float(0, inputEdges.length - 1);
  const co = rng.float(0, outputEdges.length - 1);
  const si = rng.float(2, 6);
  const so = rng.float(1.5, 4);
  const fractions = inputEdges.map((_, i) =>
    outputEdges.map((__, o) => {
      const d = ((i - ci) / si) ** 2 + ((o - co) / so) ** 2;
      const w = Math.exp(-d) * rng.float(0.3, 1);
      return w < 0.02 ? 0 : w;
    }),
  );
  const sum = fractions.flat().reduce((a, b) => a + b, 0);
  const totalRate = sig(rng.float(1, 64), 4);
  return {
    name: `large-${seed}`,
    input: {
      buckets: { inputEdges, outputEdges },
      workload: { totalRate, fractions: fractions.map((row) => row.map((v) => v / sum)) },
      gpus,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Random small instances for the parity test.

export interface RandomInstance extends NamedInstance {
  /** Built with a bucket that carries traffic and that no type can serve. */
  unservable: boolean;
}

export function randomInstance(seed: number, opts: { unservable?: boolean } = {}): RandomInstance {
  const rng = seededRng(seed);
  const nIn = rng.chance(0.25) ? 10 : rng.int(1, 10);
  const nOut = rng.chance(0.25) ? 6 : rng.int(1, 6);
  const nGpu = rng.int(2, 6);
  const S = rng.pick([1, 4, 8]);
  const inputEdges = Array.from({ length: nIn }, (_, k) => 25 * 2 ** k);
  const outputEdges = Array.from({ length: nOut }, (_, k) => 25 * 2 ** k);

  // Sparse fractions: each bucket carries traffic with probability ~0.4; at least one does.
  const density = rng.float(0.2, 0.6);
  const fractions = Array.from({ length: nIn }, () =>
    Array.from({ length: nOut }, () => (rng.chance(density) ? rng.float(0.01, 1) : 0)),
  );
  if (!fractions.flat().some((v) => v > 0)) (fractions[rng.int(0, nIn - 1)] as number[])[rng.int(0, nOut - 1)] = 1;
  const sum = fractions.flat().reduce((a, b) => a + b, 0);
  for (const row of fractions) for (let o = 0; o < row.length; o++) row[o] = (row[o] as number) / sum;
  const totalRate = sig(rng.float(0.5, 32), 5);

  const gpus: GpuOption[] = [];
  for (let g = 0; g < nGpu; g++) {
    const zeroP = rng.float(0, 0.35);
    const scale = rng.float(0.3, 40);
    const gpu: GpuOption = {
      id: `g${g}`,
      costPerHour: sig(rng.float(0.5, 8), 4),
      maxThroughput: Array.from({ length: nIn }, () =>
        Array.from({ length: nOut }, () => (rng.chance(zeroP) ? 0 : sig(scale * rng.float(0.2, 1), 5))),
      ),
    };
    if (rng.chance(0.12)) gpu.minReplicas = rng.int(1, 2);
    if (rng.chance(0.12)) gpu.maxReplicas = rng.int(2, 12);
    gpus.push(gpu);
  }

  // Every bucket with traffic gets at least one server, except the chosen one in an unservable instance.
  const busy: Array<[number, number]> = [];
  fractions.forEach((row, i) => row.forEach((f, o) => { if (f > 0) busy.push([i, o]); }));
  const dead = opts.unservable ? rng.pick(busy) : undefined;
  for (const [i, o] of busy) {
    const row = (g: GpuOption): number[] => g.maxThroughput[i] as number[];
    if (dead && dead[0] === i && dead[1] === o) {
      for (const g of gpus) row(g)[o] = 0;
    } else if (!gpus.some((g) => (row(g)[o] ?? 0) > 0)) {
      row(rng.pick(gpus))[o] = sig(rng.float(0.5, 20), 5);
    }
  }
  // Caps must not accidentally make every instance infeasible: a capped type is capped, the others are not.

  const headroomPercent = rng.pick([0, 0, 10, 25]);
  const useRates = rng.chance(0.5);
  const input: SolveInput = {
    buckets: { inputEdges, outputEdges },
    workload: useRates
      ? { bucketRates: fractions.map((row) => row.map((f) => totalRate * f)) }
      : { totalRate, fractions },
    gpus,
    mode: 'sliced',
    sliceFactor: S,
    ...(headroomPercent > 0 ? { headroomPercent } : {}),
  };
  return { name: `random-${seed}${opts.unservable ? '-unservable' : ''}`, input, unservable: opts.unservable === true };
}

/** The paper's worked example (from the authors' code): S = 1 gives 3 x A10G + 1 x A100 = $6.70/h. */
export const WORKED_EXAMPLE: SolveInput = {
  buckets: { inputEdges: [500, 2000], outputEdges: [250, 1000] },
  workload: { totalRate: 30, fractions: [[0.2, 0.1], [0.5, 0.2]] },
  gpus: [
    { id: 'A10G', costPerHour: 1.01, maxThroughput: [[2, 1], [5, 2]] },
    { id: 'A100', costPerHour: 3.67, maxThroughput: [[20, 20], [40, 20]] },
  ],
  mode: 'sliced',
  sliceFactor: 1,
};

// ---------------------------------------------------------------------------------------------------------
// Independent check of an allocation, from the instance alone (not from the solver's own numbers).

/** Per-bucket rates after headroom, [input][output], as the paper defines them (r_b = R * w_b). */
export function instanceRates(input: SolveInput): number[][] {
  const nIn = input.buckets.inputEdges.length;
  const nOut = input.buckets.outputEdges.length;
  const mult = 1 + (input.headroomPercent ?? 0) / 100;
  const w = input.workload;
  let base: number[][];
  if ('bucketRates' in w) {
    base = Array.from({ length: nIn }, (_, i) => Array.from({ length: nOut }, (__, o) => w.bucketRates[i]?.[o] ?? 0));
  } else {
    const sum = w.fractions.flat().reduce((a, b) => a + b, 0);
    base = Array.from({ length: nIn }, (_, i) =>
      Array.from({ length: nOut }, (__, o) => (sum > 0 ? (w.totalRate * (w.fractions[i]?.[o] ?? 0)) / sum : 0)),
    );
  }
  return base.map((row) => row.map((r) => r * mult));
}

/**
 * Returns the problems found in `result` for `input` (empty = sound): every bucket with traffic is fully split
 * over types that can serve it; in sliced mode every share is a multiple of 1/S; per type
 * Σ_b rate_b·w_bg / T_gb ≤ replicas_g; replica bounds hold; the cost is Σ price·replicas.
 */
export function checkAllocation(input: SolveInput, result: SolveSuccess, tol = 1e-6): string[] {
  const problems: string[] = [];
  const rates = instanceRates(input);
  const gpuById = new Map(input.gpus.map((g) => [g.id, g]));
  const replicas = new Map(result.allocation.map((a) => [a.id, a.replicas]));
  const load = new Map(input.gpus.map((g) => [g.id, 0]));
  const splitByBucket = new Map(result.split.map((s) => [`${s.input},${s.output}`, s]));
  const S = input.mode === 'sliced' ? input.sliceFactor ?? 8 : undefined;

  rates.forEach((row, i) => row.forEach((rate, o) => {
    if (rate <= 1e-12) return;
    const split = splitByBucket.get(`${i},${o}`);
    if (!split) { problems.push(`bucket [${i}][${o}] has ${rate} req/s but no split`); return; }
    let total = 0;
    for (const [id, w] of Object.entries(split.weights)) {
      const gpu = gpuById.get(id);
      if (!gpu) { problems.push(`bucket [${i}][${o}]: unknown GPU id ${id}`); continue; }
      if (!(w >= -tol && w <= 1 + tol)) problems.push(`bucket [${i}][${o}]: weight ${w} for ${id} outside [0,1]`);
      if (S !== undefined && Math.abs(w * S - Math.round(w * S)) > 1e-6) {
        problems.push(`bucket [${i}][${o}]: weight ${w} for ${id} is not a multiple of 1/${S}`);
      }
      total += w;
      if (w <= 0) continue;
      const t = gpu.maxThroughput[i]?.[o] ?? 0;
      if (!(t > 0)) { problems.push(`bucket [${i}][${o}] sent to ${id}, which cannot serve it`); continue; }
      load.set(id, (load.get(id) ?? 0) + (rate * w) / t);
    }
    if (Math.abs(total - 1) > 1e-6) problems.push(`bucket [${i}][${o}]: weights sum to ${total}`);
  }));

  let cost = 0;
  for (const g of input.gpus) {
    const n = replicas.get(g.id) ?? 0;
    if (!Number.isInteger(n) || n < 0) problems.push(`${g.id}: replicas ${n} not a non-negative integer`);
    if (n < (g.minReplicas ?? 0)) problems.push(`${g.id}: ${n} replicas < minReplicas ${g.minReplicas}`);
    if (g.maxReplicas !== undefined && n > g.maxReplicas) problems.push(`${g.id}: ${n} replicas > maxReplicas ${g.maxReplicas}`);
    const l = load.get(g.id) ?? 0;
    if (l > n + tol) problems.push(`${g.id}: load ${l.toFixed(9)} replica-equivalents > ${n} replicas`);
    cost += g.costPerHour * n;
  }
  if (Math.abs(cost - result.costPerHour) > 1e-6) problems.push(`costPerHour ${result.costPerHour} != Σ price·replicas ${cost}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// The PuLP + CBC reference, one python process per batch.

export interface ReferenceResult {
  status: 'optimal' | 'feasible' | 'infeasible' | 'timeout' | 'error';
  cost?: number;
  replicas?: Record<string, number>;
  /** Wall time of CBC's solve for this instance, measured in python (excludes interpreter start). */
  ms: number;
  /** Model construction time in python. */
  buildMs?: number;
  variables?: number;
  constraints?: number;
  message?: string;
}

export const REFERENCE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'melange_pulp.py');

export class ReferenceUnavailableError extends Error {}

/**
 * The interpreter that has pulp: $MELANGE_PYTHON if set, else `python3` on PATH, else /usr/bin/python3 (where
 * the Debian python3-pulp package lives even when PATH starts with a pyenv/venv python). Throws a
 * ReferenceUnavailableError explaining how to install it otherwise.
 */
export function findReferencePython(): string {
  const env = process.env['MELANGE_PYTHON'];
  const candidates = env ? [env] : ['python3', '/usr/bin/python3'];
  const tried: string[] = [];
  for (const py of candidates) {
    if (py.startsWith('/') && !existsSync(py)) { tried.push(`${py}: not found`); continue; }
    const r = spawnSync(py, ['-c', 'import pulp'], { encoding: 'utf8' });
    if (r.status === 0) return py;
    tried.push(`${py}: ${r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop()}`);
  }
  throw new ReferenceUnavailableError(
    'The PuLP + CBC reference solver is unavailable (no python3 with the pulp module). Install the Debian ' +
      'packages: `apt-get update && apt-get install -y python3-pulp coinor-cbc` (hack/setup-deps.sh does this), ' +
      `or point MELANGE_PYTHON at an interpreter that has pulp. Tried: ${tried.join('; ')}`,
  );
}

export function runReference(
  instances: SolveInput[],
  opts: { timeLimitSec?: number; progress?: boolean; timeoutMs?: number } = {},
): ReferenceResult[] {
  const py = findReferencePython();
  const args = [REFERENCE_SCRIPT];
  if (opts.timeLimitSec !== undefined) args.push('--time-limit', String(opts.timeLimitSec));
  if (opts.progress) args.push('--progress');
  const r = spawnSync(py, args, {
    input: JSON.stringify(instances),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['pipe', 'pipe', opts.progress ? 'inherit' : 'pipe'],
    ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
  });
  if (r.error) throw new ReferenceUnavailableError(`running ${py} ${REFERENCE_SCRIPT}: ${r.error.message}`);
  if (r.status === 3 || r.status === 4) throw new ReferenceUnavailableError((r.stderr ?? '').trim());
  if (r.status !== 0) throw new Error(`${py} ${REFERENCE_SCRIPT} exited ${r.status}: ${(r.stderr ?? '').trim()}`);
  const out = JSON.parse(r.stdout) as ReferenceResult[];
  if (!Array.isArray(out) || out.length !== instances.length) {
    throw new Error(`reference returned ${Array.isArray(out) ? out.length : 'no'} results for ${instances.length} instances`);
  }
  return out;
}

/**
 * The same, split over `workers` python processes running at once (each CBC is single-threaded, so on a machine
 * with at least `workers` cores the per-instance times are those of a lone run). Results come back in order.
 */
export async function runReferenceParallel(
  instances: SolveInput[],
  opts: { timeLimitSec?: number; progress?: boolean; workers: number },
): Promise<ReferenceResult[]> {
  const py = findReferencePython();
  const workers = Math.max(1, Math.min(opts.workers, instances.length));
  // Round-robin, so slow and fast instances spread evenly.
  const shards = Array.from({ length: workers }, (_, w) => instances.map((_, k) => k).filter((k) => k % workers === w));
  const runShard = (idx: number[]): Promise<ReferenceResult[]> =>
    new Promise((resolve, reject) => {
      const args = [REFERENCE_SCRIPT];
      if (opts.timeLimitSec !== undefined) args.push('--time-limit', String(opts.timeLimitSec));
      if (opts.progress) args.push('--progress');
      const child = spawn(py, args, { stdio: ['pipe', 'pipe', opts.progress ? 'inherit' : 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
      child.on('error', (e) => reject(new ReferenceUnavailableError(`running ${py} ${REFERENCE_SCRIPT}: ${e.message}`)));
      child.on('close', (code) => {
        if (code === 3 || code === 4) return reject(new ReferenceUnavailableError(err.trim()));
        if (code !== 0) return reject(new Error(`${py} ${REFERENCE_SCRIPT} exited ${code}: ${err.trim()}`));
        try {
          const res = JSON.parse(out) as ReferenceResult[];
          if (res.length !== idx.length) throw new Error(`reference returned ${res.length} results for ${idx.length} instances`);
          resolve(res);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
      child.stdin!.end(JSON.stringify(idx.map((k) => instances[k])));
    });
  const parts = await Promise.all(shards.map(runShard));
  const results: ReferenceResult[] = new Array<ReferenceResult>(instances.length);
  shards.forEach((idx, w) => idx.forEach((k, j) => { results[k] = parts[w]![j]!; }));
  return results;
}

// ---------------------------------------------------------------------------------------------------------
// Small statistics helpers for the bench.

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k] as number;
}

/** Cost agreement used by both the test and the bench: 1e-6 absolute or 1e-9 relative. */
export const costsAgree = (a: number, b: number): boolean =>
  Math.abs(a - b) <= 1e-6 || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
