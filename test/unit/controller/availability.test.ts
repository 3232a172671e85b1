import { describe, expect, it } from 'vitest';
import { decideAvailability, unschedulableMessage, type AvailabilityState } from '../../../src/controller/availability.js';
import type { ObservedDeployment } from '../../../src/controller/view.js';

const T0 = Date.parse('2026-11-28T10:00:00Z');
const MIN = 60_000;
const policy = { provisioningTimeoutMs: 10 * MIN, retryMs: 30 * MIN };
const dep = (pool: string, replicas: number, ready: number, extra: Partial<ObservedDeployment> = {}): ObservedDeployment => ({
  name: `chat-${pool}`,
  pool,
  exists: true,
  replicas,
  readyReplicas: ready,
  observed: true,
  appliedHash: 'h1',
  ...extra,
});
const exceeded = { status: 'False', reason: 'ProgressDeadlineExceeded', since: '2026-11-28T09:59:00.000Z' };

describe('decideAvailability', () => {
  it('caps a pool whose Deployment reports ProgressDeadlineExceeded at its ready replicas', () => {
    const d = decideAvailability([dep('a', 3, 1, { progressing: exceeded }), dep('b', 2, 2)], {}, T0, policy);
    expect(d.caps).toEqual({ a: 1 });
    expect(d.added).toMatchObject([{ pool: 'a', ready: 1, wanted: 3, since: T0, by: 'deployment' }]);
    expect(d.requeueAfterMs).toBe(30 * MIN); // the retry
    expect(unschedulableMessage(d.capped)).toContain('a (Deployment chat-a) 1/3 ready since 2026-11-28T10:00:00Z, capped at 1 until it progresses or 2026-11-28T10:30:00Z');
  });

  it('does not cap a healthy pool, one the Deployment controller has not observed, or a ready one with a stale condition', () => {
    expect(decideAvailability([dep('a', 3, 3, { progressing: exceeded })], {}, T0, policy).caps).toEqual({});
    expect(decideAvailability([dep('a', 3, 0, { progressing: exceeded, observed: false })], {}, T0, policy).caps).toEqual({});
    expect(decideAvailability([dep('a', 3, 0, { progressing: { status: 'True', reason: 'ReplicaSetUpdated' } })], {}, T0, policy).caps).toEqual({});
  });

  it("the operator's own deadline: short without progress for provisioningTimeout (a scale-up the Deployment controller does not time)", () => {
    const p = { status: 'True', reason: 'NewReplicaSetAvailable' };
    let d = decideAvailability([dep('a', 4, 1, { progressing: p })], {}, T0, policy);
    expect(d.caps).toEqual({});
    expect(d.requeueAfterMs).toBe(10 * MIN);
    d = decideAvailability([dep('a', 4, 2, { progressing: p })], d.state, T0 + 6 * MIN, policy); // progress restarts the clock
    expect(d.caps).toEqual({});
    d = decideAvailability([dep('a', 4, 2, { progressing: p })], d.state, T0 + 16 * MIN - 1, policy);
    expect(d.caps).toEqual({});
    d = decideAvailability([dep('a', 4, 2, { progressing: p })], d.state, T0 + 16 * MIN, policy);
    expect(d.caps).toEqual({ a: 2 });
    expect(d.added[0]?.by).toBe('operator');
    // During a rollout the Deployment controller keeps the deadline: no race with it.
    const rolling = { status: 'True', reason: 'ReplicaSetUpdated' };
    let r = decideAvailability([dep('a', 4, 1, { progressing: rolling })], {}, T0, policy);
    r = decideAvailability([dep('a', 4, 1, { progressing: rolling })], r.state, T0 + 20 * MIN, policy);
    expect(r.caps).toEqual({});
  });

  it('keeps the cap while the pool drains to it (no oscillation), lifts it on progress, template change or the retry window', () => {
    const s0 = decideAvailability([dep('a', 3, 0, { progressing: exceeded })], {}, T0, policy).state;
    // Drained to 0 replicas: the Deployment is "complete" (Progressing=True), the cap stays.
    const drained = decideAvailability([dep('a', 0, 0, { progressing: { status: 'True', reason: 'NewReplicaSetAvailable' } })], s0, T0 + 5 * MIN, policy);
    expect(drained.caps).toEqual({ a: 0 });
    expect(drained.lifted).toEqual([]);
    // More ready replicas than the cap: nodes came back.
    const progressed = decideAvailability([dep('a', 3, 1)], s0, T0 + MIN, policy);
    expect(progressed.caps).toEqual({});
    expect(progressed.lifted.map((l) => l.why)).toEqual(['progressed']);
    // A new template (e.g. the pool's tolerations fixed).
    const changed = decideAvailability([dep('a', 3, 0, { appliedHash: 'h2' })], s0, T0 + MIN, policy);
    expect(changed.lifted.map((l) => l.why)).toEqual(['template-changed']);
    // The retry window, not a millisecond early.
    expect(decideAvailability([dep('a', 3, 0, { progressing: exceeded })], s0, T0 + 30 * MIN - 1, policy).caps).toEqual({ a: 0 });
    const retry = decideAvailability([dep('a', 3, 0, { progressing: exceeded })], s0, T0 + 30 * MIN, policy);
    expect(retry.caps).toEqual({});
    expect(retry.lifted.map((l) => l.why)).toEqual(['retry']);
    // The same stale condition does not cap it again; the operator's own deadline does if it stays stuck.
    const t1 = T0 + 30 * MIN;
    let d = decideAvailability([dep('a', 3, 0, { progressing: exceeded })], retry.state, t1 + MIN, policy);
    expect(d.caps).toEqual({});
    d = decideAvailability([dep('a', 3, 0, { progressing: exceeded })], d.state, t1 + 10 * MIN, policy);
    expect(d.caps).toEqual({ a: 0 });
    expect(d.added[0]).toMatchObject({ by: 'operator', since: t1 + 10 * MIN });
    // A fresh ProgressDeadlineExceeded (a new rollout that timed out) caps at once.
    const fresh = decideAvailability([dep('a', 3, 0, { progressing: { ...exceeded, since: '2026-11-28T10:40:00.000Z' } })], retry.state, t1 + MIN, policy);
    expect(fresh.caps).toEqual({ a: 0 });
  });

  it('a pool whose Deployment is gone loses its cap; other pools are independent', () => {
    const s: AvailabilityState = decideAvailability([dep('a', 3, 0, { progressing: exceeded }), dep('b', 2, 1, { progressing: exceeded })], {}, T0, policy).state;
    expect(Object.keys(s).sort()).toEqual(['a', 'b']);
    const d = decideAvailability([dep('b', 2, 1, { progressing: exceeded })], s, T0 + MIN, policy);
    expect(d.caps).toEqual({ b: 1 });
    expect(d.lifted.map((l) => [l.cap.pool, l.why])).toEqual([['a', 'gone']]);
  });
});
