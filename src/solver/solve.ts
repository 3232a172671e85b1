import type { MilpEngine, MilpSolution } from './engine.js';
import { buildModel, type ModelLayout } from './model.js';
import { buildProblem, type Problem, type ProblemError } from './problem.js';
import { singleTypeBaselines } from './baselines.js';
import { loadsOf, verifyCandidate, type Candidate } from './verify.js';
import { roundToSlices, toColumns } from './sliced-start.js';
import type {
  Baseline, BucketSplit, SolveFailure, SolveInput, SolveResult, SolveStats, SolveSuccess, TypeAllocation,
} from './types.js';

export interface SolveOptions {
  /** Monotonic clock in ms, injectable so tests control reported timings. */
  now?: () => number;
}

/** A gap this small (relative) is float noise, not an unproven bound. */
const PROVEN_GAP = 1e-7;
const INTEGRAL_TOL = 1e-6;

/**
 * Solves one Mélange instance. Pure and synchronous given the engine: it never throws for bad input or
 * engine trouble, it returns a typed failure instead. "optimal" is reported only when the engine proved it
 * AND the allocation passes an independent feasibility check AND no single replica can be dropped.
 */
export function solve(input: SolveInput, engine: MilpEngine, options: SolveOptions = {}): SolveResult {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const mode = input?.mode ?? 'fractional';
  const stats = (status: SolveStats['status'], extra: Partial<SolveStats> = {}): SolveStats => ({
    engine: engine.name, mode, ...(mode === 'sliced' ? { sliceFactor: input.sliceFactor ?? 8 } : {}),
    status, ms: now() - started, variables: 0, constraints: 0, ...extra,
  });

  const problem = buildProblem(input);
  if ('kind' in problem) return problemFailure(problem, stats('infeasible'));
  const baselines = singleTypeBaselines(problem, input.buckets);
  const layout = buildModel(problem);
  const size: Partial<SolveStats> = { variables: layout.model.numCols, constraints: layout.model.numRows };
  const fail = (f: Omit<SolveFailure, 'baselines' | 'stats'>): SolveFailure =>
    ({ ...f, baselines, stats: stats(f.status, size) });

  let start: Float64Array | undefined;
  let relaxedBound: number | undefined;
  if (problem.mode === 'sliced') {
    const relaxed = solveRelaxation(problem, engine);
    if (relaxed === 'infeasible') return fail(capacityExhausted(problem));
    if (relaxed) {
      relaxedBound = relaxed.bound;
      if (relaxed.start && objectiveOf(problem, relaxed.start.replicas) <= relaxed.bound + boundTol(relaxed.bound)) {
        // The rounded split already costs the proven lower bound: optimal without a MIP.
        size.method = 'fractional-bound';
        return success(problem, relaxed.start, baselines, { outcome: 'optimal', dualBound: relaxed.bound }, true, stats, size);
      }
      if (relaxed.start) start = toColumns(problem, layout, relaxed.start);
    }
  }

  const engineSol = engine.solve(layout.model, { timeLimitMs: Math.max(1, started + problem.timeLimitMs - now()), ...(start ? { start } : {}) });
  // The fractional optimum bounds every slice factor from below, however the MIP itself ended.
  const sol = relaxedBound === undefined ? engineSol
    : { ...engineSol, dualBound: Math.max(engineSol.dualBound ?? -Infinity, relaxedBound) };
  if (sol.method) size.method = sol.method;
  if (sol.outcome === 'infeasible') return fail(capacityExhausted(problem));
  if (sol.outcome === 'limit-no-incumbent') {
    return fail({ status: 'error', reason: 'Timeout', message: `no allocation found within ${problem.timeLimitMs} ms` });
  }
  if (sol.outcome === 'error' || !sol.x) {
    return fail({ status: 'error', reason: 'SolverError', message: sol.message ?? 'engine returned no solution' });
  }

  let candidate = extract(problem, layout, sol.x);
  if (typeof candidate === 'string') return fail({ status: 'error', reason: 'SolverError', message: candidate });
  const violations = verifyCandidate(problem, candidate);
  if (violations.length > 0) {
    return fail({ status: 'error', reason: 'SolverError', message: `engine allocation fails verification: ${violations.join('; ')}` });
  }

  // At the relaxation's bound nothing can be cheaper, so the one-replica-less check has nothing to find.
  const atBound = relaxedBound !== undefined && objectiveOf(problem, candidate.replicas) <= relaxedBound + boundTol(relaxedBound);
  let proven = sol.outcome === 'optimal' || atBound;
  const deadline = started + problem.timeLimitMs;
  const improved = proven && !atBound ? improveByDroppingReplicas(problem, candidate, engine, () => deadline - now()) : candidate;
  if (improved !== candidate) {
    // The engine called something optimal that a one-replica move beats: keep the better point, drop the claim.
    proven = false;
    candidate = improved;
  }
  return success(problem, candidate, baselines, sol, proven, stats, size);
}

