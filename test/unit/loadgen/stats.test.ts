import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { percentile, summarize } from '../../../src/loadgen/stats.js';

describe('percentile (linear interpolation, numpy/R type 7)', () => {
  it('matches hand-computed values', () => {
    const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(v, 0)).toBe(1);
    expect(percentile(v, 100)).toBe(10);
    expect(percentile(v, 50)).toBe(5.5);
    expect(percentile(v, 90)).toBeCloseTo(9.1, 12); // numpy.percentile(range(1, 11), 90) = 9.1
    expect(percentile(v, 99)).toBeCloseTo(9.91, 12);
    expect(percentile([42], 99)).toBe(42);
    expect(percentile([], 50)).toBeUndefined();
    expect(() => percentile(v, 101)).toThrow(RangeError);
  });

  it('is monotone in p and stays within [min, max]', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }), fc.double({ min: 0, max: 100, noNaN: true }), fc.double({ min: 0, max: 100, noNaN: true }), (xs, p, q) => {
        const s = [...xs].sort((a, b) => a - b);
        const [lo, hi] = p <= q ? [p, q] : [q, p];
        expect(percentile(s, lo)!).toBeLessThanOrEqual(percentile(s, hi)! + 1e-9);
        expect(percentile(s, p)!).toBeGreaterThanOrEqual(s[0]! - 1e-9);
        expect(percentile(s, p)!).toBeLessThanOrEqual(s[s.length - 1]! + 1e-9);
      }),
      { seed: 11 },
    );
  });
});

describe('summarize', () => {
  it('ignores non-finite values and sorts its input itself', () => {
    const s = summarize([10, NaN, 1, 5, Infinity]);
    expect(s).toEqual({ count: 3, mean: 16 / 3, p50: 5, p90: 9, p99: 9.9, min: 1, max: 10 });
    expect(summarize([])).toEqual({ count: 0, mean: null, p50: null, p90: null, p99: null, min: null, max: null });
  });
});
