import type { SolveInput, SolveResult, SolveSuccess } from '../solver/types.js';

// Joint allocation of several LLMServices that share one capped GPUPool. The services interact only through
// the cap (Σ_s replicas_s × gpusPerReplica_s ≤ capGPUs), so the joint optimum decomposes exactly:
//   cost_s(c) = the service's optimal cost with at most c replicas on the shared pool (one solve per c),
//   then a knapsack over the GPU budget picks c_s for every service minimising Σ_s cost_s(c_s).
// cost_s is non-increasing in c and constant once c reaches the unconstrained optimum's replicas, so each
// service needs at most min(r*_s, ⌊cap/gpr_s⌋) + 1 solves. Exact for one shared pool; a service's other
// pools are uncapped here (their own maxReplicas still apply inside each solve).
//
// When the cap cannot carry everyone, `sharePool` admits services in priority order (higher first, then id):
// a service is admitted if all admitted services can still be served in full; the others are exhausted. The
// admitted ones then split the budget at the lowest total cost.

export interface JointService {
  id: string;
  input: SolveInput;
  /** GPUs per replica on the shared pool (spec.gpus[].gpusPerReplica). */
  gpusPerReplica: number;
  /** Contention: a higher priority is admitted first and wins equal-cost choices (default 0). */
  priority?: number;
}

export interface JointChoice {
  id: string;
  /** Replicas allowed on the shared pool for this service. */
  cap: number;
  result: SolveSuccess;
}

export type Solve = (input: SolveInput) => SolveResult | Promise<SolveResult>;

export type JointResult =
  | { ok: true; costPerHour: number; poolGPUs: number; choices: JointChoice[] }
  | { ok: false; reason: 'CapacityExhausted'; message: string };

export interface Shortage {
  id: string;
  /** Least GPUs of the pool with which the service can be served in full (undefined: not even with all of them). */
  needGPUs: number | undefined;
}

export type ShareResult =
  | { ok: true; admitted: JointChoice[]; exhausted: Shortage[]; costPerHour: number; poolGPUs: number; needs: Shortage[] }
  /** A solve failed for another reason than infeasibility (timeout, engine error): nothing can be decided. */
  | { ok: false; reason: 'Timeout' | 'SolverError'; message: string };

export const withCap = (input: SolveInput, pool: string, cap: number): SolveInput => ({
  ...input,
  gpus: input.gpus.map((g) => (g.id === pool ? { ...g, maxReplicas: Math.min(g.maxReplicas ?? Infinity, cap) } : g)),
});
export const replicasOn = (r: SolveSuccess, pool: string) => r.allocation.find((a) => a.id === pool)?.replicas ?? 0;
const isOk = (r: SolveResult): r is SolveSuccess => r.status === 'optimal' || r.status === 'feasible-with-gap';

class SolveError extends Error {
  constructor(readonly reason: 'Timeout' | 'SolverError', message: string) {
    super(message);
  }
}

interface Curve {
  s: JointService;
  g: number;
  /** curve[c]: the optimum with ≤ c replicas on the pool, undefined when infeasible. */
  curve: Array<SolveSuccess | undefined>;
}

async function costCurves(pool: string, capGPUs: number, services: readonly JointService[], solve: Solve): Promise<Curve[]> {
  const once = async (input: SolveInput) => {
    const r = await solve(input);
    if (r.status === 'error') throw new SolveError(r.reason === 'Timeout' ? 'Timeout' : 'SolverError', r.message);
    return isOk(r) ? r : undefined;
  };
  const out: Curve[] = [];
  for (const s of services) {
    const g = Math.max(1, s.gpusPerReplica);
    const maxCap = Math.floor(Math.max(0, capGPUs) / g);
    const free = await once(s.input);
    const rStar = free ? replicasOn(free, pool) : Infinity;
    const curve: Curve['curve'] = [];
    for (let c = 0; c <= maxCap; c++) curve.push(free && c >= rStar ? free : free ? await once(withCap(s.input, pool, c)) : undefined);
    out.push({ s, g, curve });
  }
  return out;
}

