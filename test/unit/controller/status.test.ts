import { describe, expect, it } from 'vitest';
import { LLMServiceStatusSchema, findCondition, formatMoney, type LLMServiceStatus } from '../../../src/api/index.js';
import { decideAllocation } from '../../../src/controller/allocation.js';
import { buildStatus, mergePatchOf, statusEqual, type PlanOutcome, type StatusInputs } from '../../../src/controller/status.js';
import { planTransition, type PoolObservation } from '../../../src/controller/transition.js';
import { instanceFromService } from '../../../src/solver/from-api.js';
import { loadHighsEngine, solve } from '../../../src/solver/index.js';
import { POOLS, PROFILES, service } from './fixtures.js';

const engine = await loadHighsEngine();
const inst = instanceFromService(service(), { profiles: PROFILES, pools: POOLS });
if (!inst.ok) throw new Error('fixture');
const decision = await decideAllocation({ input: inst.value.input, gpus: inst.value.gpus, policy: { minSavingsPercent: 5, minTotalReplicas: 1 }, solve: async (i) => solve(i, engine) });
if (decision.kind !== 'solved') throw new Error('fixture');
const t0 = new Date('2026-11-28T10:00:00Z');
const t1 = new Date('2026-11-28T10:05:00Z');
const metrics = { status: 'True' as const, reason: 'StaticWorkload', message: 'static' };
const allocated: PlanOutcome = {
  kind: 'allocated',
  decision,
  gpus: inst.value.gpus,
  solve: { at: t0, ms: 12.4, status: 'optimal', gap: 0, engine: 'highs-1.15.1' },
  workload: { requestsPerSecond: 10, source: 'Static', headroomPercent: 10, fallback: false },
};
const obs = (ready: Record<string, number>): PoolObservation[] =>
  Object.entries(decision.replicas).filter(([, n]) => n > 0).map(([pool, n]) => ({ pool, exists: true, replicas: n, readyReplicas: ready[pool] ?? 0, observed: true }));

function inputs(outcome: PlanOutcome, observed: PoolObservation[], over: Partial<StatusInputs> = {}): StatusInputs {
  const target = outcome.kind === 'allocated' ? outcome.decision.replicas : {};
  return { generation: 3, now: t0, metrics, outcome, observed, transition: planTransition(target, observed), ...over };
}
const cond = (s: LLMServiceStatus, type: string) => findCondition(s.conditions, type);

