import {
  LLMServiceConditionTypes as C,
  formatMix,
  formatMoney,
  formatPercent,
  setCondition,
  toKubeTime,
  type Condition,
  type ConditionUpdate,
  type LLMServiceStatus,
} from '../api/index.js';
import type { ResolvedGpu } from '../solver/from-api.js';
import type { SolveStatus } from '../solver/index.js';
import type { AllocationDecision } from './allocation.js';
import { unschedulableMessage, type PoolCap } from './availability.js';
import { canonicalJson } from './desired.js';
import type { PoolObservation, TransitionPlan } from './transition.js';
import type { MetricsConditionUpdate, WorkloadSourceName } from './workload.js';

// Status as a pure function of the previous status and what this reconcile learned. Conditions go through
// the api's setCondition (lastTransitionTime moves only on a flip), so an unchanged world yields a
// deep-equal status and no write. The condition the issue calls "Provisioned" is the api's
// CapacityProvisioned.

export interface SolveRecord {
  at: Date;
  ms: number;
  status: SolveStatus;
  gap?: number;
  engine?: string;
}

export type PlanOutcome =
  | {
      kind: 'allocated';
      decision: Extract<AllocationDecision, { kind: 'solved' }>;
      gpus: readonly ResolvedGpu[];
      solve: SolveRecord;
      workload: { requestsPerSecond: number; source: WorkloadSourceName; window?: string; headroomPercent: number; fallback: boolean };
    }
  | {
      /** Nothing new can be planned: keep the last allocation, touch no Deployment. */
      kind: 'held';
      reason: string;
      message: string;
      solve?: SolveRecord;
    };

export interface StatusInputs {
  generation: number;
  now: Date;
  metrics: MetricsConditionUpdate;
  outcome: PlanOutcome;
  observed: readonly PoolObservation[];
  /** The transition towards the allocation in status (computed even when held, for reporting). */
  transition?: TransitionPlan;
  /** A Deployment the API server refused (invalid template, …). */
  applyError?: string;
  /** Pools capped at their ready replicas because they could not provision more (availability.ts). */
  unschedulable?: readonly PoolCap[];
  /** When a cap is tried again (for the message). */
  retryMs?: number;
}

export function buildStatus(prev: LLMServiceStatus | undefined, i: StatusInputs): LLMServiceStatus {
  const ready = (pool: string) => i.observed.find((o) => o.pool === pool && o.exists)?.readyReplicas ?? 0;
  const o = i.outcome;
  const next: LLMServiceStatus = { observedGeneration: i.generation };

  if (o.kind === 'allocated') {
    const d = o.decision;
    const allocation: NonNullable<LLMServiceStatus['allocation']> = o.gpus.map((g) => ({
      pool: g.pool,
      gpuType: g.gpuType,
      replicas: d.replicas[g.pool] ?? 0,
      readyReplicas: ready(g.pool),
      costPerHour: formatMoney((d.replicas[g.pool] ?? 0) * g.costPerReplicaHour),
    }));
    // Deployments of pools no longer in spec.gpus stay listed (target 0) until they are gone.
    for (const ob of i.observed) {
      if (ob.exists && !allocation.some((a) => a.pool === ob.pool)) {
        allocation.push({ pool: ob.pool, replicas: 0, readyReplicas: ob.readyReplicas, costPerHour: '0.00' });
      }
    }
    next.allocation = allocation;
    next.mix = formatMix(allocation);
    next.costPerHour = formatMoney(d.costPerHour);
    const best = d.result.bestBaseline;
    if (best) {
      next.bestSingleType = { pool: best.id, costPerHour: formatMoney(best.costPerHour) };
      next.savingsPercent = formatPercent(best.costPerHour > 0 ? ((best.costPerHour - d.costPerHour) / best.costPerHour) * 100 : 0);
    }
    next.split = d.split.map((s) => ({ input: s.input, output: s.output, weights: roundWeights(s.weights) }));
    next.workload = { requestsPerSecond: o.workload.requestsPerSecond, source: o.workload.source, ...(o.workload.window ? { window: o.workload.window } : {}) };
  } else if (prev?.allocation) {
    // Held: the last allocation stays what we run and report; only readiness is refreshed.
    next.allocation = prev.allocation.map((a) => ({ ...a, readyReplicas: ready(a.pool) }));
    for (const k of ['mix', 'costPerHour', 'bestSingleType', 'savingsPercent', 'split', 'workload'] as const) {
      if (prev[k] !== undefined) (next as Record<string, unknown>)[k] = prev[k];
    }
  }
  const solve = o.solve;
  if (solve) {
    next.lastSolve = {
      time: toKubeTime(solve.at),
      durationMillis: Math.max(0, Math.round(solve.ms)),
      status: solve.status,
      ...(solve.gap !== undefined && Number.isFinite(solve.gap) ? { gap: formatGap(solve.gap) } : {}),
      ...(solve.engine ? { engine: solve.engine.slice(0, 64) } : {}),
    };
  } else if (prev?.lastSolve) next.lastSolve = prev.lastSolve;

  next.conditions = conditionsFor(prev?.conditions, next, i);
  return next;
}

