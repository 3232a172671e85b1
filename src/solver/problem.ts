import type { SolveInput, SolveMode } from './types.js';

// Validates a SolveInput and turns it into the plain numbers the model builder needs. Every rejection names
// the field, so a user error surfaces as a typed result instead of a NaN or a thrown generic error.

export interface ActiveBucket {
  input: number;
  output: number;
  /** req/s after headroom, > 0. */
  rate: number;
}

export interface ProblemGpu {
  id: string;
  cost: number;
  min: number;
  /** Infinity when uncapped. */
  max: number;
  /** Per active bucket: req/s one replica sustains; 0 = cannot serve. */
  tput: number[];
}

export interface Problem {
  mode: SolveMode;
  /** Slices per bucket; 1 in fractional mode (unused there). */
  slices: number;
  buckets: ActiveBucket[];
  gpus: ProblemGpu[];
  current: number[] | undefined;
  changePenalty: number;
  timeLimitMs: number;
}

export type ProblemError =
  | { kind: 'InvalidInput'; field: string; message: string }
  | { kind: 'BucketUnservable'; bucket: { input: number; output: number }; message: string };

export const DEFAULT_TIME_LIMIT_MS = 10_000;
export const MAX_SLICE_FACTOR = 1024;
/** Rates below this are treated as no traffic; avoids degenerate coefficients from float noise. */
const MIN_RATE = 1e-12;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const invalid = (field: string, message: string): ProblemError => ({ kind: 'InvalidInput', field, message });

function checkEdges(edges: unknown, field: string): ProblemError | undefined {
  if (!Array.isArray(edges) || edges.length === 0) return invalid(field, 'must be a non-empty list of token counts');
  for (let i = 0; i < edges.length; i++) {
    const e: unknown = edges[i];
    if (!isNum(e) || e <= 0) return invalid(`${field}[${i}]`, 'must be a positive number');
    if (i > 0 && e <= (edges[i - 1] as number)) return invalid(`${field}[${i}]`, 'edges must be strictly increasing');
  }
  return undefined;
}

/** Reads an [input][output] matrix; a missing row or cell reads as 0 when `allowMissing`. */
function readMatrix(m: unknown, rows: number, cols: number, field: string, allowMissing: boolean): number[][] | ProblemError {
  if (!Array.isArray(m)) return invalid(field, `must be a ${rows}x${cols} matrix`);
  if (m.length > rows || (!allowMissing && m.length !== rows)) return invalid(field, `has ${m.length} rows, buckets have ${rows} input ranges`);
  const out: number[][] = [];
  for (let i = 0; i < rows; i++) {
    const row: unknown = m[i] ?? (allowMissing ? [] : undefined);
    if (!Array.isArray(row)) return invalid(`${field}[${i}]`, 'must be a list');
    if (row.length > cols || (!allowMissing && row.length !== cols)) {
      return invalid(`${field}[${i}]`, `has ${row.length} columns, buckets have ${cols} output ranges`);
    }
    const r: number[] = [];
    for (let j = 0; j < cols; j++) {
      const v: unknown = row[j] ?? (allowMissing ? 0 : undefined);
      if (!isNum(v) || v < 0) return invalid(`${field}[${i}][${j}]`, 'must be a finite number >= 0');
      r.push(v);
    }
    out.push(r);
  }
  return out;
}

function checkReplicaBound(v: unknown, field: string): ProblemError | undefined {
  if (v === undefined) return undefined;
  return isNum(v) && Number.isInteger(v) && v >= 0 ? undefined : invalid(field, 'must be an integer >= 0');
}

