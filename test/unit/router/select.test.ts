import { describe, expect, it } from 'vitest';
import { leastLoaded, planAttempt, shouldRetry, type BackendView } from '../../../src/router/select.js';
import { normaliseWeights, smoothPick, type PoolWeights } from '../../../src/router/weights.js';

const b = (id: string, pool: string, inflight = 0, ejectedUntil = 0, pendingPrefillTokens = 0): BackendView => ({ id, pool, inflight, ejectedUntil, pendingPrefillTokens });

describe('leastLoaded', () => {
  it('picks the backend with the fewest in-flight requests', () => {
    const bs = [b('x', 'p', 3), b('y', 'p', 1), b('z', 'p', 2)];
    expect(leastLoaded(bs, { now: 0 })?.id).toBe('y');
  });
  it('prefers the backend with the fewest prompt tokens awaiting prefill, even with more requests in flight', () => {
    // x decodes 6 requests with nothing queued; y has one 10,000-token prompt still prefilling.
    const bs = [b('y', 'p', 1, 0, 10_000), b('x', 'p', 6, 0, 0), b('z', 'p', 2, 0, 40)];
    expect(leastLoaded(bs, { now: 0 })?.id).toBe('x');
    expect(leastLoaded(bs, { now: 0, exclude: new Set(['x']) })?.id).toBe('z');
  });
  it('between equal pending prefill, the fewest in flight; ties only when both are equal', () => {
    const bs = [b('x', 'p', 4, 0, 30), b('y', 'p', 2, 0, 30), b('z', 'p', 2, 0, 30), b('w', 'p', 0, 0, 31)];
    expect([0, 1, 2].map((t) => leastLoaded(bs, { now: 0, tieBreak: t })?.id)).toEqual(['y', 'z', 'y']);
  });
  it('an ejected backend stays a last resort however idle it is', () => {
    const bs = [b('x', 'p', 0, 100, 0), b('y', 'p', 9, 0, 9_000)];
    expect(leastLoaded(bs, { now: 50 })?.id).toBe('y');
  });
  it('rotates among equally loaded backends by the tie-break counter', () => {
    const bs = [b('x', 'p', 1), b('y', 'p', 1), b('z', 'p', 5)];
    expect([0, 1, 2, 3].map((t) => leastLoaded(bs, { now: 0, tieBreak: t })?.id)).toEqual(['x', 'y', 'x', 'y']);
  });
  it('skips excluded backends and avoids ejected ones while others remain', () => {
    const bs = [b('x', 'p', 0, 100), b('y', 'p', 9), b('z', 'p', 4)];
    expect(leastLoaded(bs, { now: 50 })?.id).toBe('z');
    expect(leastLoaded(bs, { now: 50, exclude: new Set(['z', 'y']) })?.id).toBe('x');
    expect(leastLoaded(bs, { now: 150 })?.id).toBe('x');
    expect(leastLoaded(bs, { now: 0, exclude: new Set(['x', 'y', 'z']) })).toBeUndefined();
  });
});