/** Knapsack over the GPU budget: the cheapest pick of one curve point per service; undefined if none fits. */
function knapsack(pool: string, budget: number, curves: readonly Curve[]): { cost: number; picks: number[] } | undefined {
  type Cell = { cost: number; prio: number; picks: number[] } | undefined;
  let best: Cell[] = Array.from({ length: budget + 1 }, () => ({ cost: 0, prio: 0, picks: [] }));
  for (const { s, g, curve } of curves) {
    const next: Cell[] = Array.from({ length: budget + 1 }, () => undefined);
    for (let b = 0; b <= budget; b++) {
      for (let c = 0; c < curve.length && c * g <= b; c++) {
        const r = curve[c];
        const prev = best[b - c * g];
        if (!r || !prev) continue;
        const cost = prev.cost + r.costPerHour;
        // Equal cost: prefer the split that puts more of the pool's GPUs on higher priorities.
        const prio = prev.prio + (s.priority ?? 0) * replicasOn(r, pool) * g;
        const cur = next[b];
        if (!cur || cost < cur.cost - 1e-9 || (Math.abs(cost - cur.cost) <= 1e-9 && prio > cur.prio)) next[b] = { cost, prio, picks: [...prev.picks, c] };
      }
    }
    best = next;
  }
  return budget >= 0 ? best[budget] : undefined;
}

const needOf = ({ g, curve }: Curve): number | undefined => {
  const c = curve.findIndex((r) => r !== undefined);
  return c < 0 ? undefined : c * g;
};

const choicesOf = (pool: string, curves: readonly Curve[], picks: readonly number[]) => {
  const choices = curves.map(({ s, curve }, i) => ({ id: s.id, cap: picks[i]!, result: curve[picks[i]!]! }));
  return {
    choices,
    costPerHour: choices.reduce((a, c) => a + c.result.costPerHour, 0),
    poolGPUs: curves.reduce((sum, { g }, i) => sum + replicasOn(choices[i]!.result, pool) * g, 0),
  };
};

/** Everyone in full within the cap at the lowest total cost, or CapacityExhausted with what each one needs. */
export async function solveJoint(pool: string, capGPUs: number, services: readonly JointService[], solve: Solve): Promise<JointResult> {
  const curves = await costCurves(pool, capGPUs, services, solve);
  const top = knapsack(pool, capGPUs, curves);
  if (!top) {
    const need = curves
      .map((c) => {
        const n = needOf(c);
        return n === undefined ? `${c.s.id} not even with all ${capGPUs}` : `${c.s.id} needs ≥ ${n}`;
      })
      .join(', ');
    return { ok: false, reason: 'CapacityExhausted', message: `services sharing pool ${pool} cannot all be served within ${capGPUs} GPUs (${need})` };
  }
  return { ok: true, ...choicesOf(pool, curves, top.picks) };
}

/**
 * Priority admission, then the joint optimum of the admitted services within `capGPUs − reservedGPUs`
 * (reserved: GPUs of the pool held by sharers that are not being re-planned).
 */
export async function sharePool(pool: string, capGPUs: number, services: readonly JointService[], solve: Solve, reservedGPUs = 0): Promise<ShareResult> {
  const budget = Math.max(0, capGPUs - reservedGPUs);
  let curves: Curve[];
  try {
    curves = await costCurves(pool, budget, services, solve);
  } catch (err) {
    if (err instanceof SolveError) return { ok: false, reason: err.reason, message: err.message };
    throw err;
  }
  const needs = curves.map((c) => ({ id: c.s.id, needGPUs: needOf(c) }));
  const order = [...curves].sort((a, b) => (b.s.priority ?? 0) - (a.s.priority ?? 0) || (a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0));
  const admitted: Curve[] = [];
  const exhausted: Shortage[] = [];
  let used = 0;
  for (const c of order) {
    const n = needOf(c);
    if (n !== undefined && used + n <= budget) {
      admitted.push(c);
      used += n;
    } else exhausted.push({ id: c.s.id, needGPUs: n });
  }
  const top = knapsack(pool, budget, admitted);
  if (!top) throw new Error('unreachable: the admitted services fit by construction');
  const { choices, costPerHour, poolGPUs } = choicesOf(pool, admitted, top.picks);
  return { ok: true, admitted: choices, exhausted, costPerHour, poolGPUs, needs };
}
