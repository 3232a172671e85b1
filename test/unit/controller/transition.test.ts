import { describe, expect, it } from 'vitest';
import { planTransition, type PoolObservation } from '../../../src/controller/transition.js';

const dep = (pool: string, replicas: number, readyReplicas: number, observed = true): PoolObservation => ({ pool, exists: true, replicas, readyReplicas, observed });

describe('planTransition (make before break)', () => {
  it('creates what is missing; nothing is complete until it is ready', () => {
    const p = planTransition({ a: 2, b: 0 }, []);
    expect(p.replicas).toEqual({ a: 2, b: 0 });
    expect(p.waitingFor).toEqual([{ pool: 'a', ready: 0, want: 2 }]);
    expect(p.complete).toBe(false);
  });

  it('scales new types up at once but keeps old ones until the new capacity is ready', () => {
    // From 3×a to 1×a + 2×b.
    const p = planTransition({ a: 1, b: 2 }, [dep('a', 3, 3)]);
    expect(p.replicas).toEqual({ a: 3, b: 2 });
    expect(p.holding).toEqual([{ pool: 'a', replicas: 3, target: 1 }]);
    expect(p.complete).toBe(false);
  });

  it('keeps holding while the new Deployment exists but is not ready, and releases once it is', () => {
    expect(planTransition({ a: 1, b: 2 }, [dep('a', 3, 3), dep('b', 2, 1)]).replicas).toEqual({ a: 3, b: 2 });
    const done = planTransition({ a: 1, b: 2 }, [dep('a', 3, 3), dep('b', 2, 2)]);
    expect(done.replicas).toEqual({ a: 1, b: 2 });
    expect(done.holding).toEqual([]);
    expect(done.complete).toBe(true);
  });

  it('does not trust readiness the Deployment controller reported for an older spec', () => {
    expect(planTransition({ a: 0, b: 2 }, [dep('a', 3, 3), dep('b', 2, 2, false)]).replicas).toEqual({ a: 3, b: 2 });
  });

  it('never scales anything below its current size while any target pool is short (even the same pool)', () => {
    // A crash in b while a is being reduced: a stays.
    expect(planTransition({ a: 2, b: 2 }, [dep('a', 3, 3), dep('b', 2, 1)]).replicas).toEqual({ a: 3, b: 2 });
    // Nothing short: a pure scale-down goes through immediately.
    expect(planTransition({ a: 2, b: 2 }, [dep('a', 3, 3), dep('b', 2, 2)]).replicas).toEqual({ a: 2, b: 2 });
  });

  it('winds down Deployments of pools that left the target only after the target is ready', () => {
    expect(planTransition({ b: 2 }, [dep('gone', 4, 4), dep('b', 2, 0)]).replicas).toEqual({ b: 2, gone: 4 });
    expect(planTransition({ b: 2 }, [dep('gone', 4, 4), dep('b', 2, 2)]).replicas).toEqual({ b: 2, gone: 0 });
  });

  it('is complete when the target is met and nothing is held (a target of 0 needs no readiness)', () => {
    expect(planTransition({ a: 2, b: 0 }, [dep('a', 2, 2)]).complete).toBe(true);
  });
});