function conditionsFor(prev: readonly Condition[] | undefined, next: LLMServiceStatus, i: StatusInputs): Condition[] {
  const gen = i.generation;
  const o = i.outcome;
  const hasAllocation = next.allocation !== undefined;
  const mix = next.mix || 'no replicas';

  const solved: ConditionUpdate =
    o.kind === 'allocated'
      ? { type: C.Solved, status: 'True', observedGeneration: gen, reason: o.decision.result.status === 'optimal' ? 'Optimal' : 'FeasibleWithGap', message: solvedMessage(o, next) }
      : {
          type: C.Solved,
          status: 'False',
          observedGeneration: gen,
          reason: o.reason,
          message: `${o.message}. ${hasAllocation ? `Keeping the last allocation (${mix}) and leaving its Deployments untouched.` : 'No allocation yet: nothing is deployed.'}`,
        };

  let capacity: ConditionUpdate;
  const t = i.transition;
  if (!hasAllocation || !t) {
    capacity = { type: C.CapacityProvisioned, status: 'False', observedGeneration: gen, reason: 'NoAllocation', message: 'no allocation has been planned yet' };
  } else if (i.applyError) {
    capacity = { type: C.CapacityProvisioned, status: 'False', observedGeneration: gen, reason: 'ApplyFailed', message: i.applyError };
  } else if (t.complete) {
    const total = (next.allocation ?? []).reduce((a, b) => a + b.replicas, 0);
    capacity = { type: C.CapacityProvisioned, status: 'True', observedGeneration: gen, reason: 'ReplicasReady', message: `all ${total} planned replicas are ready (${mix})` };
  } else if (t.waitingFor.length === 0 && t.draining) {
    // The plan is served; what is left is old capacity waiting out the window or the paced drain.
    const surplus = t.holding.map((h) => `${h.pool} ${h.replicas} → ${h.target}`).join(', ');
    const how = t.draining.phase === 'stabilizing' ? `once the stabilization window ends at ${toKubeTime(new Date(t.draining.until))}` : `at most ${t.draining.maxStep} replicas per GPU type per step`;
    capacity = { type: C.CapacityProvisioned, status: 'False', observedGeneration: gen, reason: 'DrainingSurplus', message: `all planned replicas are ready (${mix}); removing the surplus (${surplus}) ${how}` };
  } else {
    const waiting = t.waitingFor.map((w) => `${w.pool} ${w.ready}/${w.want} ready`).join(', ');
    const holding = t.holding.map((h) => `${h.pool} kept at ${h.replicas} (target ${h.target})`).join(', ');
    capacity = {
      type: C.CapacityProvisioned,
      status: 'False',
      observedGeneration: gen,
      reason: 'WaitingForReplicas',
      message: `waiting for ready replicas: ${waiting || 'none'}${holding ? `; ${holding} until the new capacity is ready` : ''}`,
    };
  }

  // A pool that cannot provision: say so while the capacity is not (yet) where the capped plan wants it.
  const caps = i.unschedulable ?? [];
  const capMessage = caps.length > 0 ? unschedulableMessage(caps, i.retryMs) : '';
  if (caps.length > 0 && (capacity.reason === 'WaitingForReplicas' || capacity.reason === 'DrainingSurplus')) {
    capacity = { ...capacity, reason: 'PoolUnschedulable', message: `${capMessage}; ${capacity.message}` };
  }

  const degraded: ConditionUpdate =
    o.kind === 'held' && hasAllocation
      ? { type: C.Degraded, status: 'True', observedGeneration: gen, reason: o.reason, message: `serving the last allocation (${mix}) because it cannot be re-planned now: ${o.message}` }
      : o.kind === 'allocated' && o.workload.fallback
        ? { type: C.Degraded, status: 'True', observedGeneration: gen, reason: 'WorkloadFallback', message: i.metrics.message }
        : caps.length > 0
          ? { type: C.Degraded, status: 'True', observedGeneration: gen, reason: 'PoolUnschedulable', message: capMessage }
          : { type: C.Degraded, status: 'False', observedGeneration: gen, reason: 'AsExpected', message: 'planning from the configured workload source' };

  const readyCond: ConditionUpdate =
    solved.status !== 'True'
      ? { type: C.Ready, status: 'False', observedGeneration: gen, reason: solved.reason, message: solved.message }
      : capacity.status !== 'True'
        ? { type: C.Ready, status: 'False', observedGeneration: gen, reason: capacity.reason, message: capacity.message }
        : { type: C.Ready, status: 'True', observedGeneration: gen, reason: 'Ready', message: `serving ${mix} at $${next.costPerHour ?? '0'}/h` };

  const metrics: ConditionUpdate = { type: C.MetricsAvailable, observedGeneration: gen, ...i.metrics };
  let list = prev ? [...prev] : [];
  for (const c of [readyCond, solved, metrics, capacity, degraded]) list = setCondition(list, c, i.now);
  return list;
}

