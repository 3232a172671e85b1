import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, INITIAL_BACKOFF_STATE, mayObserve, nextRetryDelayMs, recordObservation } from '../../../src/workload/backoff.js';

describe('nextRetryDelayMs', () => {
  it('doubles from the initial delay up to the cap; 0 failures → no delay', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 1e9].map((n) => nextRetryDelayMs(n))).toEqual([
      0, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000, 300_000,
    ]);
  });

  it('jitter shortens the delay by at most the jitter share, deterministically from the random input', () => {
    const p = { ...DEFAULT_BACKOFF, jitter: 0.5 };
    expect(nextRetryDelayMs(2, p, 1)).toBe(10_000);
    expect(nextRetryDelayMs(2, p, 0)).toBe(5_000);
    expect(nextRetryDelayMs(2, p, 0.5)).toBe(7_500);
  });

  it('is monotone in the failure count and bounded (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 60_000 }), fc.integer({ min: 1, max: 3_600_000 }), (n, initial, max) => {
        const p = { initialMs: initial, maxMs: max, multiplier: 2, jitter: 0 };
        const a = nextRetryDelayMs(n, p);
        const b = nextRetryDelayMs(n + 1, p);
        expect(b).toBeGreaterThanOrEqual(a);
        expect(b).toBeLessThanOrEqual(Math.max(initial, max));
        expect(Number.isFinite(b)).toBe(true);
      }),
    );
  });
});

describe('recordObservation / mayObserve', () => {
  const t0 = new Date('2026-11-28T10:00:00Z');
  const at = (s: number) => new Date(t0.getTime() + s * 1000);

  it('counts consecutive failures, schedules the retry, and resets on success', () => {
    let st = recordObservation(INITIAL_BACKOFF_STATE, { ok: false, reason: 'QueryFailed' }, t0);
    expect(st).toEqual({ consecutiveFailures: 1, lastFailureAt: t0.toISOString(), lastReason: 'QueryFailed', retryAt: at(5).toISOString() });
    expect(mayObserve(st, at(4))).toBe(false);
    expect(mayObserve(st, at(5))).toBe(true);
    st = recordObservation(st, { ok: false, reason: 'NoData' }, at(5));
    expect(st.consecutiveFailures).toBe(2);
    expect(st.retryAt).toBe(at(15).toISOString());
    st = recordObservation(st, { ok: true }, at(15));
    expect(st).toEqual({ consecutiveFailures: 0, lastSuccessAt: at(15).toISOString(), lastFailureAt: at(5).toISOString() });
    expect(mayObserve(st, at(15))).toBe(true);
    st = recordObservation(st, { ok: false, reason: 'Stale' }, at(20));
    expect(st.consecutiveFailures).toBe(1);
    expect(st.lastSuccessAt).toBe(at(15).toISOString());
  });
});
