import { describe, expect, it } from 'vitest';
import { OutputLengthEstimator } from '../../../src/router/output-estimate.js';

describe('OutputLengthEstimator (running mean per input range)', () => {
  it('starts at the default; the first observation replaces it; then the arithmetic mean', () => {
    const e = new OutputLengthEstimator(2, 256, 1000);
    expect(e.estimate(0)).toBe(256);
    e.observe(0, 100);
    expect(e.estimate(0)).toBe(100);
    e.observe(0, 200);
    e.observe(0, 300);
    expect(e.estimate(0)).toBeCloseTo(200);
    expect(e.estimate(1)).toBe(256);
  });
  it('after `window` observations it follows a shift (EWMA with α = 1/window)', () => {
    const e = new OutputLengthEstimator(1, 10, 10);
    for (let i = 0; i < 100; i++) e.observe(0, 100);
    for (let i = 0; i < 100; i++) e.observe(0, 500);
    expect(e.estimate(0)).toBeGreaterThan(490);
    expect(e.snapshot()[0]!.count).toBe(10);
  });
  it('ignores invalid observations and unknown ranges', () => {
    const e = new OutputLengthEstimator(1, 10, 10);
    e.observe(0, NaN);
    e.observe(0, -1);
    e.observe(5, 100);
    expect(e.estimate(0)).toBe(10);
    expect(e.estimate(5)).toBe(10);
  });
  it('resized keeps means only when the input edges are unchanged', () => {
    const e = new OutputLengthEstimator(2, 10, 10);
    e.observe(1, 40);
    expect(e.resized(3, 20, 10, true).snapshot()).toEqual([{ mean: 20, count: 0 }, { mean: 40, count: 1 }, { mean: 20, count: 0 }]);
    expect(e.resized(2, 20, 10, false).estimate(1)).toBe(20);
  });
});