const boundTol = (v: number) => 1e-9 * Math.max(1, Math.abs(v));

/** Solves the fractional relaxation of a sliced problem: its proven optimum and its split rounded to slices. */
function solveRelaxation(p: Problem, engine: MilpEngine): { bound: number; start?: Candidate } | 'infeasible' | undefined {
  const relaxed: Problem = { ...p, mode: 'fractional', slices: 1 };
  const layout = buildModel(relaxed);
  const sol = engine.solve(layout.model, { timeLimitMs: p.timeLimitMs / 4 });
  if (sol.outcome === 'infeasible') return 'infeasible';
  if (sol.outcome !== 'optimal' || !sol.x || sol.dualBound === undefined) return undefined;
  const fractional = extract(relaxed, layout, sol.x);
  if (typeof fractional === 'string') return { bound: sol.dualBound };
  const start = roundToSlices(p, fractional);
  return start && verifyCandidate(p, start).length === 0 ? { bound: sol.dualBound, start } : { bound: sol.dualBound };
}

function problemFailure(e: ProblemError, stats: SolveStats): SolveFailure {
  if (e.kind === 'InvalidInput') {
    return { status: 'infeasible', reason: 'InvalidInput', field: e.field, message: `${e.field}: ${e.message}`, baselines: [], stats };
  }
  return { status: 'infeasible', reason: 'BucketUnservable', bucket: e.bucket, message: e.message, baselines: [], stats };
}

function capacityExhausted(p: Problem): Omit<SolveFailure, 'baselines' | 'stats'> {
  const capped = p.gpus.filter((g) => Number.isFinite(g.max));
  const caps = capped.map((g) => `${g.id} ≤ ${g.max}`).join(', ');
  const rate = p.buckets.reduce((a, b) => a + b.rate, 0);
  return {
    status: 'infeasible', reason: 'CapacityExhausted', ...(capped[0] ? { gpu: capped[0].id } : {}),
    message: `replica caps (${caps || 'none'}) cannot carry ${rate.toFixed(3)} req/s under the SLO`,
  };
}

/** Reads replicas and per-bucket shares out of the engine's point, rounding integers it reported as floats. */
function extract(p: Problem, layout: ModelLayout, x: Float64Array): Candidate | string {
  const replicas: number[] = [];
  for (let g = 0; g < p.gpus.length; g++) {
    const v = x[layout.replicaCol(g)] ?? NaN;
    const r = Math.round(v) || 0; // never -0
    if (!(Math.abs(v - r) <= INTEGRAL_TOL)) return `engine returned non-integral replicas ${v} for ${p.gpus[g]?.id}`;
    replicas.push(r);
  }
  const weights = p.buckets.map(() => p.gpus.map(() => 0));
  layout.pairs.forEach((pr, i) => {
    let v = x[layout.firstPairCol + i] ?? 0;
    if (p.mode === 'sliced') v = Math.round(v);
    weights[pr.k]![pr.g] = Math.min(1, Math.max(0, v / p.slices));
  });
  for (const row of weights) {
    row.forEach((w, g) => { if (w < 1e-9) row[g] = 0; });
    const sum = row.reduce((a, b) => a + b, 0);
    if (sum > 0) row.forEach((w, g) => { row[g] = w / sum; });
  }
  return { replicas, weights };
}

