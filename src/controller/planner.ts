import { createHash } from 'node:crypto';
import { parseDurationMs, parseMoney, type FieldError, type GPUPool, type GPUProfile, type LLMService } from '../api/index.js';
import { instanceFromService, type ResolvedGpu } from '../solver/from-api.js';
import type { SolveInput, SolveResult } from '../solver/index.js';
import { decideAllocation, sameReplicas, type AllocationDecision, type Replicas } from './allocation.js';
import { canonicalJson } from './desired.js';
import type { Logger } from './logger.js';
import type { Metrics, SolveOutcome } from './metrics.js';
import type { SharedPools } from './shared-pools.js';
import type { PlanOutcome, SolveRecord } from './status.js';
import type { MetricsConditionUpdate, WorkloadSource } from './workload.js';

// What to run for one service: workload estimate → solver instance (the shared mapping of `melangectl plan`)
// → decision. The solver runs in the worker thread, and only when something it depends on changed: the
// instance (spec, profiles, pools, measured workload), the policy knobs of the decision, or the current
// allocation (if someone other than us changed it); a Timeout/SolverError is retried every solveInterval.
// The solver is deterministic, so re-running it on an identical instance would only burn CPU and rewrite
// lastSolve.time: every interval re-estimates the workload instead (which, with Prometheus, is what changes).
// A service sharing a capped GPUPool solves with the replica cap its share of the joint decision gives it
// (shared-pools.ts); the cap is part of the instance, so a new share is a new solve.

export interface PlanResult {
  outcome: PlanOutcome;
  metrics: MetricsConditionUpdate;
  /** When the periodic re-evaluation is due. */
  nextSolveInMs: number;
}

interface SolveMemo {
  hash: string;
  /** The allocation in status when we solved (hysteresis and the change penalty depend on it). */
  currentAtSolve: Replicas | undefined;
  decision: AllocationDecision;
  record: SolveRecord;
  /** Timeout/solver error: worth retrying on the next interval even with identical input. */
  transient: boolean;
}

export interface PlannerDeps {
  workload: WorkloadSource;
  solve: (input: SolveInput) => Promise<SolveResult>;
  metrics?: Metrics;
  /** Joint decisions over shared capped pools; without it every service is planned alone. */
  shared?: SharedPools;
}

export class Planner {
  private readonly memos = new Map<string, SolveMemo>();

  constructor(private readonly deps: PlannerDeps) {}

  forget(key: string): void {
    this.memos.delete(key);
  }

  async plan(
    key: string,
    svc: LLMService,
    refs: { profiles: readonly GPUProfile[]; pools: readonly GPUPool[] },
    current: Replicas | undefined,
    now: Date,
    log: Logger,
    /** Pools that cannot provision more than their ready replicas (availability.ts): replica caps for this solve. */
    availability: Readonly<Record<string, number>> = {},
  ): Promise<PlanResult> {
    const policy = svc.spec.policy;
    const intervalMs = parseDurationMs(policy.solveInterval);
    const estimate = await this.deps.workload.estimate(svc);
    // Missing or failing measurements never move the allocation: hold it (MetricsAvailable=False says why) and
    // come back after the source's back-off. The static fallback only plans a service that has no allocation yet.
    const shared = this.deps.shared;
    if (!estimate.ok) {
      shared?.note(key, 'held');
      const nextSolveInMs = estimate.retryInMs !== undefined ? Math.max(1000, estimate.retryInMs) : intervalMs;
      return { outcome: { kind: 'held', reason: estimate.reason, message: estimate.message }, metrics: estimate.metrics, nextSolveInMs };
    }
    if (estimate.fallback && current) {
      shared?.note(key, 'held');
      return { outcome: { kind: 'held', reason: 'WorkloadUnavailable', message: estimate.metrics.message.replace(/; planning with spec\.workload\.static.*$/, '') }, metrics: estimate.metrics, nextSolveInMs: intervalMs };
    }

    const inst = instanceFromService(svc, refs, estimate.override);
    if (!inst.ok) {
      this.memos.delete(key);
      shared?.note(key, 'held');
      return { outcome: { kind: 'held', ...classifyReferenceErrors(inst.errors) }, metrics: estimate.metrics, nextSolveInMs: intervalMs };
    }
    shared?.note(key, estimate.override);
    const share = shared ? await shared.shareFor(key, svc, inst.value) : { kind: 'alone' as const };
    if (share.kind === 'exhausted' || share.kind === 'failed') {
      const reason = share.kind === 'exhausted' ? 'CapacityExhausted' : share.reason;
      return { outcome: { kind: 'held', reason, message: share.message }, metrics: estimate.metrics, nextSolveInMs: intervalMs };
    }
    const own = withAvailability(share.kind === 'capped' ? withCaps(inst.value.input, share.caps) : inst.value.input, availability);
    const input: SolveInput = {
      ...own,
      ...(policy.changePenaltyPerReplica && parseMoney(policy.changePenaltyPerReplica) > 0 && current ? { current } : {}),
    };
    // Hash without the current allocation: our own apply of a decision must not count as a change.
    const hash = createHash('sha256')
      .update(canonicalJson({ input: { ...input, current: undefined }, minSavings: policy.minSavingsPercent, minTotal: policy.minTotalReplicas }))
      .digest('hex');
    let memo = this.memos.get(key);
    const decided = memo?.decision.kind === 'solved' ? memo.decision.replicas : undefined;
    const due =
      !memo ||
      memo.hash !== hash ||
      !(same(current, memo.currentAtSolve) || same(current, decided)) ||
      (memo.transient && now.getTime() - memo.record.at.getTime() >= intervalMs);
    if (due) {
      memo = await this.solve(hash, input, inst.value.gpus, policy, current, now, log);
      this.memos.set(key, memo);
    } else this.deps.metrics?.solves.inc({ outcome: 'unchanged' });
    const m = memo as SolveMemo;
    // Next periodic evaluation: one interval from now (the queue keeps an earlier pending deadline), except
    // that a transient failure is retried one interval after it happened.
    const nextSolveInMs = m.transient ? Math.max(1000, intervalMs - (now.getTime() - m.record.at.getTime())) : intervalMs;
    const outcome: PlanOutcome =
      m.decision.kind === 'solved'
        ? {
            kind: 'allocated',
            decision: m.decision,
            gpus: inst.value.gpus,
            solve: m.record,
            workload: {
              requestsPerSecond: estimate.requestsPerSecond,
              source: estimate.source,
              ...(estimate.window ? { window: estimate.window } : {}),
              headroomPercent: policy.headroomPercent,
              fallback: estimate.fallback,
            },
          }
        : { kind: 'held', reason: m.decision.failure.reason, message: m.decision.failure.message, solve: m.record };
    return { outcome, metrics: estimate.metrics, nextSolveInMs };
  }

