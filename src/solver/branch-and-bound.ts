import type { MilpModel, MilpSolution } from './engine.js';

// Best-first branch and bound over a warm-started LP, for models with few integer columns (the fractional
// Mélange model has one per GPU type). HiGHS's MIP solver spends 100+ ms of root cuts and sub-MIP heuristics
// on such models even when the tree has one node; re-solving the LP with changed bounds costs well under
// a millisecond. Exactness comes from the usual argument: a node is discarded only when its LP bound cannot
// beat the incumbent, and we stop only when no open node can.

/** An LP kept alive across bound changes so each re-solve starts from the previous basis. */
export interface LpSession {
  setColBounds(col: number, lower: number, upper: number): void;
  solve(timeLimitMs: number): { status: 'optimal' | 'infeasible' | 'limit' | 'error'; x?: Float64Array; objective?: number; message?: string };
}

interface Node {
  lo: Float64Array;
  hi: Float64Array;
  /** LP bound of the parent: no solution in this subtree is cheaper. */
  bound: number;
}

const INTEGRALITY_TOL = 1e-6;
const relTol = (v: number) => 1e-9 * Math.max(1, Math.abs(v));

export function branchAndBound(model: MilpModel, lp: LpSession, timeLimitMs: number, now: () => number = () => performance.now()): MilpSolution {
  const deadline = now() + timeLimitMs;
  const intCols: number[] = [];
  model.integer.forEach((v, c) => { if (v === 1) intCols.push(c); });
  const open: Node[] = [{
    lo: Float64Array.from(intCols, (c) => Math.ceil(model.colLower[c]! - INTEGRALITY_TOL)),
    hi: Float64Array.from(intCols, (c) => Math.floor(model.colUpper[c]! + INTEGRALITY_TOL)),
    bound: -Infinity,
  }];
  let best: { x: Float64Array; objective: number } | undefined;
  const incumbentBeats = (bound: number) => best !== undefined && bound >= best.objective - relTol(best.objective);

  const evaluate = (lo: Float64Array, hi: Float64Array) => {
    intCols.forEach((c, i) => lp.setColBounds(c, lo[i]!, hi[i]!));
    return lp.solve(Math.max(1, deadline - now()));
  };

  while (open.length > 0) {
    if (now() > deadline) break;
    const node = popLowest(open);
    if (incumbentBeats(node.bound)) { open.length = 0; break; } // best-first: every other open node is worse
    if (node.lo.some((l, i) => l > node.hi[i]!)) continue;
    const r = evaluate(node.lo, node.hi);
    if (r.status === 'infeasible') continue;
    if (r.status !== 'optimal' || !r.x || r.objective === undefined) {
      if (r.status === 'limit') { open.push(node); break; }
      return { outcome: 'error', message: `LP relaxation failed: ${r.message ?? r.status}` };
    }
    if (incumbentBeats(r.objective)) continue;

    const branchOn = pickBranchColumn(intCols, r.x, model.colCost);
    if (branchOn === undefined) {
      best = { x: r.x, objective: r.objective };
      continue;
    }
    // Rounding every fractional integer up often gives a feasible point at once (more capacity never hurts
    // the Mélange model), which prunes most of the tree.
    if (!best) tryRoundUp(node, r.x);
    const i = branchOn;
    const v = r.x[intCols[i]!]!;
    const down = { lo: node.lo.slice(), hi: node.hi.slice(), bound: r.objective };
    down.hi[i] = Math.floor(v);
    const up = { lo: node.lo.slice(), hi: node.hi.slice(), bound: r.objective };
    up.lo[i] = Math.ceil(v);
    open.push(down, up);
  }

  const openBound = open.reduce((m, n) => Math.min(m, n.bound), Infinity);
  if (!best) return open.length === 0 ? { outcome: 'infeasible' } : { outcome: 'limit-no-incumbent' };
  if (open.length === 0) return { outcome: 'optimal', x: best.x, objective: best.objective, dualBound: best.objective };
  return { outcome: 'limit-with-incumbent', x: best.x, objective: best.objective, dualBound: Math.min(openBound, best.objective) };

  // Round every fractional integer up (more capacity never hurts the Mélange model), then walk each integer
  // down while the LP with all integers fixed stays feasible, most expensive column first. A near-optimal
  // incumbent this early prunes most of the tree.
  function tryRoundUp(node: Node, x: Float64Array): void {
    const lo = node.lo.slice();
    const hi = node.hi.slice();
    for (let i = 0; i < intCols.length; i++) {
      const v = Math.min(hi[i]!, Math.ceil(x[intCols[i]!]! - INTEGRALITY_TOL));
      lo[i] = v; hi[i] = v;
    }
    let r = evaluate(lo, hi);
    if (r.status !== 'optimal' || !r.x || r.objective === undefined) return;
    let point = { x: r.x, objective: r.objective };
    const order = intCols.map((_, i) => i).sort((a, b) => model.colCost[intCols[b]!]! - model.colCost[intCols[a]!]!);
    for (const i of order) {
      while (lo[i]! > node.lo[i]! && now() < deadline) {
        lo[i] = hi[i] = lo[i]! - 1;
        r = evaluate(lo, hi);
        if (r.status === 'optimal' && r.x && r.objective !== undefined && r.objective < point.objective) {
          point = { x: r.x, objective: r.objective };
        } else {
          lo[i] = hi[i] = lo[i]! + 1;
          break;
        }
      }
    }
    if (!incumbentBeats(point.objective)) best = point;
  }
}

/** The integer column whose fractionality costs most; undefined when the point is integral. */
function pickBranchColumn(intCols: number[], x: Float64Array, cost: Float64Array): number | undefined {
  let pick: number | undefined;
  let score = -1;
  intCols.forEach((c, i) => {
    const v = x[c]!;
    const frac = Math.min(v - Math.floor(v), Math.ceil(v) - v);
    if (frac <= INTEGRALITY_TOL) return;
    const s = frac * Math.max(Math.abs(cost[c]!), 1e-6);
    if (s > score) { score = s; pick = i; }
  });
  return pick;
}

function popLowest(open: Node[]): Node {
  let k = 0;
  for (let i = 1; i < open.length; i++) if (open[i]!.bound < open[k]!.bound) k = i;
  const [node] = open.splice(k, 1);
  return node!;
}
