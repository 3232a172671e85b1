import type { ResolvedGpu } from '../solver/from-api.js';
import { isSuccess, type BucketSplit, type SolveFailure, type SolveInput, type SolveResult, type SolveSuccess } from '../solver/index.js';

// From a solve to the allocation the operator will run. The solver is injected (a worker thread in
// production), everything else is arithmetic:
// - minTotalReplicas: never fewer replicas in total than the policy says (never zero because of a tiny rate);
// - hysteresis: stay on the current allocation unless the new one saves at least minSavingsPercent, as
//   long as the current one still carries the workload (checked with a second solve pinned to it, which
//   also yields the routing split for the kept allocation).

export type Replicas = Record<string, number>;

export type AllocationDecision =
  | {
      kind: 'solved';
      /** The replicas to run, per pool id (every option present, 0 allowed). */
      replicas: Replicas;
      costPerHour: number;
      /** Routing split for `replicas`. */
      split: BucketSplit[];
      /** The unconstrained solve (stats, baselines, best single type). */
      result: SolveSuccess;
      /** Set when hysteresis kept the current allocation instead of the optimum. */
      kept?: { optimumCostPerHour: number; savingsPercent: number };
      /** Replicas added to reach minTotalReplicas. */
      minTotalAdded?: { pool: string; replicas: number };
    }
  | { kind: 'failed'; failure: SolveFailure };

export interface DecideArgs {
  input: SolveInput;
  gpus: readonly ResolvedGpu[];
  policy: { minSavingsPercent: number; minTotalReplicas: number };
  /** The allocation currently planned (from status), if any. */
  current?: Replicas;
  solve: (input: SolveInput) => Promise<SolveResult>;
}

export const costOf = (replicas: Replicas, gpus: readonly ResolvedGpu[]): number =>
  gpus.reduce((sum, g) => sum + (replicas[g.pool] ?? 0) * g.costPerReplicaHour, 0);

export const totalOf = (r: Replicas): number => Object.values(r).reduce((a, b) => a + b, 0);

export function sameReplicas(a: Replicas, b: Replicas): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => (a[k] ?? 0) === (b[k] ?? 0));
}

export async function decideAllocation(args: DecideArgs): Promise<AllocationDecision> {
  const { input, gpus, policy } = args;
  const result = await args.solve(input);
  if (!isSuccess(result)) return { kind: 'failed', failure: result };

  const optimum: Replicas = Object.fromEntries(input.gpus.map((g) => [g.id, result.allocation.find((a) => a.id === g.id)?.replicas ?? 0]));
  const raised = withMinTotal(optimum, input, policy.minTotalReplicas, result.bestBaseline?.id);
  const candidate = raised.replicas;
  const base = {
    kind: 'solved' as const,
    result,
    ...(raised.added ? { minTotalAdded: raised.added } : {}),
  };
  const chooseCandidate = () => ({ ...base, replicas: candidate, costPerHour: costOf(candidate, gpus), split: result.split });

  const current = args.current;
  if (!current || sameReplicas(current, candidate) || !respectsBounds(current, input, policy.minTotalReplicas)) return chooseCandidate();
  const currentCost = costOf(current, gpus);
  const candidateCost = costOf(candidate, gpus);
  const savings = currentCost > 0 ? ((currentCost - candidateCost) / currentCost) * 100 : 0;
  if (savings >= policy.minSavingsPercent) return chooseCandidate();

  // Not worth moving, if the current allocation still carries the workload: solve with replicas pinned.
  const pinned: SolveInput = {
    ...input,
    gpus: input.gpus.map((g) => ({ ...g, minReplicas: current[g.id] ?? 0, maxReplicas: current[g.id] ?? 0 })),
  };
  delete pinned.current;
  delete pinned.changePenaltyPerReplica;
  const check = await args.solve(pinned);
  if (!isSuccess(check)) return chooseCandidate();
  const replicas = Object.fromEntries(input.gpus.map((g) => [g.id, current[g.id] ?? 0]));
  return { ...base, replicas, costPerHour: currentCost, split: check.split, kept: { optimumCostPerHour: candidateCost, savingsPercent: savings } };
}

/** The current allocation is only a candidate if it still fits the spec's per-type bounds and pools. */
function respectsBounds(current: Replicas, input: SolveInput, minTotal: number): boolean {
  const ids = new Set(input.gpus.map((g) => g.id));
  if (Object.entries(current).some(([pool, n]) => n > 0 && !ids.has(pool))) return false;
  if (totalOf(current) < minTotal) return false;
  return input.gpus.every((g) => {
    const n = current[g.id] ?? 0;
    return n >= (g.minReplicas ?? 0) && n <= (g.maxReplicas ?? Infinity);
  });
}

/**
 * Adds replicas until the total reaches `minTotal`: to the best single type (it serves every bucket), else
 * to the cheapest pool with room. Extra capacity never breaks feasibility, so the split stays valid.
 */
export function withMinTotal(replicas: Replicas, input: SolveInput, minTotal: number, preferred?: string): { replicas: Replicas; added?: { pool: string; replicas: number } } {
  const missing = minTotal - totalOf(replicas);
  if (missing <= 0) return { replicas };
  const room = (id: string) => (input.gpus.find((g) => g.id === id)?.maxReplicas ?? Infinity) - (replicas[id] ?? 0);
  const byCost = [...input.gpus].sort((a, b) => a.costPerHour - b.costPerHour).map((g) => g.id);
  const pool = [preferred, ...byCost].find((id): id is string => id !== undefined && room(id) >= missing);
  if (!pool) return { replicas };
  return { replicas: { ...replicas, [pool]: (replicas[pool] ?? 0) + missing }, added: { pool, replicas: missing } };
}
