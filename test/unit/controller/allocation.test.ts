import { describe, expect, it } from 'vitest';
import { decideAllocation, withMinTotal } from '../../../src/controller/allocation.js';
import { instanceFromService, type ResolvedGpu } from '../../../src/solver/from-api.js';
import { isSuccess, loadHighsEngine, solve, type SolveInput, type SolveResult } from '../../../src/solver/index.js';
import { POOLS, PROFILES, service } from './fixtures.js';

const engine = await loadHighsEngine();
const realSolve = async (input: SolveInput): Promise<SolveResult> => solve(input, engine);

function instance(over: Parameters<typeof service>[0] = {}) {
  const r = instanceFromService(service(over), { profiles: PROFILES, pools: POOLS });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
const policy = (minSavingsPercent = 5, minTotalReplicas = 1) => ({ minSavingsPercent, minTotalReplicas });

describe('decideAllocation', () => {
  it('takes the optimum when there is no current allocation', async () => {
    const { input, gpus } = instance();
    const optimum = solve(input, engine);
    if (!isSuccess(optimum)) throw new Error('fixture must be solvable');
    const d = await decideAllocation({ input, gpus, policy: policy(), solve: realSolve });
    expect(d.kind).toBe('solved');
    if (d.kind !== 'solved') return;
    expect(d.replicas).toEqual(Object.fromEntries(optimum.allocation.map((a) => [a.id, a.replicas])));
    expect(d.costPerHour).toBeCloseTo(optimum.costPerHour, 9);
    expect(d.kept).toBeUndefined();
  });

  it('reports a solver failure as such (the caller keeps the last allocation)', async () => {
    const { input, gpus } = instance({ spec: { gpus: [{ pool: 'small', profile: 'm-small' }] } });
    const d = await decideAllocation({ input, gpus, policy: policy(), solve: realSolve });
    expect(d.kind).toBe('failed');
    if (d.kind === 'failed') expect(d.failure.reason).toBe('BucketUnservable');
  });

  it('keeps a current allocation that still carries the load when the optimum saves less than minSavingsPercent', async () => {
    const { input, gpus } = instance();
    const d0 = await decideAllocation({ input, gpus, policy: policy(), solve: realSolve });
    if (d0.kind !== 'solved') throw new Error('solvable');
    const current = { ...d0.replicas, small: (d0.replicas.small ?? 0) + 1 }; // one cheap replica too many
    const saves = (1 / (d0.costPerHour + 1)) * 100;
    const kept = await decideAllocation({ input, gpus, current, policy: policy(Math.ceil(saves) + 1), solve: realSolve });
    expect(kept.kind === 'solved' && kept.replicas).toEqual(current);
    expect(kept.kind === 'solved' && kept.kept?.savingsPercent).toBeCloseTo(saves, 6);
    // The split is the one for the kept allocation (it still sums to 1 per bucket).
    if (kept.kind === 'solved') for (const s of kept.split) expect(Object.values(s.weights).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    const moved = await decideAllocation({ input, gpus, current, policy: policy(Math.floor(saves) - 1), solve: realSolve });
    expect(moved.kind === 'solved' && moved.replicas).toEqual(d0.replicas);
  });

  it('moves when the current allocation no longer serves the load, however small the savings', async () => {
    const { input, gpus } = instance();
    const current = { small: 1, big: 0 }; // cannot serve the long-prompt bucket
    const d = await decideAllocation({ input, gpus, current, policy: policy(100), solve: realSolve });
    expect(d.kind === 'solved' && d.kept).toBeUndefined();
    expect(d.kind === 'solved' && d.replicas.big).toBeGreaterThan(0);
  });

  it('moves when the current allocation violates the spec bounds (min/max replicas, removed pools)', async () => {
    const { input, gpus } = instance({ spec: { gpus: [{ pool: 'small', profile: 'm-small' }, { pool: 'big', profile: 'm-big', maxReplicas: 2 }] } });
    const d = await decideAllocation({ input, gpus, current: { small: 0, big: 5 }, policy: policy(100), solve: realSolve });
    expect(d.kind === 'solved' && d.kept).toBeUndefined();
    const d2 = await decideAllocation({ input, gpus, current: { small: 3, big: 1, gone: 2 }, policy: policy(100), solve: realSolve });
    expect(d2.kind === 'solved' && d2.kept).toBeUndefined();
  });

  it('honours minTotalReplicas: a near-zero rate still runs the minimum', async () => {
    const { input, gpus } = instance({ spec: { workload: { source: 'Static', static: { requestsPerSecond: 0, distribution: [[1, 0], [0, 0]] } }, policy: { minTotalReplicas: 2 } } });
    const d = await decideAllocation({ input, gpus, policy: policy(5, 2), solve: realSolve });
    expect(d.kind).toBe('solved');
    if (d.kind !== 'solved') return;
    expect(Object.values(d.replicas).reduce((a, b) => a + b, 0)).toBe(2);
    expect(d.minTotalAdded?.replicas).toBe(2);
  });
});

describe('withMinTotal', () => {
  const input: SolveInput = {
    buckets: { inputEdges: [1], outputEdges: [1] },
    workload: { totalRate: 0, fractions: [[1]] },
    gpus: [
      { id: 'cheap', costPerHour: 1, maxThroughput: [[1]], maxReplicas: 1 },
      { id: 'dear', costPerHour: 5, maxThroughput: [[1]] },
    ],
  };
  it('prefers the best single type, then the cheapest pool with room', () => {
    expect(withMinTotal({ cheap: 0, dear: 0 }, input, 1, 'dear').replicas).toEqual({ cheap: 0, dear: 1 });
    expect(withMinTotal({ cheap: 0, dear: 0 }, input, 1).replicas).toEqual({ cheap: 1, dear: 0 });
    expect(withMinTotal({ cheap: 0, dear: 0 }, input, 3).replicas).toEqual({ cheap: 0, dear: 3 }); // cheap is capped at 1
    expect(withMinTotal({ cheap: 1, dear: 2 }, input, 3).added).toBeUndefined();
  });
});

export type { ResolvedGpu };
