import { fullLoad, type ModelLayout } from './model.js';
import type { Problem } from './problem.js';
import type { Candidate } from './verify.js';

// The fractional optimum is a proven lower bound for every slice factor, and rounding its split to whole
// slices usually costs nothing or one replica. So the sliced solve starts from that rounding: when it
// already matches the bound it is optimal with no MIP at all; otherwise it is the MIP's first incumbent.

/** Largest-remainder rounding of each bucket's shares to multiples of 1/S, then replicas sized to fit. */
export function roundToSlices(p: Problem, fractional: Candidate): Candidate | undefined {
  const S = p.slices;
  const weights = p.buckets.map((_, k) => {
    const ideal = p.gpus.map((gpu, g) => ((gpu.tput[k] ?? 0) > 0 && gpu.max > 0 ? (fractional.weights[k]?.[g] ?? 0) * S : 0));
    const n = ideal.map((v) => Math.floor(v + 1e-9));
    let left = S - n.reduce((a, b) => a + b, 0);
    const order = ideal.map((v, g) => ({ g, rem: v - n[g]!, ok: v > 0 || ((p.gpus[g]?.tput[k] ?? 0) > 0 && (p.gpus[g]?.max ?? 0) > 0) }))
      .filter((o) => o.ok)
      .sort((a, b) => b.rem - a.rem);
    for (let i = 0; left > 0 && order.length > 0; i = (i + 1) % order.length, left--) n[order[i]!.g]! += 1;
    return n.map((v) => v / S);
  });
  const replicas = p.gpus.map((gpu, g) => {
    const load = weights.reduce((acc, row, k) => acc + (row[g] ?? 0) * fullLoad(p, k, g), 0);
    return Math.max(gpu.min, Math.ceil(load - 1e-9));
  });
  if (replicas.some((b, g) => b > (p.gpus[g]?.max ?? 0))) return undefined;
  return { replicas, weights };
}

/** The candidate as a column vector of the sliced model (a MIP start). */
export function toColumns(p: Problem, layout: ModelLayout, c: Candidate): Float64Array {
  const x = new Float64Array(layout.model.numCols);
  c.replicas.forEach((b, g) => { x[layout.replicaCol(g)] = b; });
  layout.pairs.forEach((pr, i) => { x[layout.firstPairCol + i] = Math.round((c.weights[pr.k]?.[pr.g] ?? 0) * p.slices); });
  const firstDev = layout.firstPairCol + layout.pairs.length;
  if (p.changePenalty > 0 && p.current) c.replicas.forEach((b, g) => { x[firstDev + g] = Math.abs(b - (p.current![g] ?? 0)); });
  return x;
}
