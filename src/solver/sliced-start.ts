import { fullLoad, type ModelLayout } from './model.js';
import type { Problem } from './problem.js';
import type { Candidate } from './verify.js';

// The fractional optimum is a proven lower bound for every slice factor, and rounding its split to whole
// slices usually costs nothing or one replica. So the sliced solve starts from that rounding: when it
// already matches the bound it is optimal with no MIP at all; otherwise it is the MIP's first incumbent.

/**
 * Rounds the fractional split to whole slices. First tries to keep the fractional replica counts (then the
 * rounding costs nothing and is optimal): whole slices stay where they are and the leftover slices are packed,
 * largest first, onto the type with the most spare capacity. If that does not fit, falls back to largest-
 * remainder rounding with replicas sized up to fit.
 */
export function roundToSlices(p: Problem, fractional: Candidate): Candidate | undefined {
  return packAtReplicas(p, fractional) ?? roundUp(p, fractional);
}

const servable = (p: Problem, k: number, g: number) => (p.gpus[g]?.tput[k] ?? 0) > 0 && (p.gpus[g]?.max ?? 0) > 0;

function packAtReplicas(p: Problem, fractional: Candidate): Candidate | undefined {
  const S = p.slices;
  const n = p.buckets.map((_, k) => p.gpus.map((_, g) => (servable(p, k, g) ? Math.floor((fractional.weights[k]?.[g] ?? 0) * S + 1e-9) : 0)));
  const spare = p.gpus.map((_, g) => (fractional.replicas[g] ?? 0) - n.reduce((acc, row, k) => acc + (row[g] ?? 0) * fullLoad(p, k, g) / S, 0));
  const items: Array<{ k: number; size: number }> = [];
  n.forEach((row, k) => {
    const left = S - row.reduce((a, b) => a + b, 0);
    const size = Math.max(...p.gpus.map((_, g) => (servable(p, k, g) ? fullLoad(p, k, g) / S : 0)));
    for (let i = 0; i < left; i++) items.push({ k, size });
  });
  items.sort((a, b) => b.size - a.size);
  for (const { k } of items) {
    let pick = -1;
    let bestSlack = -Infinity;
    p.gpus.forEach((_, g) => {
      if (!servable(p, k, g)) return;
      const slack = spare[g]! - fullLoad(p, k, g) / S;
      if (slack > bestSlack) { bestSlack = slack; pick = g; }
    });
    if (pick < 0 || bestSlack < -1e-9) return undefined;
    n[k]![pick]! += 1;
    spare[pick] = bestSlack;
  }
  return { replicas: [...fractional.replicas], weights: n.map((row) => row.map((v) => v / S)) };
}

function roundUp(p: Problem, fractional: Candidate): Candidate | undefined {
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
