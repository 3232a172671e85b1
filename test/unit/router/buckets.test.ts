import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bucketIndex, bucketLabel, bucketOf } from '../../../src/router/buckets.js';

const PAPER_IN = [25, 100, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000];

describe('bucket lookup over upper edges', () => {
  it('a value equal to an upper edge belongs to that range; the next token starts the next range', () => {
    expect(bucketIndex(PAPER_IN, 25)).toBe(0);
    expect(bucketIndex(PAPER_IN, 26)).toBe(1);
    expect(bucketIndex(PAPER_IN, 100)).toBe(1);
    expect(bucketIndex(PAPER_IN, 101)).toBe(2);
    expect(bucketIndex(PAPER_IN, 16000)).toBe(9);
  });
  it('0 tokens is in the first range; beyond the last edge counts in the last range', () => {
    expect(bucketIndex(PAPER_IN, 0)).toBe(0);
    expect(bucketIndex(PAPER_IN, 16001)).toBe(9);
    expect(bucketIndex(PAPER_IN, 1e12)).toBe(9);
    expect(bucketIndex(PAPER_IN, Infinity)).toBe(9);
    expect(bucketIndex(PAPER_IN, NaN)).toBe(0);
  });
  it('labels are the upper edge as a decimal string', () => {
    expect(bucketLabel(PAPER_IN, 0)).toBe('25');
    expect(bucketOf(PAPER_IN, 20000)).toEqual({ index: 9, le: '16000' });
    expect(() => bucketLabel(PAPER_IN, 10)).toThrow();
  });
  it('single edge: everything is range 0', () => {
    expect(bucketIndex([10], 0)).toBe(0);
    expect(bucketIndex([10], 11)).toBe(0);
  });
  it('property: edges[i-1] < v <= edges[i] (with 0 and +inf ends)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 32 }).map((a) => a.sort((x, y) => x - y)),
        fc.integer({ min: 0, max: 200_000 }),
        (edges, v) => {
          const i = bucketIndex(edges, v);
          const lo = i === 0 ? -Infinity : edges[i - 1]!;
          const hi = i === edges.length - 1 ? Infinity : edges[i]!;
          return v > lo && v <= hi;
        },
      ),
    );
  });
});
