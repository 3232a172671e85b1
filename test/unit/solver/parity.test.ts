// Parity of our solver's `sliced` mode with an independent implementation of the paper's binary-slice ILP
// (PuLP + CBC, test/reference/melange_pulp.py) on seeded random instances. The reference is required: if
// python3-pulp / coinor-cbc are missing this test fails and says how to install them.

import { beforeAll, describe, expect, it } from 'vitest';
import { loadHighsEngine } from '../../../src/solver/highs-engine.js';
import { solve } from '../../../src/solver/solve.js';
import { isSuccess, type SolveInput, type SolveResult } from '../../../src/solver/types.js';
import {
  WORKED_EXAMPLE,
  checkAllocation,
  costsAgree,
  randomInstance,
  runReference,
  type RandomInstance,
  type ReferenceResult,
} from '../../reference/instances.js';

const COUNT = 120;
/** Every 12th instance has a bucket with traffic that no type can serve. */
const instances: RandomInstance[] = Array.from({ length: COUNT }, (_, k) =>
  randomInstance(20240422 + k, { unservable: k % 12 === 5 }),
);

let reference: ReferenceResult[] = [];
let ours: SolveResult[] = [];
let oursFractional: SolveResult[] = [];
let referenceError: unknown;

const describeResult = (r: SolveResult): string =>
  isSuccess(r) ? `${r.status} $${r.costPerHour}` : `${r.status} (${r.reason}: ${r.message})`;

describe('sliced mode agrees with the PuLP + CBC binary-slice reference', () => {
  beforeAll(async () => {
    try {
      // One python process for the whole batch, worked example last.
      reference = runReference([...instances.map((i) => i.input), WORKED_EXAMPLE]);
    } catch (err) {
      referenceError = err;
    }
    const engine = await loadHighsEngine();
    // This test is about answers, not speed (bench/solver.bench.ts measures that): a generous time limit keeps
    // a loaded CI machine from turning a proof into 'feasible-with-gap'.
    const generous = (input: SolveInput): SolveInput => ({ ...input, timeLimitMs: 120_000 });
    ours = instances.map((i) => solve(generous(i.input), engine));
    oursFractional = instances.map((i) => solve(generous({ ...i.input, mode: 'fractional' }), engine));
    ours.push(solve(generous(WORKED_EXAMPLE), engine));
  }, 300_000);

  it('has the reference solver (python3-pulp + coinor-cbc)', () => {
    if (referenceError) {
      throw new Error(`parity reference unavailable: ${referenceError instanceof Error ? referenceError.message : String(referenceError)}`);
    }
    expect(reference).toHaveLength(COUNT + 1);
  });

  it('covers the intended space of instances', () => {
    const sizes = new Set(instances.map((i) => `${i.input.buckets.inputEdges.length}x${i.input.buckets.outputEdges.length}`));
    const slices = new Set(instances.map((i) => i.input.sliceFactor));
    const types = new Set(instances.map((i) => i.input.gpus.length));
    expect(instances.length).toBeGreaterThanOrEqual(100);
    expect(sizes.size).toBeGreaterThan(20);
    expect(sizes.has('10x6')).toBe(true);
    expect([...slices].sort()).toEqual([1, 4, 8]);
    expect([...types].sort()).toEqual([2, 3, 4, 5, 6]);
    expect(instances.filter((i) => i.unservable).length).toBeGreaterThanOrEqual(5);
  });

  it('reproduces the paper worked example on both sides ($6.70/h at S = 1)', () => {
    expect(referenceError).toBeUndefined();
    const ref = reference[COUNT];
    const our = ours[COUNT];
    expect(ref?.status).toBe('optimal');
    expect(ref?.cost).toBeCloseTo(6.7, 9);
    expect(ref?.replicas).toEqual({ A10G: 3, A100: 1 });
    expect(our && isSuccess(our) ? our.costPerHour : our).toBeCloseTo(6.7, 9);
  });

  it('agrees on feasibility, and on the optimal cost of every feasible instance', () => {
    expect(referenceError).toBeUndefined();
    const mismatches: string[] = [];
    let feasible = 0;
    let infeasible = 0;
    instances.forEach((inst, k) => {
      const ref = reference[k] as ReferenceResult;
      const our = ours[k] as SolveResult;
      if (ref.status !== 'optimal' && ref.status !== 'infeasible') {
        mismatches.push(`${inst.name}: reference did not finish (${ref.status}: ${ref.message ?? ''})`);
        return;
      }
      if (ref.status === 'infeasible') {
        infeasible++;
        if (our.status !== 'infeasible') mismatches.push(`${inst.name}: reference infeasible, ours ${describeResult(our)}`);
        else if (inst.unservable && our.reason !== 'BucketUnservable') mismatches.push(`${inst.name}: infeasible but reason ${our.reason}`);
        return;
      }
      feasible++;
      if (inst.unservable) mismatches.push(`${inst.name}: has an unservable bucket but the reference found a solution`);
      if (our.status !== 'optimal') {
        mismatches.push(`${inst.name}: reference optimal $${ref.cost}, ours ${describeResult(our)}`);
        return;
      }
      if (!costsAgree(our.costPerHour, ref.cost as number)) {
        const ourReplicas = Object.fromEntries(our.allocation.map((a) => [a.id, a.replicas]));
        mismatches.push(
          `${inst.name}: cost ours $${our.costPerHour} ${JSON.stringify(ourReplicas)} vs reference $${ref.cost} ${JSON.stringify(ref.replicas)}`,
        );
      }
    });
    expect(mismatches).toEqual([]);
    // Most instances are feasible, and the infeasible ones are not only the planted ones.
    expect(feasible).toBeGreaterThanOrEqual(0.8 * COUNT);
    expect(infeasible).toBeGreaterThanOrEqual(instances.filter((i) => i.unservable).length);
  });

  it('returns allocations that really carry the traffic (checked from the instance, not the solver)', () => {
    const problems: string[] = [];
    instances.forEach((inst, k) => {
      const our = ours[k] as SolveResult;
      if (isSuccess(our)) for (const p of checkAllocation(inst.input, our)) problems.push(`${inst.name}: ${p}`);
    });
    expect(problems).toEqual([]);
  });

  it('fractional mode is sound and never dearer than the sliced optimum', () => {
    const problems: string[] = [];
    let cheaper = 0;
    instances.forEach((inst, k) => {
      const frac = oursFractional[k] as SolveResult;
      const sliced = ours[k] as SolveResult;
      if (isSuccess(sliced) !== isSuccess(frac)) {
        problems.push(`${inst.name}: sliced ${describeResult(sliced)} vs fractional ${describeResult(frac)}`);
        return;
      }
      if (!isSuccess(frac) || !isSuccess(sliced)) return;
      const input: SolveInput = { ...inst.input, mode: 'fractional' };
      for (const p of checkAllocation(input, frac)) problems.push(`${inst.name} (fractional): ${p}`);
      if (frac.status === 'optimal' && frac.costPerHour > sliced.costPerHour + 1e-6) {
        problems.push(`${inst.name}: fractional $${frac.costPerHour} > sliced $${sliced.costPerHour}`);
      }
      if (frac.costPerHour < sliced.costPerHour - 1e-6) cheaper++;
    });
    expect(problems).toEqual([]);
    // The instances are rich enough that slicing matters (otherwise the parity above would not tell the
    // sliced model from the fractional one).
    expect(cheaper).toBeGreaterThanOrEqual(5);
  });
});
