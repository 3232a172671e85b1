import type { SolveInput, SolveResult, SolveSuccess } from '../solver/types.js';

// Joint allocation of several LLMServices that share one capped GPUPool. The services interact only through
// the cap (Σ_s replicas_s × gpusPerReplica_s ≤ capGPUs), so the joint optimum decomposes exactly:
//   cost_s(c) = the service's optimal cost with at most c replicas on the shared pool (one solve per c),
//   then a knapsack over the GPU budget picks c_s for every service minimising Σ_s cost_s(c_s).
// cost_s is non-increasing in c and constant once c reaches the unconstrained optimum's replicas, so each
// service needs at most min(r*_s, ⌊cap/gpr_s⌋) + 1 solves. Exact for one shared pool; a service's other
// pools are uncapped here (their own maxReplicas still apply inside each solve).

export interface JointService {
  id: string;
  input: SolveInput;
  /** GPUs per replica on the shared pool (spec.gpus[].gpusPerReplica). */
  gpusPerReplica: number;
  /** Tie-break under contention: a higher priority wins equal-cost choices (default 0). */
  priority?: number;
}

export interface JointChoice {
  id: string;
  /** Replicas allowed on the shared pool for this service. */
  cap: number;
  result: SolveSuccess;
}

export type JointResult =
  | { ok: true; costPerHour: number; poolGPUs: number; choices: JointChoice[] }
  | { ok: false; reason: 'CapacityExhausted'; message: string };

const withCap = (input: SolveInput, pool: string, cap: number): SolveInput => ({
  ...input,
  gpus: input.gpus.map((g) => (g.id === pool ? { ...g, maxReplicas: Math.min(g.maxReplicas ?? Infinity, cap) } : g)),
});
const replicasOn = (r: SolveSuccess, pool: string) => r.allocation.find((a) => a.id === pool)?.replicas ?? 0;
const isOk = (r: SolveResult): r is SolveSuccess => r.status === 'optimal' || r.status === 'feasible-with-gap';

export function solveJoint(pool: string, capGPUs: number, services: readonly JointService[], solve: (input: SolveInput) => SolveResult): JointResult {
  // Per service: the cost curve over replica caps on the shared pool.
  const curves = services.map((s) => {
    const g = Math.max(1, s.gpusPerReplica);
    const maxCap = Math.floor(capGPUs / g);
    const curve: Array<SolveSuccess | undefined> = [];
    const free = solve(s.input);
    const rStar = isOk(free) ? replicasOn(free, pool) : Infinity;
    for (let c = 0; c <= maxCap; c++) {
      if (isOk(free) && c >= rStar) {
        curve.push(free); // the cap no longer binds
        continue;
      }
      const r = solve(withCap(s.input, pool, c));
      curve.push(isOk(r) ? r : undefined);
    }
    return { s, g, curve };
  });

  // Knapsack over the GPU budget: best[b] = min cost of the services so far using ≤ b GPUs of the pool.
  type Cell = { cost: number; prio: number; picks: number[] } | undefined;
  let best: Cell[] = Array.from({ length: capGPUs + 1 }, () => ({ cost: 0, prio: 0, picks: [] }));
  for (const { s, g, curve } of curves) {
    const next: Cell[] = Array.from({ length: capGPUs + 1 }, () => undefined);
    for (let b = 0; b <= capGPUs; b++) {
      for (let c = 0; c < curve.length && c * g <= b; c++) {
        const r = curve[c];
        const prev = best[b - c * g];
        if (!r || !prev) continue;
        const cost = prev.cost + r.costPerHour;
        const prio = prev.prio + (s.priority ?? 0) * replicasOn(r, pool) * g;
        const cur = next[b];
        if (!cur || cost < cur.cost - 1e-9 || (Math.abs(cost - cur.cost) <= 1e-9 && prio > cur.prio)) next[b] = { cost, prio, picks: [...prev.picks, c] };
      }
    }
    best = next;
  }
  const top = best[capGPUs];
  if (!top) {
    const need = curves
      .map(({ s, g, curve }) => {
        const c = curve.findIndex((r) => r !== undefined);
        return c < 0 ? `${s.id} not even with all ${capGPUs}` : `${s.id} needs ≥ ${c * g}`;
      })
      .join(', ');
    return { ok: false, reason: 'CapacityExhausted', message: `services sharing pool ${pool} cannot all be served within ${capGPUs} GPUs (${need})` };
  }
  const choices = curves.map(({ s, curve }, i) => ({ id: s.id, cap: top.picks[i]!, result: curve[top.picks[i]!]! }));
  const poolGPUs = curves.reduce((sum, { g }, i) => sum + replicasOn(choices[i]!.result, pool) * g, 0);
  return { ok: true, costPerHour: choices.reduce((a, c) => a + c.result.costPerHour, 0), poolGPUs, choices };
}
