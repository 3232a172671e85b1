import type { Problem } from './problem.js';
import { fullLoad } from './model.js';

// An independent check of an allocation, computed from the problem alone (not from the engine's row
// activities): the engine's claim is never trusted on its own.

/** Relative slack allowed on a capacity row; engines work to ~1e-7 feasibility tolerance. */
export const CAPACITY_TOL = 1e-6;
const WEIGHT_TOL = 1e-6;

export interface Candidate {
  replicas: number[];
  /** weights[k][g]: share of bucket k served by type g. */
  weights: number[][];
}

export function loadsOf(p: Problem, weights: number[][]): number[] {
  const loads = p.gpus.map(() => 0);
  weights.forEach((row, k) => row.forEach((w, g) => { if (w > 0) loads[g]! += w * fullLoad(p, k, g); }));
  return loads;
}

/** Returns the violations, empty when the allocation serves the whole workload within every bound. */
export function verifyCandidate(p: Problem, c: Candidate): string[] {
  const errors: string[] = [];
  p.gpus.forEach((gpu, g) => {
    const b = c.replicas[g];
    if (b === undefined || !Number.isInteger(b)) errors.push(`${gpu.id}: replicas ${String(b)} is not an integer`);
    else if (b < gpu.min || b > gpu.max) errors.push(`${gpu.id}: replicas ${b} outside [${gpu.min}, ${gpu.max}]`);
  });
  p.buckets.forEach((bucket, k) => {
    const row = c.weights[k] ?? [];
    let sum = 0;
    row.forEach((w, g) => {
      if (!(w >= -WEIGHT_TOL)) errors.push(`bucket ${bucket.input}/${bucket.output}: negative share ${w} on ${p.gpus[g]?.id}`);
      if (w > WEIGHT_TOL && (p.gpus[g]?.tput[k] ?? 0) <= 0) {
        errors.push(`bucket ${bucket.input}/${bucket.output}: assigned to ${p.gpus[g]?.id}, which cannot serve it`);
      }
      sum += w;
    });
    if (Math.abs(sum - 1) > WEIGHT_TOL) errors.push(`bucket ${bucket.input}/${bucket.output}: shares sum to ${sum}, not 1`);
  });
  loadsOf(p, c.weights).forEach((load, g) => {
    const b = c.replicas[g] ?? 0;
    if (load > b * (1 + CAPACITY_TOL) + CAPACITY_TOL) {
      errors.push(`${p.gpus[g]?.id}: load ${load.toFixed(6)} replica-equivalents exceeds ${b} replicas`);
    }
  });
  return errors;
}
