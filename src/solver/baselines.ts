import type { Problem } from './problem.js';
import { fullLoad } from './model.js';
import type { Baseline } from './types.js';

/** Tolerance when rounding a load up to whole replicas: 2.0000000001 replicas of load is 2 replicas. */
export const LOAD_EPS = 1e-9;

/** Every single-GPU-type allocation: ⌈Σ_b r_b / T_gb⌉ replicas, or why that type alone cannot serve. */
export function singleTypeBaselines(p: Problem, edges: { inputEdges: number[]; outputEdges: number[] }): Baseline[] {
  return p.gpus.map((gpu, g) => {
    let load = 0;
    for (let k = 0; k < p.buckets.length; k++) {
      const b = p.buckets[k]!;
      if ((gpu.tput[k] ?? 0) <= 0) {
        return { id: gpu.id, feasible: false as const,
          reason: `cannot serve bucket input ≤ ${edges.inputEdges[b.input]}, output ≤ ${edges.outputEdges[b.output]} tokens` };
      }
      load += fullLoad(p, k, g);
    }
    const replicas = Math.max(gpu.min, Math.ceil(load - LOAD_EPS));
    if (replicas > gpu.max) {
      return { id: gpu.id, feasible: false as const, reason: `needs ${replicas} replicas, maxReplicas is ${gpu.max}` };
    }
    return { id: gpu.id, feasible: true as const, replicas, costPerHour: replicas * gpu.cost };
  });
}
