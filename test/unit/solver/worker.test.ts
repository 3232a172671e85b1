import { afterAll, describe, expect, it } from 'vitest';
import { isSuccess, SolverWorker, type SolveInput } from '../../../src/solver/index.js';

const workers: SolverWorker[] = [];
afterAll(async () => { await Promise.all(workers.map((w) => w.close())); });

const small: SolveInput = {
  buckets: { inputEdges: [1000], outputEdges: [500] },
  workload: { totalRate: 4.3, fractions: [[1]] },
  gpus: [
    { id: 'A100', costPerHour: 3.67, maxThroughput: [[2.0]] },
    { id: 'A10G', costPerHour: 1.01, maxThroughput: [[0.37]] },
  ],
};

/** A large sliced instance: far too much work for a 1 ms deadline. */
function large(): SolveInput {
  let seed = 1;
  const rnd = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const nIn = 20, nOut = 10;
  return {
    buckets: { inputEdges: Array.from({ length: nIn }, (_, i) => 100 * (i + 1)), outputEdges: Array.from({ length: nOut }, (_, j) => 50 * (j + 1)) },
    workload: { totalRate: 64, fractions: Array.from({ length: nIn }, () => Array.from({ length: nOut }, () => rnd())) },
    gpus: Array.from({ length: 16 }, (_, g) => ({
      id: `g${g}`, costPerHour: 0.5 + rnd() * 7,
      maxThroughput: Array.from({ length: nIn }, () => Array.from({ length: nOut }, () => 0.1 + rnd() * 10)),
    })),
    mode: 'sliced', sliceFactor: 16,
  };
}

describe('SolverWorker', () => {
  it('solves in a worker thread and returns the same answer as in-process', async () => {
    const w = new SolverWorker({ deadlineMs: 30_000 });
    workers.push(w);
    const r = await w.solve(small);
    expect(isSuccess(r) && r.costPerHour).toBeCloseTo(8.35, 9);
  });

  it('keeps the event loop free while solving', async () => {
    const w = new SolverWorker({ deadlineMs: 60_000 });
    workers.push(w);
    let ticks = 0;
    let done = false;
    const spin = (): void => { if (!done) { ticks++; setImmediate(spin); } };
    setImmediate(spin);
    const r = await w.solve({ ...large(), timeLimitMs: 2_000 });
    done = true;
    expect(['optimal', 'feasible-with-gap']).toContain(r.status);
    expect(ticks).toBeGreaterThan(10);
  });

  it('a solve past its deadline returns a typed Timeout, and the worker recovers', async () => {
    const w = new SolverWorker();
    workers.push(w);
    const r = await w.solve(large(), 1);
    expect(r.status).toBe('error');
    if (isSuccess(r)) throw new Error('unreachable');
    expect(r.reason).toBe('Timeout');
    const again = await w.solve(small, 30_000);
    expect(isSuccess(again) && again.costPerHour).toBeCloseTo(8.35, 9);
  });

  it('after close, solves fail fast with a typed error', async () => {
    const w = new SolverWorker();
    await w.close();
    const r = await w.solve(small);
    expect(r.status).toBe('error');
  });
});