const objectiveOf = (p: Problem, replicas: number[]) => p.gpus.reduce((acc, gpu, g) => {
  const b = replicas[g] ?? 0;
  const dev = p.changePenalty > 0 && p.current ? Math.abs(b - (p.current[g] ?? 0)) * p.changePenalty : 0;
  return acc + b * gpu.cost + dev;
}, 0);

/**
 * Local optimality check: for each type, would one replica fewer still carry the workload at a lower
 * objective? Feasibility of a fixed replica vector is a small LP (or, sliced, a small IP). A hit means the
 * engine's optimum was wrong; we take the better point and keep looking. Bounded by the solve's time limit.
 */
function improveByDroppingReplicas(p: Problem, start: Candidate, engine: MilpEngine, remainingMs: () => number): Candidate {
  let best = start;
  let improved = true;
  while (improved) {
    improved = false;
    for (let g = 0; g < p.gpus.length && remainingMs() > 0; g++) {
      const trial = [...best.replicas];
      if ((trial[g] ?? 0) <= (p.gpus[g]?.min ?? 0)) continue;
      trial[g] = trial[g]! - 1;
      if (objectiveOf(p, trial) >= objectiveOf(p, best.replicas) - 1e-12) continue;
      const layout = buildModel(p, trial);
      const sol = engine.solve(layout.model, { timeLimitMs: remainingMs() });
      if (!sol.x || (sol.outcome !== 'optimal' && sol.outcome !== 'limit-with-incumbent')) continue;
      const cand = extract(p, layout, sol.x);
      if (typeof cand !== 'string' && verifyCandidate(p, cand).length === 0) {
        best = cand;
        improved = true;
      }
    }
  }
  return best;
}

function success(
  p: Problem, c: Candidate, baselines: Baseline[], sol: MilpSolution, proven: boolean,
  stats: (s: SolveStats['status'], extra?: Partial<SolveStats>) => SolveStats, size: Partial<SolveStats>,
): SolveSuccess {
  const loads = loadsOf(p, c.weights);
  const allocation: TypeAllocation[] = p.gpus.map((gpu, g) => {
    const replicas = c.replicas[g] ?? 0;
    const load = loads[g] ?? 0;
    return { id: gpu.id, replicas, costPerHour: replicas * gpu.cost, load, utilisation: replicas > 0 ? load / replicas : 0 };
  });
  const costPerHour = allocation.reduce((a, t) => a + t.costPerHour, 0);
  const split: BucketSplit[] = p.buckets.map((b, k) => ({
    input: b.input, output: b.output, rate: b.rate,
    weights: Object.fromEntries(p.gpus.flatMap((gpu, g) => {
      const w = c.weights[k]?.[g] ?? 0;
      return w > 0 ? [[gpu.id, w]] : [];
    })),
  }));
  const feasible = baselines.filter((b): b is Extract<Baseline, { feasible: true }> => b.feasible);
  const best = feasible.reduce<(typeof feasible)[number] | undefined>((a, b) => (!a || b.costPerHour < a.costPerHour ? b : a), undefined);
  const savingsPercent = !best ? null : best.costPerHour > 0 ? ((best.costPerHour - costPerHour) / best.costPerHour) * 100 : 0;

  const objective = objectiveOf(p, c.replicas);
  const lowerBound = proven ? Math.min(sol.dualBound ?? objective, objective) : sol.dualBound;
  const gap = lowerBound === undefined ? undefined : objective > 0 ? Math.max(0, (objective - lowerBound) / objective) : 0;
  const status = proven && gap !== undefined && gap <= PROVEN_GAP ? 'optimal' : 'feasible-with-gap';
  return {
    status, allocation, costPerHour, split, baselines,
    ...(best ? { bestBaseline: { id: best.id, costPerHour: best.costPerHour } } : {}),
    savingsPercent,
    stats: stats(status, { ...size, ...(lowerBound !== undefined ? { lowerBound } : {}), ...(gap !== undefined ? { gap } : {}) }),
  };
}
