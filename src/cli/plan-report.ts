import { formatMoney } from '../api/index.js';
import type { ServiceInstance } from '../solver/from-api.js';
import { isSuccess, type SolveResult } from '../solver/index.js';

// The stable, documented shape of `melangectl plan -o json|yaml` (docs/plan-output.md). Money is a decimal
// string as in the API; shares and utilisations are plain numbers rounded to 4 decimals.

export interface PlanReport {
  apiVersion: 'melange.dev/v1alpha1';
  kind: 'Plan';
  service: { name: string; namespace?: string; model: string; sloTpotMillis: number };
  profiles: { source: 'builtin-catalog' | 'files'; illustrative: boolean; note?: string };
  workload: { requestsPerSecond: number; headroomPercent: number; mode: string; sliceFactor?: number };
  status: SolveResult['status'];
  /** Set when status is infeasible or error. */
  failure?: { reason: string; message: string; field?: string; bucket?: { inputMaxTokens: number; outputMaxTokens: number }; pool?: string };
  allocation: Array<{ pool: string; gpuType: string; replicas: number; gpusPerReplica: number; costPerHour: string; utilisation: number }>;
  mix: string;
  costPerHour?: string;
  bestSingleType: { pool: string; costPerHour: string } | null;
  savingsPercent: number | null;
  baselines: Array<{ pool: string; feasible: boolean; replicas?: number; costPerHour?: string; reason?: string }>;
  split: Array<{ inputMaxTokens: number; outputMaxTokens: number; requestsPerSecond: number; weights: Record<string, number> }>;
  solve: { engine: string; mode: string; status: string; millis: number; lowerBound?: string; gap?: number };
}

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

export function mixOf(allocation: ReadonlyArray<{ replicas: number; gpuType: string }>): string {
  return allocation.filter((a) => a.replicas > 0).map((a) => `${a.replicas}x${a.gpuType}`).join('+') || 'none';
}

export function buildPlanReport(args: {
  result: SolveResult;
  instance: ServiceInstance;
  service: { name: string; namespace?: string; model: string; sloTpotMillis: number };
  profiles: PlanReport['profiles'];
}): PlanReport {
  const { result, instance } = args;
  const edges = instance.input.buckets;
  const gpuOf = new Map(instance.gpus.map((g) => [g.pool, g]));
  const w = instance.input.workload as { totalRate: number };
  const base: PlanReport = {
    apiVersion: 'melange.dev/v1alpha1', kind: 'Plan',
    service: args.service, profiles: args.profiles,
    workload: {
      requestsPerSecond: w.totalRate, headroomPercent: instance.input.headroomPercent ?? 0, mode: instance.input.mode ?? 'fractional',
      ...(instance.input.mode === 'sliced' ? { sliceFactor: instance.input.sliceFactor ?? 8 } : {}),
    },
    status: result.status,
    allocation: [], mix: 'none', bestSingleType: null, savingsPercent: null,
    baselines: result.baselines.map((b) => b.feasible
      ? { pool: b.id, feasible: true, replicas: b.replicas, costPerHour: formatMoney(b.costPerHour) }
      : { pool: b.id, feasible: false, reason: b.reason }),
    split: [],
    solve: {
      engine: result.stats.engine, mode: result.stats.mode, status: result.stats.status, millis: Math.round(result.stats.ms * 100) / 100,
      ...(result.stats.lowerBound !== undefined ? { lowerBound: formatMoney(Math.max(0, result.stats.lowerBound)) } : {}),
      ...(result.stats.gap !== undefined ? { gap: result.stats.gap } : {}),
    },
  };
  if (!isSuccess(result)) {
    return {
      ...base,
      failure: {
        reason: result.reason, message: result.message,
        ...(result.field ? { field: result.field } : {}),
        ...(result.gpu ? { pool: result.gpu } : {}),
        ...(result.bucket ? { bucket: {
          inputMaxTokens: edges.inputEdges[result.bucket.input] ?? 0, outputMaxTokens: edges.outputEdges[result.bucket.output] ?? 0 } } : {}),
      },
    };
  }
  const allocation = result.allocation.map((a) => ({
    pool: a.id, gpuType: gpuOf.get(a.id)?.gpuType ?? a.id, replicas: a.replicas,
    gpusPerReplica: gpuOf.get(a.id)?.gpusPerReplica ?? 1, costPerHour: formatMoney(a.costPerHour), utilisation: r4(a.utilisation),
  }));
  return {
    ...base,
    allocation,
    mix: mixOf(allocation),
    costPerHour: formatMoney(result.costPerHour),
    bestSingleType: result.bestBaseline ? { pool: result.bestBaseline.id, costPerHour: formatMoney(result.bestBaseline.costPerHour) } : null,
    savingsPercent: result.savingsPercent === null ? null : Math.round(result.savingsPercent * 100) / 100,
    split: result.split.map((s) => ({
      inputMaxTokens: edges.inputEdges[s.input] ?? 0, outputMaxTokens: edges.outputEdges[s.output] ?? 0,
      requestsPerSecond: r4(s.rate), weights: Object.fromEntries(Object.entries(s.weights).map(([k, v]) => [k, r4(v)])),
    })),
  };
}