describe('planAttempt (pool by split, backend by load, retries)', () => {
  const backends = new Map([
    ['l4', [b('l4-1', 'l4', 2), b('l4-2', 'l4', 0)]],
    ['a100', [b('a100-1', 'a100', 0)]],
    ['h100', [b('h100-1', 'h100', 0)]],
  ]);
  const weights = normaliseWeights({ l4: 3, a100: 1 });
  const base = { weights, backends, tried: new Set<string>(), attempts: 0, maxAttempts: 3, now: 0 };

  it('first attempt: the weighted pick chooses the pool, then the least-loaded backend', () => {
    const state = new Map<string, number>();
    const pick = (w: PoolWeights, el: (p: string) => boolean) => smoothPick(state, w, el);
    const plans = Array.from({ length: 4 }, () => planAttempt({ ...base, pickPool: pick }));
    expect(plans.map((p) => (p.kind === 'try' ? p.pool : p.reason))).toEqual(['l4', 'a100', 'l4', 'l4']);
    expect(plans[0]).toMatchObject({ kind: 'try', backend: { id: 'l4-2' } });
  });
  it('never routes to a pool without weight for the bucket (h100 here)', () => {
    const plan = planAttempt({ ...base, backends: new Map([['h100', [b('h100-1', 'h100')]]]), pickPool: (w, el) => smoothPick(new Map(), w, el) });
    expect(plan).toEqual({ kind: 'give-up', reason: 'no-backend' });
  });
  it('a pool whose backends are all gone is skipped by the pick', () => {
    const bs = new Map([['l4', []], ['a100', [b('a100-1', 'a100')]]]);
    const plan = planAttempt({ ...base, backends: bs, pickPool: (w, el) => smoothPick(new Map(), w, el) });
    expect(plan).toMatchObject({ kind: 'try', pool: 'a100' });
  });
  it('prefers pools with a healthy backend over pools with only ejected ones', () => {
    const bs = new Map([['l4', [b('l4-1', 'l4', 0, 1000)]], ['a100', [b('a100-1', 'a100')]]]);
    const plan = planAttempt({ ...base, backends: bs, now: 10, pickPool: (w, el) => smoothPick(new Map(), w, el) });
    expect(plan).toMatchObject({ kind: 'try', pool: 'a100' });
    // ...but uses an ejected one rather than failing
    const only = new Map([['l4', [b('l4-1', 'l4', 0, 1000)]]]);
    expect(planAttempt({ ...base, backends: only, now: 10, pickPool: (w, el) => smoothPick(new Map(), w, el) })).toMatchObject({ kind: 'try', pool: 'l4' });
  });
  const noPick = () => { throw new Error('the weighted pick is for the first attempt only'); };
  it('retry: same pool first (another backend), then the heaviest other weighted pool', () => {
    const r1 = planAttempt({ ...base, tried: new Set(['l4-2']), previousPool: 'l4', attempts: 1, pickPool: noPick });
    expect(r1).toMatchObject({ kind: 'try', pool: 'l4', backend: { id: 'l4-1' } });
    const r2 = planAttempt({ ...base, tried: new Set(['l4-2', 'l4-1']), previousPool: 'l4', attempts: 2, pickPool: noPick });
    expect(r2).toMatchObject({ kind: 'try', pool: 'a100', backend: { id: 'a100-1' } });
  });
  it('retry: gives up when attempts are exhausted or every weighted backend was tried', () => {
    expect(planAttempt({ ...base, tried: new Set(['l4-2']), previousPool: 'l4', attempts: 3, pickPool: noPick })).toEqual({ kind: 'give-up', reason: 'attempts-exhausted' });
    expect(planAttempt({ ...base, maxAttempts: 9, tried: new Set(['l4-1', 'l4-2', 'a100-1']), previousPool: 'a100', attempts: 3, pickPool: noPick })).toEqual({ kind: 'give-up', reason: 'all-failed' });
  });
  it('retry order among other pools: by weight, then name', () => {
    const w = normaliseWeights({ a: 1, b: 2, c: 2 });
    const bs = new Map([['a', [b('a1', 'a')]], ['b', [b('b1', 'b')]], ['c', [b('c1', 'c')]], ['z', [b('z1', 'z')]]]);
    const plan = planAttempt({ ...base, weights: w, backends: bs, tried: new Set(['a1']), previousPool: 'a', attempts: 1, pickPool: noPick });
    expect(plan).toMatchObject({ kind: 'try', pool: 'b' });
  });
});

describe('shouldRetry', () => {
  const ok = { phase: 'before-response' as const, clientBytesSent: false, clientGone: false, attempts: 1, maxAttempts: 3 };
  it('retries a connection failure before anything reached the client', () => {
    expect(shouldRetry(ok)).toBe(true);
  });
  it('never retries once the response started, bytes went to the client, the client left, or attempts ran out', () => {
    expect(shouldRetry({ ...ok, phase: 'after-response' })).toBe(false);
    expect(shouldRetry({ ...ok, clientBytesSent: true })).toBe(false);
    expect(shouldRetry({ ...ok, clientGone: true })).toBe(false);
    expect(shouldRetry({ ...ok, attempts: 3 })).toBe(false);
  });
});
