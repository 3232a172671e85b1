import { beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../src/common/random.js';
import { sharePool, solveJoint, type JointService } from '../../../src/pools/joint.js';
import { isSuccess, loadHighsEngine, solve, type MilpEngine, type SolveInput } from '../../../src/solver/index.js';

let engine: MilpEngine;
beforeAll(async () => {
  engine = await loadHighsEngine();
});
const run = (i: SolveInput) => solve(i, engine);

// Seeded: the cases are reproducible.
const rng = mulberry32;
const round2 = (x: number) => Math.round(x * 100) / 100;

/** Two GPU types: `shared` (cheap, capped pool) and `other`; one input range, two output ranges. */
function instance(r: () => number, id: string): JointService {
  const thr = () => [[round2(0.5 + 2.5 * r()), round2(0.3 + 1.5 * r())]];
  return {
    id,
    gpusPerReplica: 1 + Math.floor(r() * 2),
    input: {
      buckets: { inputEdges: [1000], outputEdges: [100, 500] },
      workload: { bucketRates: [[round2(0.5 + 3 * r()), round2(0.2 + 2 * r())]] },
      gpus: [
        { id: 'shared', costPerHour: 1, maxThroughput: thr() },
        { id: 'other', costPerHour: round2(2 + 2 * r()), maxThroughput: thr() },
      ],
    },
  };
}

const R = 9; // replicas per type enumerated by brute force (rates ≤ 3.5 req/s, throughput ≥ 0.3 → never more)

/** Brute force: every service's every (shared, other) replica pair, fixed; then every combination under the cap. */
function bruteForce(services: JointService[], capGPUs: number): number {
  const bestByShared = services.map((s) => {
    const out: number[] = Array.from({ length: R + 1 }, () => Infinity);
    for (let a = 0; a <= R; a++) {
      for (let b = 0; b <= R; b++) {
        const fixed: SolveInput = { ...s.input, gpus: [{ ...s.input.gpus[0]!, minReplicas: a, maxReplicas: a }, { ...s.input.gpus[1]!, minReplicas: b, maxReplicas: b }] };
        const res = run(fixed);
        if (isSuccess(res)) out[a] = Math.min(out[a]!, res.costPerHour);
      }
    }
    return out;
  });
  let best = Infinity;
  const rec = (i: number, used: number, cost: number) => {
    if (i === services.length) {
      best = Math.min(best, cost);
      return;
    }
    for (let a = 0; a <= R; a++) {
      const g = a * services[i]!.gpusPerReplica;
      if (used + g > capGPUs || bestByShared[i]![a] === Infinity) continue;
      rec(i + 1, used + g, cost + bestByShared[i]![a]!);
    }
  };
  rec(0, 0, 0);
  return best;
}

describe('solveJoint: services sharing a capped pool', () => {
  it('matches brute force on 12 seeded small cases, respects the cap, and the cap binds in most', async () => {
    let binding = 0;
    let compared = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const r = rng(seed);
      const services = [instance(r, 'a'), instance(r, 'b'), ...(seed % 3 === 0 ? [instance(r, 'c')] : [])];
      const independent = services.map((s) => {
        const res = run(s.input);
        if (!isSuccess(res)) throw new Error('independent solve failed');
        return (res.allocation.find((a) => a.id === 'shared')?.replicas ?? 0) * s.gpusPerReplica;
      });
      const cap = Math.max(0, Math.floor(independent.reduce((a, b) => a + b, 0) * 0.6));
      const joint = await solveJoint('shared', cap, services, run);
      const shared = await sharePool('shared', cap, services, run);
      const brute = bruteForce(services, cap);
      if (brute === Infinity) {
        expect(joint.ok, `seed ${seed}`).toBe(false);
        if (shared.ok) expect(shared.exhausted.length, `seed ${seed}`).toBeGreaterThan(0);
        continue;
      }
      if (!joint.ok) throw new Error(`seed ${seed}: joint failed but brute force found ${brute}`);
      expect(joint.costPerHour, `seed ${seed}`).toBeCloseTo(brute, 6);
      // Everyone fits: priority admission admits all, and the split is the same optimum.
      if (!shared.ok) throw new Error(`seed ${seed}: sharePool failed`);
      expect(shared.exhausted).toEqual([]);
      expect(shared.costPerHour, `seed ${seed}`).toBeCloseTo(brute, 6);
      compared++;
      expect(joint.poolGPUs).toBeLessThanOrEqual(cap);
      const sum = independent.reduce((a, b) => a + b, 0);
      if (sum > cap) binding++;
    }
    expect(compared).toBeGreaterThanOrEqual(10); // most cases are feasible under the cap, not trivially infeasible
    expect(binding).toBe(compared); // and in each of them the independent optima overflow the cap
  });

  it('an uncapped budget gives each service its independent optimum', async () => {
    const r = rng(99);
    const services = [instance(r, 'a'), instance(r, 'b')];
    const joint = await solveJoint('shared', 100, services, run);
    if (!joint.ok) throw new Error('joint failed');
    const independent = services.map((s) => {
      const res = run(s.input);
      return isSuccess(res) ? res.costPerHour : NaN;
    });
    expect(joint.costPerHour).toBeCloseTo(independent[0]! + independent[1]!, 6);
  });

  it('CapacityExhausted when even the best split cannot serve everyone', async () => {
    const s: JointService = {
      id: 'only-shared',
      gpusPerReplica: 1,
      input: { buckets: { inputEdges: [1000], outputEdges: [500] }, workload: { bucketRates: [[4]] }, gpus: [{ id: 'shared', costPerHour: 1, maxThroughput: [[1]] }] },
    };
    const joint = await solveJoint('shared', 6, [s, { ...s, id: 'two' }], run);
    expect(joint).toMatchObject({ ok: false, reason: 'CapacityExhausted' });
    if (!joint.ok) expect(joint.message).toBe('services sharing pool shared cannot all be served within 6 GPUs (only-shared needs ≥ 4, two needs ≥ 4)');
  });

  it('priority breaks an equal-cost contention in favour of the higher priority', async () => {
    // Two identical services, a pool for one of them: the same total cost either way.
    const s = (id: string, priority: number): JointService => ({
      id,
      priority,
      gpusPerReplica: 1,
      input: {
        buckets: { inputEdges: [1000], outputEdges: [500] },
        workload: { bucketRates: [[1]] },
        gpus: [
          { id: 'shared', costPerHour: 1, maxThroughput: [[1]] },
          { id: 'other', costPerHour: 3, maxThroughput: [[1]] },
        ],
      },
    });
    for (const [pa, pb, winner] of [[0, 5, 'b'], [5, 0, 'a']] as const) {
      const joint = await solveJoint('shared', 1, [s('a', pa), s('b', pb)], run);
      if (!joint.ok) throw new Error('joint failed');
      expect(joint.costPerHour).toBe(4);
      const onShared = joint.choices.filter((c) => (c.result.allocation.find((x) => x.id === 'shared')?.replicas ?? 0) > 0).map((c) => c.id);
      expect(onShared).toEqual([winner]);
    }
  });

  it('sharePool: when the cap cannot carry everyone, higher priorities are admitted first; the rest is exhausted with its need', async () => {
    // Each service can only use the shared pool (1 req/s per replica): 4 + 3 + 2 GPUs needed, 6 available.
    const only = (id: string, rate: number, priority: number): JointService => ({
      id,
      priority,
      gpusPerReplica: 1,
      input: { buckets: { inputEdges: [1000], outputEdges: [500] }, workload: { bucketRates: [[rate]] }, gpus: [{ id: 'shared', costPerHour: 1, maxThroughput: [[1]] }] },
    });
    const r = await sharePool('shared', 6, [only('low', 4, 0), only('mid', 3, 5), only('top', 2, 9)], run);
    if (!r.ok) throw new Error(r.message);
    expect(r.admitted.map((c) => c.id)).toEqual(['top', 'mid']);
    expect(r.admitted.map((c) => c.result.allocation[0]!.replicas)).toEqual([2, 3]);
    expect(r.exhausted).toEqual([{ id: 'low', needGPUs: 4 }]);
    expect(r.poolGPUs).toBeLessThanOrEqual(6);
    // Ties in priority go by id; a lower priority that still fits after a higher one is exhausted is admitted.
    const r2 = await sharePool('shared', 6, [only('b', 4, 0), only('a', 5, 1), only('c', 1, 0)], run);
    if (!r2.ok) throw new Error(r2.message);
    expect(r2.admitted.map((c) => c.id)).toEqual(['a', 'c']);
    expect(r2.exhausted).toEqual([{ id: 'b', needGPUs: 4 }]);
    // Reserved GPUs (held by sharers that are not re-planned) come off the budget.
    const r3 = await sharePool('shared', 6, [only('top', 2, 9), only('mid', 3, 5)], run, 2);
    if (!r3.ok) throw new Error(r3.message);
    expect(r3.admitted.map((c) => c.id)).toEqual(['top']);
    expect(r3.exhausted).toEqual([{ id: 'mid', needGPUs: 3 }]);
  });

  it('sharePool: a solver timeout is reported, never read as infeasible', async () => {
    const s = instance(rng(5), 'a');
    const r = await sharePool('shared', 4, [s], () => ({ status: 'error', reason: 'Timeout', message: 'solve exceeded its 10000 ms deadline', baselines: [], stats: { engine: 'highs', mode: 'fractional', status: 'error', ms: 10_000, variables: 0, constraints: 0 } }));
    expect(r).toEqual({ ok: false, reason: 'Timeout', message: 'solve exceeded its 10000 ms deadline' });
  });
});
