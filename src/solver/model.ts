import type { MilpModel } from './engine.js';
import type { Problem } from './problem.js';

// The Mélange integer program over active buckets k and GPU types g:
//   minimise  Σ_g c_g·B_g (+ p·Σ_g |B_g − current_g|)
//   s.t.      Σ_g a_kg = S                      for every bucket k           (S = 1 in fractional mode)
//             Σ_k (r_k / (S·T_kg))·a_kg ≤ B_g    for every type g            (pooled capacity)
//             B_g ∈ ℤ, min_g ≤ B_g ≤ max_g;  a_kg ∈ [0,1] (fractional) or a_kg ∈ {0..S} (sliced)
// `sliced` with integer slice counts has the same optimum as the paper's binary slices, without their
// symmetry; `fractional` is its continuous limit, never more expensive than any slice factor.

export interface ModelLayout {
  model: MilpModel;
  /** Column of B_g. */
  replicaCol: (g: number) => number;
  /** Assignment columns: pair i is bucket pairs[i].k on type pairs[i].g at column firstPairCol + i. */
  pairs: Array<{ k: number; g: number; load: number }>;
  firstPairCol: number;
}

/** Load of bucket k's whole traffic on type g, in replica-equivalents; 0 when g cannot serve k. */
export const fullLoad = (p: Problem, k: number, g: number): number => {
  const t = p.gpus[g]?.tput[k] ?? 0;
  return t > 0 ? (p.buckets[k]?.rate ?? 0) / t : 0;
};

/**
 * Builds the MILP. `fixedReplicas` pins every B_g (used by the local-optimality check, where feasibility of
 * a given replica vector is the question).
 */
export function buildModel(p: Problem, fixedReplicas?: readonly number[]): ModelLayout {
  const G = p.gpus.length;
  const K = p.buckets.length;
  const S = p.slices;
  const penalised = p.changePenalty > 0 && p.current !== undefined;

  const pairs: ModelLayout['pairs'] = [];
  for (let k = 0; k < K; k++) {
    for (let g = 0; g < G; g++) {
      const load = fullLoad(p, k, g);
      if (load > 0 && (p.gpus[g]?.max ?? 0) > 0) pairs.push({ k, g, load: load / S });
    }
  }
  const firstPairCol = G;
  const firstDevCol = G + pairs.length;
  const numCols = firstDevCol + (penalised ? G : 0);
  const numRows = K + G + (penalised ? 2 * G : 0);

  const colCost = new Float64Array(numCols);
  const colLower = new Float64Array(numCols);
  const colUpper = new Float64Array(numCols).fill(Infinity);
  const integer = new Uint8Array(numCols);

  // Upper bound per type: enough replicas to carry every bucket it can serve. Tightens branch and bound and
  // never cuts an optimum, since a replica above that carries no load and costs money.
  const ceilingLoad = new Float64Array(G);
  for (const pr of pairs) ceilingLoad[pr.g] = (ceilingLoad[pr.g] ?? 0) + pr.load * S;
  for (let g = 0; g < G; g++) {
    const gpu = p.gpus[g]!;
    colCost[g] = gpu.cost;
    integer[g] = 1;
    const cur = p.current?.[g] ?? 0;
    const useful = Math.max(gpu.min, Math.ceil((ceilingLoad[g] ?? 0) - 1e-9), penalised ? cur : 0);
    colLower[g] = fixedReplicas ? fixedReplicas[g]! : gpu.min;
    colUpper[g] = fixedReplicas ? fixedReplicas[g]! : Math.min(gpu.max, useful);
  }
  pairs.forEach((_, i) => {
    colUpper[firstPairCol + i] = S;
    integer[firstPairCol + i] = p.mode === 'sliced' ? 1 : 0;
  });
  if (penalised) for (let g = 0; g < G; g++) colCost[firstDevCol + g] = p.changePenalty;

  // Rows, built as CSR.
  const rowLower = new Float64Array(numRows).fill(-Infinity);
  const rowUpper = new Float64Array(numRows).fill(Infinity);
  const starts: number[] = [0];
  const idx: number[] = [];
  const val: number[] = [];
  const endRow = () => starts.push(idx.length);

  const pairsOfBucket: number[][] = Array.from({ length: K }, () => []);
  const pairsOfGpu: number[][] = Array.from({ length: G }, () => []);
  pairs.forEach((pr, i) => { pairsOfBucket[pr.k]!.push(i); pairsOfGpu[pr.g]!.push(i); });

  for (let k = 0; k < K; k++) {
    for (const i of pairsOfBucket[k]!) { idx.push(firstPairCol + i); val.push(1); }
    rowLower[k] = S; rowUpper[k] = S;
    endRow();
  }
  for (let g = 0; g < G; g++) {
    for (const i of pairsOfGpu[g]!) { idx.push(firstPairCol + i); val.push(pairs[i]!.load); }
    idx.push(g); val.push(-1);
    rowUpper[K + g] = 0;
    endRow();
  }
  if (penalised) {
    // d_g ≥ B_g − cur_g and d_g ≥ cur_g − B_g
    for (let g = 0; g < G; g++) {
      const cur = p.current![g] ?? 0;
      idx.push(g, firstDevCol + g); val.push(1, -1); rowUpper[K + G + 2 * g] = cur; endRow();
      idx.push(g, firstDevCol + g); val.push(-1, -1); rowUpper[K + G + 2 * g + 1] = -cur; endRow();
    }
  }

  return {
    model: {
      numCols, numRows, colCost, colLower, colUpper, integer, rowLower, rowUpper,
      rowStarts: Int32Array.from(starts), colIndex: Int32Array.from(idx), values: Float64Array.from(val),
    },
    replicaCol: (g) => g,
    pairs,
    firstPairCol,
  };
}
