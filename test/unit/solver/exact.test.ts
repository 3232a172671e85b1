import { beforeAll, describe, expect, it } from 'vitest';
import { isSuccess, loadHighsEngine, solve, type MilpEngine, type SolveInput, type SolveSuccess } from '../../../src/solver/index.js';

let engine: MilpEngine;
beforeAll(async () => { engine = await loadHighsEngine(); });

const replicasOf = (r: SolveSuccess) => Object.fromEntries(r.allocation.map((a) => [a.id, a.replicas]));
const mustSucceed = (input: SolveInput): SolveSuccess => {
  const r = solve(input, engine);
  if (!isSuccess(r)) throw new Error(`expected a solution, got ${r.status}: ${r.message}`);
  return r;
};

// The worked example from the authors' released code (reference/melange.md).
const paperExample: SolveInput = {
  buckets: { inputEdges: [100, 200], outputEdges: [100, 200] },
  workload: { totalRate: 30, fractions: [[0.2, 0.1], [0.5, 0.2]] },
  gpus: [
    { id: 'A10G', costPerHour: 1.01, maxThroughput: [[2, 1], [5, 2]] },
    { id: 'A100', costPerHour: 3.67, maxThroughput: [[20, 20], [40, 20]] },
  ],
  mode: 'sliced',
  sliceFactor: 1,
};

const oneBucket = (rate: number): SolveInput => ({
  buckets: { inputEdges: [1000], outputEdges: [500] },
  workload: { totalRate: rate, fractions: [[1]] },
  gpus: [
    { id: 'A100', costPerHour: 3.67, maxThroughput: [[2.0]] },
    { id: 'A10G', costPerHour: 1.01, maxThroughput: [[0.37]] },
  ],
});

