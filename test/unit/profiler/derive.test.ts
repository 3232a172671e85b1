import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Measurement } from '../../../src/api/index.js';
import {
  deriveMatrix,
  deriveMaxThroughput,
  deriveRate,
  judge,
  MAX_SPAN_RATIO,
  rangeIndex,
  type Point,
} from '../../../src/solver/capacity-from-measurements.js';

const pt = (rate: number, meanTpotMillis: number, throughput = rate): Point => ({ rate, meanTpotMillis, throughput });
const m = (input: number, output: number, rate: number, meanTpotMillis: number, throughput = rate): Measurement => ({ input, output, rate, meanTpotMillis, throughput });

describe('judge: one point against an SLO', () => {
  it('passes when the mean TPOT meets the SLO and the server kept up', () => {
    expect(judge(pt(2, 100), 120)).toBe('pass');
    expect(judge(pt(2, 120), 120)).toBe('pass');
    expect(judge(pt(2, 121), 120)).toBe('fail-tpot');
  });
  it('fails a point whose completions fell behind its arrivals by more than the span ratio', () => {
    expect(judge(pt(2, 100, 2 / MAX_SPAN_RATIO + 1e-9), 120)).toBe('pass');
    expect(judge(pt(2, 100, 2 / MAX_SPAN_RATIO - 1e-3), 120)).toBe('fail-queue');
  });
});

describe('deriveRate: the conservative rule for one size', () => {
  it('no points -> 0; all failing -> 0 (cannot serve at this SLO)', () => {
    expect(deriveRate([], 120)).toMatchObject({ rate: 0, how: 'no-points' });
    expect(deriveRate([pt(1, 200), pt(2, 300)], 120)).toMatchObject({ rate: 0, how: 'no-pass' });
  });

  it('never extrapolates beyond the last passing point', () => {
    expect(deriveRate([pt(1, 40), pt(2, 60), pt(4, 90)], 120)).toMatchObject({ rate: 4, how: 'unbracketed' });
  });

  it('interpolates TPOT linearly between the last pass and the first failure (SLO between two points)', () => {
    // 60 ms at 2 req/s, 180 ms at 3 req/s: 120 ms is half way -> 2.5
    expect(deriveRate([pt(1, 40), pt(2, 60), pt(3, 180), pt(4, 400)], 120)).toMatchObject({ rate: 2.5, how: 'interpolated' });
    // exactly at a point
    expect(deriveRate([pt(2, 60), pt(3, 120.0001)], 60).rate).toBe(2);
  });

  it('ignores passing points above the lowest failure (noise can only lower the answer)', () => {
    const d = deriveRate([pt(1, 50), pt(2, 130), pt(3, 100), pt(4, 200)], 120);
    expect(d.fail?.rate).toBe(2);
    expect(d.pass?.rate).toBe(1);
    expect(d.rate).toBeLessThanOrEqual(2);
    expect(d.rate).toBeCloseTo(1 + (120 - 50) / (130 - 50), 10);
  });

  it('a failure caused only by a growing queue bounds the answer at the last pass', () => {
    expect(deriveRate([pt(1, 50), pt(2, 80, 1.5)], 120)).toMatchObject({ rate: 1, how: 'last-pass' });
  });

  it('ignores rate-0 points (a request alone is not a sustained rate)', () => {
    expect(deriveRate([pt(0, 30)], 120)).toMatchObject({ rate: 0, how: 'no-points' });
  });

  it('property: never above the true crossing of a convex TPOT curve, and close to it when the points are dense', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 5, max: 60, noNaN: true }), // T0 (ms)
        fc.double({ min: 0.1, max: 50, noNaN: true }), // saturation rate
        fc.double({ min: 1.2, max: 10, noNaN: true }), // SLO / T0
        fc.array(fc.double({ min: 0.01, max: 1.5, noNaN: true }), { minLength: 1, maxLength: 12 }), // rates / saturation
        (t0, c, ratio, xs) => {
          const slo = t0 * ratio;
          const tpot = (r: number) => (r >= c ? 1e9 : t0 / (1 - r / c));
          const truth = c * (1 - t0 / slo); // tpot(truth) = slo
          const pts = xs.map((x) => pt(x * c, tpot(x * c)));
          const d = deriveRate(pts, slo);
          expect(d.rate).toBeLessThanOrEqual(truth * (1 + 1e-9));
          if (d.pass && d.fail) expect(d.rate).toBeGreaterThanOrEqual(d.pass.rate);
        },
      ),
    );
  });

  it('property: monotone in the SLO (a tighter SLO never derives more)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0.01, max: 10, noNaN: true }), fc.double({ min: 1, max: 500, noNaN: true })), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 400 }),
        (raw, a, b) => {
          const pts = raw.map(([r, t]) => pt(r, t));
          const [tight, loose] = a <= b ? [a, b] : [b, a];
          expect(deriveRate(pts, tight).rate).toBeLessThanOrEqual(deriveRate(pts, loose).rate + 1e-12);
        },
      ),
    );
  });
});

describe('deriveMaxThroughput: a bucket matrix from raw measurements', () => {
  const buckets = { inputEdges: [100, 1000], outputEdges: [50, 250] };

  it('assigns each point to the bucket whose ranges hold its size; sizes above the last edge count in the last range', () => {
    expect(rangeIndex([100, 1000], 1)).toBe(0);
    expect(rangeIndex([100, 1000], 100)).toBe(0);
    expect(rangeIndex([100, 1000], 101)).toBe(1);
    expect(rangeIndex([100, 1000], 5000)).toBe(1);
    const ms = [
      m(100, 50, 4, 60), m(100, 50, 8, 180), // [0][0]: interpolates to 6
      m(1000, 250, 0.5, 100), m(1000, 250, 1, 140), // [1][1]: 0.75
      m(5000, 250, 0.1, 300), // also [1][1]: fails, and a bucket takes the smallest size's answer
    ];
    const matrix = deriveMaxThroughput(ms, buckets, 120);
    expect(matrix[0]![0]).toBe(6);
    expect(matrix[0]![1]).toBe(0); // no points
    expect(matrix[1]![0]).toBe(0);
    expect(matrix[1]![1]).toBe(0); // min over sizes: 5000x250 fails at 0.1 req/s
    const cells = deriveMatrix(ms, buckets, 120);
    expect(cells[1]![1]).toMatchObject({ points: 3 });
    expect(cells[0]![1]).toMatchObject({ points: 0, how: 'no-points' });
  });

  it('re-derives for any SLO from the same points: looser gives more, tighter less', () => {
    const ms = [m(100, 50, 1, 35), m(100, 50, 2, 45), m(100, 50, 4, 70), m(100, 50, 8, 200)];
    const at = (slo: number) => deriveMaxThroughput(ms, { inputEdges: [100], outputEdges: [50] }, slo)[0]![0]!;
    expect(at(40)).toBeCloseTo(1.5, 10);
    expect(at(70)).toBe(4);
    expect(at(120)).toBeCloseTo(4 + (4 * 50) / 130, 3);
    expect(at(1000)).toBe(8);
    expect(at(30)).toBe(0);
  });

  it('rounds to 4 significant digits, downwards', () => {
    const ms = [m(100, 50, 1, 100), m(100, 50, 2, 130)]; // 1 + 20/30 = 1.6666...
    expect(deriveMaxThroughput(ms, { inputEdges: [100], outputEdges: [50] }, 120)[0]![0]).toBe(1.666);
  });

  it('rejects a non-positive SLO', () => {
    expect(() => deriveMaxThroughput([], buckets, 0)).toThrow(RangeError);
  });
});
