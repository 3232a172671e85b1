import { describe, expect, it } from 'vitest';
import { exponential, mulberry32 } from '../../../src/loadgen/index.js';

describe('seeded Poisson arrivals', () => {
  it('the same seed gives the same sequence; different seeds differ', () => {
    const a = mulberry32(9);
    const b = mulberry32(9);
    const c = mulberry32(10);
    const xs = Array.from({ length: 100 }, () => a());
    expect(Array.from({ length: 100 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('inter-arrival times are exponential with mean 1/rate (mean, variance, tail) over many samples', () => {
    const random = mulberry32(12345);
    const rate = 4;
    const n = 200_000;
    let sum = 0;
    let sumSq = 0;
    let beyondMean = 0;
    let negative = 0;
    for (let i = 0; i < n; i++) {
      const x = exponential(random, rate);
      if (x < 0) negative++;
      sum += x;
      sumSq += x * x;
      if (x > 1 / rate) beyondMean++;
    }
    expect(negative).toBe(0);
    const mean = sum / n;
    const variance = sumSq / n - mean * mean;
    // standard error of the mean is (1/rate)/sqrt(n) ≈ 0.00056; allow ~4 SE
    expect(Math.abs(mean - 1 / rate)).toBeLessThan(0.0025);
    expect(variance).toBeGreaterThan(0.95 / rate ** 2);
    expect(variance).toBeLessThan(1.05 / rate ** 2);
    // P(X > mean) = 1/e for an exponential
    expect(Math.abs(beyondMean / n - Math.exp(-1))).toBeLessThan(0.005);
  });

  it('counts in unit windows are Poisson: mean ≈ variance ≈ rate', () => {
    const random = mulberry32(777);
    const rate = 6;
    const windows = 20_000;
    const counts = new Array<number>(windows).fill(0);
    let t = 0;
    for (;;) {
      t += exponential(random, rate);
      if (t >= windows) break;
      counts[Math.floor(t)]!++;
    }
    const mean = counts.reduce((s, c) => s + c, 0) / windows;
    const variance = counts.reduce((s, c) => s + (c - mean) ** 2, 0) / windows;
    expect(Math.abs(mean - rate)).toBeLessThan(0.1);
    expect(Math.abs(variance / mean - 1)).toBeLessThan(0.05);
  });
});
