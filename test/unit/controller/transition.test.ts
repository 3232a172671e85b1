import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
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

describe('planTransition: stabilization window and bounded drain (injected clock)', () => {
  const policy = { stabilizationMs: 60_000, maxStep: 2, stepIntervalMs: 10_000 };
  const t0 = Date.parse('2026-11-28T10:00:00Z');

  it('holds surplus for the window after the target is ready, then removes at most maxStep per step interval', () => {
    // From 5×a to 1×b: b is ready.
    let obs = [dep('a', 5, 5), dep('b', 1, 1)];
    let p = planTransition({ a: 0, b: 1 }, obs, t0, policy, {});
    expect(p.replicas).toEqual({ a: 5, b: 1 });
    expect(p.draining).toEqual({ phase: 'stabilizing', until: t0 + 60_000 });
    expect(p.requeueAfterMs).toBe(60_000);
    expect(p.complete).toBe(false);

    p = planTransition({ a: 0, b: 1 }, obs, t0 + 59_999, policy, p.state);
    expect(p.replicas.a).toBe(5);
    expect(p.requeueAfterMs).toBe(1);

    p = planTransition({ a: 0, b: 1 }, obs, t0 + 60_000, policy, p.state);
    expect(p.replicas).toEqual({ a: 3, b: 1 });
    expect(p.holding).toEqual([{ pool: 'a', replicas: 3, target: 0 }]);
    expect(p.draining).toEqual({ phase: 'stepping', maxStep: 2 });
    expect(p.requeueAfterMs).toBe(10_000);

    // The step was applied; before the interval nothing more goes.
    obs = [dep('a', 3, 3), dep('b', 1, 1)];
    p = planTransition({ a: 0, b: 1 }, obs, t0 + 65_000, policy, p.state);
    expect(p.replicas.a).toBe(3);
    expect(p.requeueAfterMs).toBe(5_000);

    // After the interval, but the Deployment controller has not seen the step yet: wait for it.
    p = planTransition({ a: 0, b: 1 }, [dep('a', 3, 3, false), dep('b', 1, 1)], t0 + 70_000, policy, p.state);
    expect(p.replicas.a).toBe(3);
    expect(p.requeueAfterMs).toBe(2_000);

    p = planTransition({ a: 0, b: 1 }, obs, t0 + 71_000, policy, p.state);
    expect(p.replicas.a).toBe(1);
    obs = [dep('a', 1, 1), dep('b', 1, 1)];
    p = planTransition({ a: 0, b: 1 }, obs, t0 + 81_000, policy, p.state);
    expect(p.replicas).toEqual({ a: 0, b: 1 });
    expect(p.complete).toBe(true);
    expect(p.requeueAfterMs).toBeUndefined();
    expect(p.state).toEqual({});
  });

  it('a shortfall during the window restarts it', () => {
    let p = planTransition({ a: 0, b: 2 }, [dep('a', 4, 4), dep('b', 2, 2)], t0, policy, {});
    expect(p.state.readySince).toBe(t0);
    p = planTransition({ a: 0, b: 2 }, [dep('a', 4, 4), dep('b', 2, 1)], t0 + 30_000, policy, p.state);
    expect(p.state).toEqual({});
    expect(p.waitingFor).toEqual([{ pool: 'b', ready: 1, want: 2 }]);
    p = planTransition({ a: 0, b: 2 }, [dep('a', 4, 4), dep('b', 2, 2)], t0 + 40_000, policy, p.state);
    expect(p.draining).toEqual({ phase: 'stabilizing', until: t0 + 100_000 });
    expect(planTransition({ a: 0, b: 2 }, [dep('a', 4, 4), dep('b', 2, 2)], t0 + 99_000, policy, p.state).replicas.a).toBe(4);
  });

  it('a pure scale-down (same pool) also waits for the window, and never goes below the target', () => {
    const p = planTransition({ a: 2 }, [dep('a', 7, 7)], t0, policy, {});
    expect(p.replicas.a).toBe(7);
    const q = planTransition({ a: 2 }, [dep('a', 7, 7)], t0 + 60_000, { ...policy, maxStep: 100 }, p.state);
    expect(q.replicas.a).toBe(2);
    expect(q.complete).toBe(true);
  });

  it('scale-up is never delayed', () => {
    const p = planTransition({ a: 5, b: 1 }, [dep('a', 2, 2)], t0, policy, {});
    expect(p.replicas).toEqual({ a: 5, b: 1 });
    expect(p.requeueAfterMs).toBeUndefined();
  });
});