describe('exact cases from the paper', () => {
  it('worked example, S = 1: 3 × A10G + 1 × A100 = $6.70, baselines $7.34 and $12.12', () => {
    const r = mustSucceed(paperExample);
    expect(r.status).toBe('optimal');
    expect(replicasOf(r)).toEqual({ A10G: 3, A100: 1 });
    expect(r.costPerHour).toBeCloseTo(6.7, 9);
    const base = Object.fromEntries(r.baselines.map((b) => [b.id, b.feasible ? b.costPerHour : NaN]));
    expect(base.A100).toBeCloseTo(7.34, 9);
    expect(base.A10G).toBeCloseTo(12.12, 9);
    expect(r.bestBaseline).toEqual({ id: 'A100', costPerHour: expect.closeTo(7.34, 9) });
    expect(r.savingsPercent).toBeCloseTo(((7.34 - 6.7) / 7.34) * 100, 6);
    // S = 1 means whole buckets: every split weight is 0 or 1.
    for (const s of r.split) expect(Object.values(s.weights)).toEqual([1]);
    expect(r.stats.gap).toBe(0);
  });

  it('fractional mode is never dearer than S = 1 on the worked example', () => {
    const r = mustSucceed({ ...paperExample, mode: 'fractional' });
    expect(r.costPerHour).toBeLessThanOrEqual(6.7 + 1e-9);
    for (const s of r.split) expect(Object.values(s.weights).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
  });

  it('one bucket at 4.3 req/s: 2 × A100 + 1 × A10G = $8.35', () => {
    const r = mustSucceed(oneBucket(4.3));
    expect(replicasOf(r)).toEqual({ A100: 2, A10G: 1 });
    expect(r.costPerHour).toBeCloseTo(8.35, 9);
    expect(r.status).toBe('optimal');
  });

  it('one bucket at 0.3 req/s: 1 × A10G', () => {
    const r = mustSucceed(oneBucket(0.3));
    expect(replicasOf(r)).toEqual({ A100: 0, A10G: 1 });
    expect(r.costPerHour).toBeCloseTo(1.01, 9);
  });

  it('utilisation and load are consistent with the split', () => {
    const r = mustSucceed(oneBucket(4.3));
    const a100 = r.allocation.find((a) => a.id === 'A100')!;
    const share = r.split[0]!.weights.A100 ?? 0;
    expect(a100.load).toBeCloseTo((4.3 * share) / 2.0, 9);
    expect(a100.utilisation).toBeCloseTo(a100.load / 2, 9);
    expect(a100.utilisation).toBeLessThanOrEqual(1 + 1e-6);
  });

  it('headroom scales the rate: 10% on 4.3 req/s is 4.73 req/s', () => {
    const r = mustSucceed({ ...oneBucket(4.3), headroomPercent: 10 });
    expect(r.split[0]!.rate).toBeCloseTo(4.73, 9);
    expect(r.costPerHour).toBeGreaterThanOrEqual(8.35 - 1e-9);
  });

  it('zero traffic costs only the minimum replicas', () => {
    const input = oneBucket(0);
    input.gpus[0]!.minReplicas = 1;
    const r = mustSucceed(input);
    expect(replicasOf(r)).toEqual({ A100: 1, A10G: 0 });
    expect(r.split).toEqual([]);
  });

  it('a change penalty keeps the current allocation when moving saves less than the penalty', () => {
    const free = mustSucceed(oneBucket(0.3));
    expect(replicasOf(free)).toEqual({ A100: 0, A10G: 1 });
    const sticky = mustSucceed({ ...oneBucket(0.3), current: { A100: 1, A10G: 0 }, changePenaltyPerReplica: 5 });
    expect(replicasOf(sticky)).toEqual({ A100: 1, A10G: 0 });
  });

  it('respects per-type caps and minimums', () => {
    const input = oneBucket(4.3);
    input.gpus[0]!.maxReplicas = 1; // A100 ≤ 1 → A10G must carry 2.3 req/s → 7 replicas
    const r = mustSucceed(input);
    expect(replicasOf(r)).toEqual({ A100: 1, A10G: 7 });
    const withMin = mustSucceed({ ...oneBucket(0.3), gpus: oneBucket(0.3).gpus.map((g) => ({ ...g, minReplicas: g.id === 'A100' ? 1 : 0 })) });
    expect(replicasOf(withMin)).toEqual({ A100: 1, A10G: 0 });
  });
});

describe('typed failures', () => {
  it('a bucket with traffic that no type can serve names the bucket', () => {
    const input: SolveInput = {
      buckets: { inputEdges: [1000, 16000], outputEdges: [500] },
      workload: { bucketRates: [[1], [0.5]] },
      gpus: [{ id: 'L4', costPerHour: 0.7, maxThroughput: [[1], [0]] }],
    };
    const r = solve(input, engine);
    expect(r.status).toBe('infeasible');
    if (isSuccess(r)) throw new Error('unreachable');
    expect(r.reason).toBe('BucketUnservable');
    expect(r.bucket).toEqual({ input: 1, output: 0 });
    expect(r.message).toContain('16000');
  });

  it('caps too small give CapacityExhausted naming a capped type', () => {
    const input = oneBucket(10);
    input.gpus = input.gpus.map((g) => ({ ...g, maxReplicas: 1 }));
    const r = solve(input, engine);
    if (isSuccess(r)) throw new Error('expected infeasible');
    expect(r.reason).toBe('CapacityExhausted');
    expect(r.gpu).toBe('A100');
    expect(r.message).toMatch(/A100 ≤ 1, A10G ≤ 1/);
  });

  it.each([
    ['negative rate', { workload: { totalRate: -1, fractions: [[1]] } }, 'workload.totalRate'],
    ['NaN throughput', { gpus: [{ id: 'x', costPerHour: 1, maxThroughput: [[NaN]] }] }, 'gpus[0].maxThroughput[0][0]'],
    ['zero cost', { gpus: [{ id: 'x', costPerHour: 0, maxThroughput: [[1]] }] }, 'gpus[0].costPerHour'],
    ['duplicate ids', { gpus: [{ id: 'x', costPerHour: 1, maxThroughput: [[1]] }, { id: 'x', costPerHour: 2, maxThroughput: [[1]] }] }, 'gpus[1].id'],
    ['edges not increasing', { buckets: { inputEdges: [1000, 1000], outputEdges: [500] } }, 'buckets.inputEdges[1]'],
    ['fraction rows mismatch', { workload: { totalRate: 1, fractions: [[1], [0]] } }, 'workload.fractions'],
    ['min above max', { gpus: [{ id: 'x', costPerHour: 1, maxThroughput: [[1]], minReplicas: 3, maxReplicas: 2 }] }, 'gpus[0].minReplicas'],
    ['bad slice factor', { mode: 'sliced', sliceFactor: 0 }, 'sliceFactor'],
  ] as const)('%s → InvalidInput naming %s', (_name, patch, field) => {
    const r = solve({ ...oneBucket(1), ...(patch as Partial<SolveInput>) }, engine);
    if (isSuccess(r)) throw new Error('expected InvalidInput');
    expect(r.reason).toBe('InvalidInput');
    expect(r.field).toBe(field);
    expect(r.message.startsWith(field)).toBe(true);
  });

  it('never throws on garbage input', () => {
    for (const junk of [null, {}, { buckets: {} }, { buckets: { inputEdges: [1], outputEdges: [1] }, workload: {}, gpus: [] }]) {
      const r = solve(junk as unknown as SolveInput, engine);
      expect(r.status).toBe('infeasible');
    }
  });
});