function solvedMessage(o: Extract<PlanOutcome, { kind: 'allocated' }>, next: LLMServiceStatus): string {
  const d = o.decision;
  const w = o.workload;
  const parts = [`planned ${next.mix || 'no replicas'} at $${next.costPerHour}/h for ${w.requestsPerSecond} req/s (+${w.headroomPercent}% headroom, ${w.source})`];
  if (d.result.bestBaseline) parts.push(`best single type ${d.result.bestBaseline.id} costs $${formatMoney(d.result.bestBaseline.costPerHour)}/h`);
  else parts.push('no single GPU type can serve this workload alone');
  if (d.kept) {
    parts.push(`kept the current allocation: the optimum ($${formatMoney(d.kept.optimumCostPerHour)}/h) saves only ${formatPercent(d.kept.savingsPercent)}% (< policy.minSavingsPercent)`);
  }
  if (d.minTotalAdded) parts.push(`added ${d.minTotalAdded.replicas} ${d.minTotalAdded.pool} replica(s) to reach policy.minTotalReplicas`);
  return parts.join('; ');
}

/** Four decimals keep the split readable and stable across identical solves. */
function roundWeights(w: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(w)) {
    const r = Math.round(v * 10_000) / 10_000;
    if (r > 0) out[k] = r;
  }
  return out;
}

const formatGap = (g: number): string => (g <= 0 ? '0' : String(Number(g.toPrecision(3)))).slice(0, 32);

/** Semantic equality: key order and lastTransitionTime do not count. */
export function statusEqual(a: LLMServiceStatus | undefined, b: LLMServiceStatus | undefined): boolean {
  const norm = (s: LLMServiceStatus | undefined) =>
    canonicalJson({ ...(s ?? {}), conditions: (s?.conditions ?? []).map(({ lastTransitionTime: _t, ...c }) => c) });
  return norm(a) === norm(b);
}

/**
 * The JSON merge patch turning `prev` into `next`: objects merge recursively (removed keys become null),
 * arrays and scalars replace.
 */
export function mergePatchOf(prev: unknown, next: unknown): unknown {
  if (!isObj(prev) || !isObj(next)) return next;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(prev)) if (!(k in next) || next[k] === undefined) out[k] = null;
  for (const [k, v] of Object.entries(next)) if (v !== undefined) out[k] = k in prev ? mergePatchOf(prev[k], v) : v;
  return out;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