describe('planTransition: ready capacity never drops below the demand (property)', () => {
  // A small world: pools with a throughput per replica, Deployments whose pods become ready one by one, a
  // Deployment controller that removes not-ready pods before ready ones (as the ReplicaSet controller does),
  // a clock, and targets that change at any time (each carrying the demand). After every event the ready
  // capacity Σ ready × throughput must cover the demand; in the end the drain completes on the last target.
  const POOLS = ['a', 'b', 'c'] as const;
  type Pool = (typeof POOLS)[number];
  interface Dep {
    spec: number;
    ready: number;
    pending: number;
    observed: boolean;
  }
  const allocation = fc.record({ a: fc.integer({ min: 0, max: 6 }), b: fc.integer({ min: 0, max: 6 }), c: fc.integer({ min: 0, max: 6 }) });
  const event = fc.oneof(
    fc.record({ kind: fc.constant('reconcile' as const), dt: fc.integer({ min: 0, max: 40_000 }) }),
    fc.record({ kind: fc.constant('controller' as const) }),
    fc.record({ kind: fc.constant('podReady' as const), pool: fc.constantFrom(...POOLS) }),
    fc.record({ kind: fc.constant('retarget' as const), to: allocation }),
  );

  it('holds for any sequence of observations, re-plans and clock steps', () => {
    fc.assert(
      fc.property(
        fc.record({ a: fc.integer({ min: 1, max: 4 }), b: fc.integer({ min: 1, max: 4 }), c: fc.integer({ min: 1, max: 4 }) }),
        fc.integer({ min: 1, max: 12 }),
        allocation,
        fc.array(event, { maxLength: 60 }),
        fc.record({ stabilizationMs: fc.integer({ min: 0, max: 90_000 }), maxStep: fc.integer({ min: 1, max: 4 }), stepIntervalMs: fc.integer({ min: 0, max: 20_000 }) }),
        (thr, demand, start, events, policy) => {
          const capacityOf = (r: Record<Pool, number>) => POOLS.reduce((s, p) => s + r[p] * thr[p], 0);
          // Only allocations that carry the demand are ever planned; top one up with pool a if needed.
          const carrying = (r: Record<Pool, number>) => ({ ...r, a: r.a + Math.max(0, Math.ceil((demand - capacityOf(r)) / thr.a)) });
          let target = carrying(start);
          const deps = Object.fromEntries(POOLS.map((p) => [p, { spec: target[p], ready: target[p], pending: 0, observed: true }])) as Record<Pool, Dep>;
          let now = 0;
          let state = {};
          const readyCapacity = () => POOLS.reduce((s, p) => s + deps[p].ready * thr[p], 0);
          const observe = () => POOLS.filter((p) => deps[p].spec > 0 || deps[p].ready + deps[p].pending > 0).map((p) => dep(p, deps[p].spec, deps[p].ready, deps[p].observed));
          const reconcile = () => {
            const plan = planTransition(target, observe(), now, policy, state);
            state = plan.state;
            for (const p of POOLS) {
              const r = plan.replicas[p] ?? 0;
              if (r !== deps[p].spec) Object.assign(deps[p], { spec: r, observed: false });
            }
            return plan;
          };
          const controller = () => {
            for (const p of POOLS) {
              const d = deps[p];
              let extra = d.ready + d.pending - d.spec;
              const dropPending = Math.min(Math.max(0, extra), d.pending);
              d.pending -= dropPending;
              extra -= dropPending;
              if (extra > 0) d.ready -= extra;
              if (extra < 0) d.pending += -extra;
              d.observed = true;
            }
          };
          for (const e of events) {
            if (e.kind === 'reconcile') {
              now += e.dt;
              reconcile();
            } else if (e.kind === 'controller') controller();
            else if (e.kind === 'podReady') {
              if (deps[e.pool].pending > 0) Object.assign(deps[e.pool], { pending: deps[e.pool].pending - 1, ready: deps[e.pool].ready + 1 });
            } else target = carrying(e.to);
            expect(readyCapacity()).toBeGreaterThanOrEqual(demand);
          }
          // Liveness: with the world settling, the drain completes on the last target.
          for (let i = 0; i < 200; i++) {
            controller();
            for (const p of POOLS) Object.assign(deps[p], { ready: deps[p].ready + deps[p].pending, pending: 0 });
            expect(readyCapacity()).toBeGreaterThanOrEqual(demand);
            now += 30_000;
            if (reconcile().complete) break;
          }
          controller();
          expect(Object.fromEntries(POOLS.map((p) => [p, deps[p].spec]))).toEqual(target);
        },
      ),
      { numRuns: 400 },
    );
  });
});