  private async solve(
    hash: string,
    input: SolveInput,
    gpus: readonly ResolvedGpu[],
    policy: LLMService['spec']['policy'],
    current: Replicas | undefined,
    at: Date,
    log: Logger,
  ): Promise<SolveMemo> {
    const t0 = performance.now();
    const decision = await decideAllocation({
      input,
      gpus,
      policy: { minSavingsPercent: policy.minSavingsPercent, minTotalReplicas: policy.minTotalReplicas },
      ...(current ? { current } : {}),
      solve: this.deps.solve,
    });
    const stats = decision.kind === 'solved' ? decision.result.stats : decision.failure.stats;
    const outcome: SolveOutcome = decision.kind === 'failed' && decision.failure.reason === 'Timeout' ? 'timeout' : stats.status;
    this.deps.metrics?.solveDuration.observe({ outcome }, (performance.now() - t0) / 1000);
    this.deps.metrics?.solves.inc({ outcome });
    if (decision.kind === 'solved') {
      log.info({ solve: { status: stats.status, ms: Math.round(stats.ms), replicas: decision.replicas, costPerHour: decision.costPerHour, kept: decision.kept !== undefined } }, 'solved');
    } else log.warn({ solve: { status: stats.status, reason: decision.failure.reason, message: decision.failure.message } }, 'solve failed; keeping the last allocation');
    return {
      hash,
      currentAtSolve: current,
      decision,
      transient: decision.kind === 'failed' && (decision.failure.reason === 'Timeout' || decision.failure.reason === 'SolverError'),
      record: { at, ms: stats.ms, status: stats.status, ...(stats.gap !== undefined ? { gap: stats.gap } : {}), engine: stats.engine },
    };
  }
}

const withCaps = (input: SolveInput, caps: Readonly<Record<string, number>>): SolveInput => ({
  ...input,
  gpus: input.gpus.map((g) => (caps[g.id] === undefined ? g : { ...g, maxReplicas: Math.min(g.maxReplicas ?? Infinity, caps[g.id]!) })),
});

/** A pool capped at what it can deliver also gets its minReplicas lowered to the cap (it cannot deliver more). */
const withAvailability = (input: SolveInput, caps: Readonly<Record<string, number>>): SolveInput =>
  Object.keys(caps).length === 0
    ? input
    : {
        ...input,
        gpus: input.gpus.map((g) => {
          const cap = caps[g.id];
          if (cap === undefined) return g;
          const max = Math.min(g.maxReplicas ?? Infinity, cap);
          return { ...g, maxReplicas: max, ...(g.minReplicas !== undefined ? { minReplicas: Math.min(g.minReplicas, max) } : {}) };
        }),
      };

const same = (a: Replicas | undefined, b: Replicas | undefined) => (a === undefined || b === undefined ? a === b : sameReplicas(a, b));

/** Reference problems become one condition reason (the first kind found) and a message listing all. */
export function classifyReferenceErrors(errors: readonly FieldError[]): { reason: string; message: string } {
  const message = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
  const has = (pred: (e: FieldError) => boolean) => errors.some(pred);
  const reason = has((e) => e.path.endsWith('.pool') && /not found/.test(e.message))
    ? 'PoolNotFound'
    : has((e) => e.path.endsWith('.profile') && /not found/.test(e.message))
      ? 'ProfileNotFound'
      : has((e) => e.path.endsWith('.profile'))
        ? 'ProfileMismatch'
        : has((e) => e.path.startsWith('spec.workload'))
          ? 'NoWorkload'
          : 'InvalidSpec';
  return { reason, message };
}