describe('buildStatus', () => {
  const ready = Object.fromEntries(Object.entries(decision.replicas));
  const s = buildStatus(undefined, inputs(allocated, obs(ready)));

  it('reports the allocation, cost, best single type, savings, split and last solve, valid per the CRD schema', () => {
    expect(LLMServiceStatusSchema.safeParse(s).success).toBe(true);
    expect(s.observedGeneration).toBe(3);
    expect(s.allocation?.map((a) => a.pool)).toEqual(['small', 'big']);
    for (const a of s.allocation ?? []) expect(a.readyReplicas).toBe(a.replicas);
    expect(s.costPerHour).toBe(formatMoney(decision.costPerHour));
    expect(s.bestSingleType?.pool).toBe('big');
    expect(Number(s.savingsPercent)).toBeGreaterThanOrEqual(0);
    expect(s.lastSolve).toEqual({ time: '2026-11-28T10:00:00Z', durationMillis: 12, status: 'optimal', gap: '0', engine: 'highs-1.15.1' });
    expect(s.workload).toEqual({ requestsPerSecond: 10, source: 'Static' });
    expect(s.split?.every((b) => Math.abs(Object.values(b.weights).reduce((x, y) => x + y, 0) - 1) < 1e-3)).toBe(true);
  });

  it('sets Ready, Solved, MetricsAvailable, CapacityProvisioned and Degraded with observedGeneration', () => {
    expect(s.conditions?.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).toEqual([
      ['Ready', 'True', 'Ready', 3],
      ['Solved', 'True', 'Optimal', 3],
      ['MetricsAvailable', 'True', 'StaticWorkload', 3],
      ['CapacityProvisioned', 'True', 'ReplicasReady', 3],
      ['Degraded', 'False', 'AsExpected', 3],
    ]);
  });

  it('is not Ready while replicas are not ready, and says which', () => {
    const w = buildStatus(undefined, inputs(allocated, obs({})));
    expect(cond(w, 'CapacityProvisioned')).toMatchObject({ status: 'False', reason: 'WaitingForReplicas' });
    expect(cond(w, 'Ready')).toMatchObject({ status: 'False', reason: 'WaitingForReplicas' });
    expect(cond(w, 'Ready')?.message).toMatch(/0\/\d+ ready/);
  });

  it('is idempotent: the same inputs later yield an equal status (lastTransitionTime kept), so nothing is written', () => {
    const again = buildStatus(s, inputs(allocated, obs(ready), { now: t1 }));
    expect(statusEqual(s, again)).toBe(true);
    expect(again.conditions?.map((c) => c.lastTransitionTime)).toEqual(s.conditions?.map((c) => c.lastTransitionTime));
  });

  it('held (bad input) keeps the last allocation, Ready=False with the reason, Degraded=True', () => {
    const held: PlanOutcome = { kind: 'held', reason: 'BucketUnservable', message: 'bucket (input ≤ 1000 tokens, output ≤ 100 tokens) has 1.1 req/s but no GPU type can serve it', solve: { at: t1, ms: 1, status: 'infeasible', engine: 'e' } };
    const h = buildStatus(s, { ...inputs(held, obs(ready), { now: t1, generation: 4 }), transition: planTransition(decision.replicas, obs(ready)) });
    expect(LLMServiceStatusSchema.safeParse(h).success).toBe(true);
    expect(h.allocation).toEqual(s.allocation);
    expect(h.mix).toBe(s.mix);
    expect(h.observedGeneration).toBe(4);
    expect(cond(h, 'Ready')).toMatchObject({ status: 'False', reason: 'BucketUnservable', observedGeneration: 4, lastTransitionTime: '2026-11-28T10:05:00Z' });
    expect(cond(h, 'Ready')?.message).toMatch(/input ≤ 1000 tokens.*Keeping the last allocation/);
    expect(cond(h, 'Degraded')).toMatchObject({ status: 'True', reason: 'BucketUnservable' });
    expect(h.lastSolve?.status).toBe('infeasible');
  });

  it('held without any previous allocation: nothing deployed, no capacity', () => {
    const h = buildStatus(undefined, { generation: 1, now: t0, metrics, outcome: { kind: 'held', reason: 'PoolNotFound', message: 'spec.gpus[0].pool: GPUPool "x" not found' }, observed: [] });
    expect(h.allocation).toBeUndefined();
    expect(cond(h, 'Ready')).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
    expect(cond(h, 'CapacityProvisioned')).toMatchObject({ status: 'False', reason: 'NoAllocation' });
    expect(cond(h, 'Degraded')?.status).toBe('False');
    expect(LLMServiceStatusSchema.safeParse(h).success).toBe(true);
  });

  it('a static fallback for a measured source is planned but Degraded and MetricsAvailable=False', () => {
    const fb: PlanOutcome = { ...allocated, workload: { ...(allocated as Extract<PlanOutcome, { kind: 'allocated' }>).workload, fallback: true } } as PlanOutcome;
    const f = buildStatus(undefined, inputs(fb, obs(ready), { metrics: { status: 'False', reason: 'SourceNotAvailable', message: 'no prometheus; planning with static' } }));
    expect(cond(f, 'MetricsAvailable')).toMatchObject({ status: 'False', reason: 'SourceNotAvailable' });
    expect(cond(f, 'Degraded')).toMatchObject({ status: 'True', reason: 'WorkloadFallback' });
    expect(cond(f, 'Ready')?.status).toBe('True');
  });

  it('an apply error shows in CapacityProvisioned and Ready', () => {
    const e = buildStatus(undefined, inputs(allocated, obs(ready), { applyError: 'Deployment chat-small: HTTP 422: bad' }));
    expect(cond(e, 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed', message: 'Deployment chat-small: HTTP 422: bad' });
  });
});

describe('statusEqual / mergePatchOf', () => {
  it('ignores key order and lastTransitionTime, not values', () => {
    const a: LLMServiceStatus = { observedGeneration: 1, mix: '1xA', conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }] };
    const b = { conditions: [{ message: 'm', reason: 'R', status: 'True' as const, type: 'Ready', lastTransitionTime: '2027-01-01T00:00:00Z' }], mix: '1xA', observedGeneration: 1 };
    expect(statusEqual(a, b)).toBe(true);
    expect(statusEqual(a, { ...b, mix: '2xA' })).toBe(false);
    expect(statusEqual(undefined, {})).toBe(true);
  });
  it('nulls keys that disappeared (recursively) so a merge patch really removes them', () => {
    expect(mergePatchOf({ a: 1, b: { c: 1, d: 2 }, e: [1] }, { b: { c: 2 }, e: [2] })).toEqual({ a: null, b: { c: 2, d: null }, e: [2] });
  });
});
