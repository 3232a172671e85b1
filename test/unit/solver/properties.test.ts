import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { isSuccess, loadHighsEngine, solve, type MilpEngine, type SolveInput, type SolveSuccess } from '../../../src/solver/index.js';

let engine: MilpEngine;
beforeAll(async () => { engine = await loadHighsEngine(); });

const EPS = 1e-6;

/** Small random instances: up to 4×3 buckets, 2–4 types, some cells unservable, every bucket servable by someone. */
const instanceArb = fc.record({ nIn: fc.integer({ min: 1, max: 4 }), nOut: fc.integer({ min: 1, max: 3 }), nGpu: fc.integer({ min: 2, max: 4 }) })
  .chain(({ nIn, nOut, nGpu }) => fc.record({
    fractions: fc.array(fc.array(fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 1, noNaN: true })), { minLength: nOut, maxLength: nOut }), { minLength: nIn, maxLength: nIn }),
    rate: fc.double({ min: 0.2, max: 40, noNaN: true }),
    gpus: fc.array(fc.record({
      cost: fc.double({ min: 0.5, max: 8, noNaN: true }),
      tput: fc.array(fc.array(fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 30, noNaN: true })), { minLength: nOut, maxLength: nOut }), { minLength: nIn, maxLength: nIn }),
    }), { minLength: nGpu, maxLength: nGpu }),
  }).map(({ fractions, rate, gpus }): SolveInput => {
    // Guarantee one type serves every bucket so that feasibility is the common case.
    const fixed = gpus.map((g, i) => ({
      id: `g${i}`, costPerHour: g.cost,
      maxThroughput: g.tput.map((row) => row.map((t) => (i === 0 && t === 0 ? 0.5 : t))),
    }));
    const anyTraffic = fractions.some((r) => r.some((f) => f > 0));
    return {
      buckets: { inputEdges: fractions.map((_, i) => 100 * (i + 1)), outputEdges: fractions[0]!.map((_, j) => 50 * (j + 1)) },
      workload: { totalRate: rate, fractions: anyTraffic ? fractions : fractions.map((r) => r.map(() => 1)) },
      gpus: fixed,
    };
  }));

const ok = (input: SolveInput): SolveSuccess => {
  const r = solve(input, engine);
  if (!isSuccess(r)) throw new Error(`unexpected ${r.status} ${r.message}`);
  expect(r.status).toBe('optimal');
  return r;
};

/** Recomputes every type's load from the returned split and the input alone. */
function assertSplitMeetsCapacity(input: SolveInput, r: SolveSuccess): void {
  const byId = new Map(input.gpus.map((g) => [g.id, g]));
  const load = new Map<string, number>();
  for (const s of r.split) {
    const sum = Object.values(s.weights).reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - 1)).toBeLessThan(EPS);
    for (const [id, w] of Object.entries(s.weights)) {
      const t = byId.get(id)!.maxThroughput[s.input]![s.output]!;
      expect(t).toBeGreaterThan(0);
      load.set(id, (load.get(id) ?? 0) + (s.rate * w) / t);
    }
  }
  for (const a of r.allocation) expect(load.get(a.id) ?? 0).toBeLessThanOrEqual(a.replicas * (1 + EPS) + EPS);
}

describe('solver properties (fast-check)', () => {
  it('cost ≤ every feasible single-type baseline, and the split meets every capacity constraint', () => {
    fc.assert(fc.property(instanceArb, fc.constantFrom<SolveInput['mode']>('fractional', 'sliced'), (input, mode) => {
      const r = ok({ ...input, mode, sliceFactor: 4 });
      for (const b of r.baselines) if (b.feasible) expect(r.costPerHour).toBeLessThanOrEqual(b.costPerHour + EPS);
      assertSplitMeetsCapacity(input, r);
    }), { numRuns: 120, seed: 42 });
  });

  it('cost is non-decreasing in the request rate', () => {
    fc.assert(fc.property(instanceArb, fc.double({ min: 1, max: 3, noNaN: true }), (input, factor) => {
      const w = input.workload as { totalRate: number; fractions: number[][] };
      const low = ok(input);
      const high = ok({ ...input, workload: { ...w, totalRate: w.totalRate * factor } });
      expect(high.costPerHour).toBeGreaterThanOrEqual(low.costPerHour - EPS);
    }), { numRuns: 80, seed: 7 });
  });

  it('if S divides S′ then cost(S′) ≤ cost(S), and fractional ≤ every S', () => {
    fc.assert(fc.property(instanceArb, fc.constantFrom(1, 2, 4), fc.constantFrom(2, 4), (input, s, k) => {
      const coarse = ok({ ...input, mode: 'sliced', sliceFactor: s });
      const fine = ok({ ...input, mode: 'sliced', sliceFactor: s * k });
      const frac = ok({ ...input, mode: 'fractional' });
      expect(fine.costPerHour).toBeLessThanOrEqual(coarse.costPerHour + EPS);
      expect(frac.costPerHour).toBeLessThanOrEqual(fine.costPerHour + EPS);
      // Sliced shares are multiples of 1/S.
      for (const sp of fine.split) for (const w of Object.values(sp.weights)) {
        expect(Math.abs(w * s * k - Math.round(w * s * k))).toBeLessThan(1e-9);
      }
    }), { numRuns: 60, seed: 3 });
  });

  it('a bucket with traffic that no type can serve gives the typed infeasible result', () => {
    fc.assert(fc.property(instanceArb, fc.nat(), (input, pick) => {
      const w = input.workload as { totalRate: number; fractions: number[][] };
      const cells = w.fractions.flatMap((row, i) => row.map((f, j) => ({ i, j, f }))).filter((c) => c.f > 0);
      fc.pre(cells.length > 0 && w.totalRate > 0);
      const c = cells[pick % cells.length]!;
      const gpus = input.gpus.map((g) => ({ ...g, maxThroughput: g.maxThroughput.map((row, i) => row.map((t, j) => (i === c.i && j === c.j ? 0 : t))) }));
      const r = solve({ ...input, gpus }, engine);
      if (isSuccess(r)) throw new Error('expected infeasible');
      expect(r.reason).toBe('BucketUnservable');
      expect(r.bucket).toBeDefined();
      // The named bucket really is unservable and carries traffic.
      expect(w.fractions[r.bucket!.input]![r.bucket!.output]).toBeGreaterThan(0);
      for (const g of gpus) expect(g.maxThroughput[r.bucket!.input]![r.bucket!.output]).toBe(0);
    }), { numRuns: 60, seed: 11 });
  });

  it('caps below the load give CapacityExhausted, never a partial allocation', () => {
    fc.assert(fc.property(instanceArb, (input) => {
      // One replica per type carries at most 4 × 30 req/s; the rate below is at least 200 req/s.
      const w = input.workload as { totalRate: number; fractions: number[][] };
      const gpus = input.gpus.map((g) => ({ ...g, maxReplicas: 1 }));
      const r = solve({ ...input, gpus, workload: { ...w, totalRate: w.totalRate * 1000 } }, engine);
      if (isSuccess(r)) throw new Error('expected infeasible');
      expect(r.reason).toBe('CapacityExhausted');
      expect(r.gpu).toBe('g0');
      expect(r.message).toContain('g0 ≤ 1');
    }), { numRuns: 40, seed: 5 });
  });
});