export function buildProblem(input: SolveInput): Problem | ProblemError {
  if (typeof input !== 'object' || input === null) return invalid('', 'input must be an object');
  const edgeErr = checkEdges(input.buckets?.inputEdges, 'buckets.inputEdges') ?? checkEdges(input.buckets?.outputEdges, 'buckets.outputEdges');
  if (edgeErr) return edgeErr;
  const nIn = input.buckets.inputEdges.length;
  const nOut = input.buckets.outputEdges.length;

  const mode = input.mode ?? 'fractional';
  if (mode !== 'fractional' && mode !== 'sliced') return invalid('mode', "must be 'fractional' or 'sliced'");
  const slices = mode === 'sliced' ? input.sliceFactor ?? 8 : 1;
  if (!Number.isInteger(slices) || slices < 1 || slices > MAX_SLICE_FACTOR) {
    return invalid('sliceFactor', `must be an integer in 1..${MAX_SLICE_FACTOR}`);
  }
  const headroom = input.headroomPercent ?? 0;
  if (!isNum(headroom) || headroom < 0) return invalid('headroomPercent', 'must be a finite number >= 0');
  const timeLimitMs = input.timeLimitMs ?? DEFAULT_TIME_LIMIT_MS;
  if (!isNum(timeLimitMs) || timeLimitMs <= 0) return invalid('timeLimitMs', 'must be a positive number');
  const changePenalty = input.changePenaltyPerReplica ?? 0;
  if (!isNum(changePenalty) || changePenalty < 0) return invalid('changePenaltyPerReplica', 'must be a finite number >= 0');

  const rates = workloadRates(input, nIn, nOut);
  if (!Array.isArray(rates)) return rates;
  const scale = 1 + headroom / 100;
  const buckets: ActiveBucket[] = [];
  rates.forEach((row, i) => row.forEach((r, j) => {
    if (r * scale > MIN_RATE) buckets.push({ input: i, output: j, rate: r * scale });
  }));

  if (!Array.isArray(input.gpus) || input.gpus.length === 0) return invalid('gpus', 'must list at least one GPU type');
  const gpus: ProblemGpu[] = [];
  const seen = new Set<string>();
  for (const [g, opt] of input.gpus.entries()) {
    const f = `gpus[${g}]`;
    if (typeof opt?.id !== 'string' || opt.id === '') return invalid(`${f}.id`, 'must be a non-empty string');
    if (seen.has(opt.id)) return invalid(`${f}.id`, `duplicate GPU id '${opt.id}'`);
    seen.add(opt.id);
    if (!isNum(opt.costPerHour) || opt.costPerHour <= 0) return invalid(`${f}.costPerHour`, 'must be a positive number');
    const bound = checkReplicaBound(opt.minReplicas, `${f}.minReplicas`) ?? checkReplicaBound(opt.maxReplicas, `${f}.maxReplicas`);
    if (bound) return bound;
    const min = opt.minReplicas ?? 0;
    const max = opt.maxReplicas ?? Infinity;
    if (min > max) return invalid(`${f}.minReplicas`, `minReplicas ${min} exceeds maxReplicas ${max}`);
    const tp = readMatrix(opt.maxThroughput, nIn, nOut, `${f}.maxThroughput`, true);
    if (!Array.isArray(tp)) return tp;
    gpus.push({ id: opt.id, cost: opt.costPerHour, min, max, tput: buckets.map((b) => tp[b.input]?.[b.output] ?? 0) });
  }

  for (const [k, b] of buckets.entries()) {
    if (!gpus.some((g) => g.max > 0 && (g.tput[k] ?? 0) > 0)) {
      return {
        kind: 'BucketUnservable',
        bucket: { input: b.input, output: b.output },
        message: `bucket (input ≤ ${input.buckets.inputEdges[b.input]} tokens, output ≤ ${input.buckets.outputEdges[b.output]} tokens) ` +
          `has ${b.rate.toFixed(3)} req/s but no GPU type can serve it`,
      };
    }
  }

  let current: number[] | undefined;
  if (input.current !== undefined) {
    current = [];
    for (const g of gpus) {
      const c = input.current[g.id] ?? 0;
      if (!isNum(c) || !Number.isInteger(c) || c < 0) return invalid(`current.${g.id}`, 'must be an integer >= 0');
      current.push(c);
    }
  }
  return { mode, slices, buckets, gpus, current, changePenalty, timeLimitMs };
}

function workloadRates(input: SolveInput, nIn: number, nOut: number): number[][] | ProblemError {
  const w = input.workload as Partial<{ totalRate: unknown; fractions: unknown; bucketRates: unknown }> | undefined;
  if (w && 'bucketRates' in w && w.bucketRates !== undefined) {
    return readMatrix(w.bucketRates, nIn, nOut, 'workload.bucketRates', false);
  }
  if (!w || !('totalRate' in w)) return invalid('workload', 'must give totalRate with fractions, or bucketRates');
  if (!isNum(w.totalRate) || w.totalRate < 0) return invalid('workload.totalRate', 'must be a finite number >= 0');
  const fr = readMatrix(w.fractions, nIn, nOut, 'workload.fractions', false);
  if (!Array.isArray(fr)) return fr;
  const sum = fr.flat().reduce((a, b) => a + b, 0);
  if (w.totalRate > 0 && sum <= 0) return invalid('workload.fractions', 'must have a positive total when totalRate > 0');
  // Fractions are treated as relative weights so that rounded inputs (summing to 0.999) keep the total rate.
  const total = w.totalRate;
  return fr.map((row) => row.map((f) => (sum > 0 ? (total * f) / sum : 0)));
}
