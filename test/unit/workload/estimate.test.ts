import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  INDEPENDENCE_WARNING,
  cumulativeAt,
  cumulativeFromBuckets,
  edgeIndex,
  estimateFromRouter,
  estimateFromVllm,
  normalizeMatrix,
  outerProduct,
  rebinCumulative,
  robustRate,
  type EstimateConfig,
  type RouterQueryResults,
  type VllmQueryResults,
} from '../../../src/workload/estimate.js';
import type { Sample } from '../../../src/workload/prometheus-client.js';
import { matrixSum } from './fixtures.js';

const NOW = new Date('2026-11-28T10:00:00Z');
const T = NOW.getTime() / 1000;
const cfg = (over: Partial<EstimateConfig> = {}): EstimateConfig => ({
  inputEdges: [100, 1000, 4000],
  outputEdges: [100, 500],
  windowMs: 300_000,
  now: NOW,
  staleAfterMs: 120_000,
  maxUnknownFraction: 0.1,
  minRequestsForDistribution: 100,
  ...over,
});
const s = (labels: Record<string, string>, value: number, timestamp = T): Sample => ({ labels, value, timestamp });
const bucket = (input_le: string, output_le: string, rate: number) => s({ input_le, output_le }, rate);
const lastSeen = (ageSeconds: number) => [s({}, T - ageSeconds)];

const router = (over: Partial<RouterQueryResults> = {}): RouterQueryResults => ({
  bucketRates: [bucket('100', '100', 2), bucket('100', '500', 1), bucket('1000', '100', 4), bucket('4000', '500', 3)],
  recentRate: [s({}, 9)],
  lastSeen: lastSeen(5),
  ...over,
});

const closeMatrix = (a: number[][], b: number[][], digits = 9) => {
  expect(a.length).toBe(b.length);
  a.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(b[i]?.[j] ?? NaN, digits)));
};

describe('small helpers', () => {
  it('robustRate = max(window mean, recent): fast up, slow down', () => {
    expect(robustRate(10, 15)).toBe(15); // rising: the recent rate leads
    expect(robustRate(10, 2)).toBe(10); // falling: the window holds the capacity
    expect(robustRate(10, undefined)).toBe(10);
  });

  it('edgeIndex maps label values to ranges by numeric value; +Inf is the last range', () => {
    const edges = [25, 100, 250];
    expect(edgeIndex('25', edges)).toBe(0);
    expect(edgeIndex('100.0', edges)).toBe(1);
    expect(edgeIndex('2.5e2', edges)).toBe(2);
    expect(edgeIndex('+Inf', edges)).toBe(2);
    for (const bad of [undefined, '', '26', 'abc', '-25', 'NaN']) expect(edgeIndex(bad, edges)).toBeUndefined();
  });

  it('normalizeMatrix and outerProduct', () => {
    expect(normalizeMatrix([[1, 3], [0, 4]])).toEqual([[0.125, 0.375], [0, 0.5]]);
    expect(normalizeMatrix([[0, 0]])).toEqual([[0, 0]]);
    expect(outerProduct([0.5, 0.5], [0.2, 0.8])).toEqual([[0.1, 0.4], [0.1, 0.4]]);
  });
});

describe('estimateFromRouter', () => {
  it('builds the joint matrix, fractions summing to 1, rate = max(window mean, recent)', () => {
    const e = estimateFromRouter(router(), cfg());
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    expect(e.windowMeanRate).toBe(10);
    expect(e.recentRate).toBe(9);
    expect(e.requestsPerSecond).toBe(10);
    closeMatrix(e.distribution, [[0.2, 0.1], [0.4, 0], [0, 0.3]]);
    expect(matrixSum(e.distribution)).toBeCloseTo(1, 12);
    expect(e.requestsInWindow).toBe(3000);
    expect(e.lastSampleAgeMs).toBe(5000);
    expect(e.warnings).toEqual([]);
  });

  it('follows a rising recent rate immediately', () => {
    const e = estimateFromRouter(router({ recentRate: [s({}, 25)] }), cfg());
    expect(e.ok && e.requestsPerSecond).toBe(25);
  });

  it('sums series that differ only in other labels (pool, code) into one bucket', () => {
    const e = estimateFromRouter(
      router({ bucketRates: [s({ input_le: '100', output_le: '100', pool: 'a' }, 1), s({ input_le: '100', output_le: '100', pool: 'b' }, 3)] }),
      cfg(),
    );
    expect(e.ok && e.distribution[0]?.[0]).toBe(1);
  });

  it('zero traffic with current series is valid data: rate 0, all-zero distribution', () => {
    const e = estimateFromRouter(router({ bucketRates: [bucket('100', '100', 0), bucket('1000', '500', 0)], recentRate: [s({}, 0)] }), cfg());
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    expect(e.requestsPerSecond).toBe(0);
    expect(matrixSum(e.distribution)).toBe(0);
    expect(e.warnings.join()).toContain('zero traffic');
  });

  it('no series at all is NoData (and flagged absent so the caller may try vLLM)', () => {
    const e = estimateFromRouter({ bucketRates: [], recentRate: [], lastSeen: [] }, cfg());
    expect(e).toMatchObject({ ok: false, reason: 'NoData', seriesAbsent: true });
  });

  it('series with fewer than two samples in the window are NoData, not absent', () => {
    const e = estimateFromRouter(router({ bucketRates: [], recentRate: [] }), cfg());
    expect(e).toMatchObject({ ok: false, reason: 'NoData', seriesAbsent: false });
  });

  it('the newest raw sample older than the bound is Stale', () => {
    const e = estimateFromRouter(router({ lastSeen: lastSeen(121) }), cfg());
    expect(e).toMatchObject({ ok: false, reason: 'Stale', seriesAbsent: false });
    if (!e.ok) expect(e.message).toContain('121 s old');
    expect(estimateFromRouter(router({ lastSeen: lastSeen(119) }), cfg()).ok).toBe(true);
  });

  it('data in the window but no current series (target gone, staleness markers) is Stale', () => {
    expect(estimateFromRouter(router({ lastSeen: [] }), cfg())).toMatchObject({ ok: false, reason: 'Stale', seriesAbsent: false });
  });

  it.each([
    ['NaN rate', { bucketRates: [bucket('100', '100', Number.NaN)] }],
    ['+Inf rate', { bucketRates: [bucket('100', '100', Infinity)] }],
    ['negative rate', { bucketRates: [bucket('100', '100', -1)] }],
    ['NaN recent rate', { recentRate: [s({}, Number.NaN)] }],
    ['NaN timestamp', { lastSeen: [s({}, Number.NaN)] }],
  ])('%s is InvalidData', (_, over) => {
    const e = estimateFromRouter(router(over), cfg());
    expect(e).toMatchObject({ ok: false, reason: 'InvalidData' });
  });

  it('counts and reports traffic with bucket labels that are not the service\'s edges', () => {
    const e = estimateFromRouter(router({ bucketRates: [...router().bucketRates, bucket('77', '100', 0.5)] }), cfg());
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    expect(e.unknownRate).toBe(0.5);
    expect(e.windowMeanRate).toBe(10.5); // counted in the rate…
    expect(matrixSum(e.distribution)).toBeCloseTo(1, 12); // …sized like the rest
    expect(e.warnings.join()).toContain('input_le="77"');
  });

  it('rejects the data when too much traffic has unknown labels (router on other buckets)', () => {
    const e = estimateFromRouter(router({ bucketRates: [...router().bucketRates, bucket('25', '25', 5)] }), cfg());
    expect(e).toMatchObject({ ok: false, reason: 'InvalidData' });
    if (!e.ok) expect(e.message).toMatch(/33\.3% of the traffic/);
    const none = estimateFromRouter(router({ bucketRates: [s({ code: '200' }, 1)] }), cfg());
    expect(none).toMatchObject({ ok: false, reason: 'InvalidData' });
  });

  it('treats "+Inf" as the last range', () => {
    const e = estimateFromRouter(router({ bucketRates: [bucket('+Inf', '+Inf', 1)] }), cfg({ minRequestsForDistribution: 0 }));
    expect(e.ok && e.distribution[2]?.[1]).toBe(1);
  });

  it('warns when the distribution rests on few requests, and when the short window is empty', () => {
    const e = estimateFromRouter(router({ bucketRates: [bucket('100', '100', 0.1)], recentRate: [] }), cfg());
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    expect(e.warnings.some((w) => w.includes('~30 requests'))).toBe(true);
    expect(e.warnings.some((w) => w.includes('short-window'))).toBe(true);
    expect(e.requestsPerSecond).toBe(0.1);
  });

  it('does not apply headroom (the solver does)', () => {
    const e = estimateFromRouter(router({ recentRate: [s({}, 10)] }), cfg());
    expect(e.ok && e.requestsPerSecond).toBe(10);
  });
});

describe('vLLM re-binning', () => {
  const vllmLe = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  const hist = (cum: number[], total: number): Sample[] => [
    ...vllmLe.map((le, i) => s({ le: `${le}.0` }, cum[i] ?? 0)),
    s({ le: '+Inf' }, total),
  ];

  it('cumulativeFromBuckets sorts, merges equal le labels ("1" and "1.0") and repairs non-monotone rates', () => {
    const h = cumulativeFromBuckets([s({ le: '+Inf' }, 10), s({ le: '1.0' }, 2), s({ le: '1' }, 1), s({ le: '5' }, 2.5), s({ le: '10' }, 9)], 'h');
    expect(typeof h).toBe('object');
    if (typeof h === 'string') return;
    expect(h.points).toEqual([
      { le: 1, cumulative: 3 },
      { le: 5, cumulative: 3 },
      { le: 10, cumulative: 9 },
      { le: Infinity, cumulative: 10 },
    ]);
    expect(h.monotoneRepair).toBe(0.5);
    expect(h.total).toBe(10);
    expect(cumulativeFromBuckets([s({ le: '1' }, 1)], 'h')).toContain('+Inf');
    expect(cumulativeFromBuckets([s({}, 1)], 'h')).toContain('le label');
  });

  it('interpolates linearly inside a source bucket, from 0 below the first boundary', () => {
    const pts = [
      { le: 10, cumulative: 4 },
      { le: 20, cumulative: 8 },
      { le: Infinity, cumulative: 10 },
    ];
    expect(cumulativeAt(pts, 5)).toBe(2);
    expect(cumulativeAt(pts, 15)).toBe(6);
    expect(cumulativeAt(pts, 20)).toBe(8);
    expect(cumulativeAt(pts, 1000)).toBe(8); // beyond the last finite boundary: unknown, stays flat
  });

  it('is exact when our edges are source boundaries; overflow lands in the last range', () => {
    const h = { points: [{ le: 100, cumulative: 6 }, { le: 1000, cumulative: 8 }, { le: 5000, cumulative: 9 }, { le: Infinity, cumulative: 10 }], total: 10 };
    expect(rebinCumulative(h, [100, 1000, 4000])).toEqual([6, 2, 2]);
    expect(rebinCumulative(h, [100, 1000, 4000, 16000])).toEqual([6, 2, 0.75, 1.25]);
    expect(rebinCumulative(h, [50])).toEqual([10]);
  });

  it('preserves the total and never produces negative mass (property)', () => {
    const arb = fc.record({
      incs: fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: 1, maxLength: 14 }),
      overflow: fc.double({ min: 0, max: 100, noNaN: true }),
      edges: fc.uniqueArray(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 12 }).map((e) => e.sort((a, b) => a - b)),
    });
    fc.assert(
      fc.property(arb, ({ incs, overflow, edges }) => {
        let c = 0;
        const points = incs.map((inc, i) => ({ le: vllmLe[i] ?? 20_000 + i, cumulative: (c += inc) }));
        const total = c + overflow;
        points.push({ le: Infinity, cumulative: total });
        const mass = rebinCumulative({ points, total }, edges);
        expect(mass).toHaveLength(edges.length);
        for (const m of mass) expect(m).toBeGreaterThanOrEqual(0);
        expect(mass.reduce((a, b) => a + b, 0)).toBeCloseTo(total, 6);
      }),
      { numRuns: 300 },
    );
  });

  const vllm = (over: Partial<VllmQueryResults> = {}): VllmQueryResults => ({
    // Prompts: 60% at ≤100 tokens (exactly 80), 40% in (2000, 5000] (3000). Rates in req/s; total 10.
    promptBuckets: hist([0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 10, 10], 10),
    // Outputs: 70% ≤ 50, 30% in (200, 500].
    generationBuckets: hist([0, 0, 0, 0, 0, 7, 7, 7, 10, 10, 10, 10, 10], 10),
    successRate: [s({}, 10)],
    recentSuccessRate: [s({}, 8)],
    lastSeen: lastSeen(3),
    ...over,
  });

  it('re-bins both marginals onto our edges and joins them as an outer product (sizeAware: false upstream)', () => {
    const e = estimateFromVllm(vllm(), cfg());
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    // input [100, 1000, 4000]: C(100)=6, C(1000)=6 → [0.6, 0, 0.4] (everything beyond 1000 is in the last range)
    // output [100, 500]: C(100)=7 → [0.7, 0.3]
    closeMatrix(e.distribution, outerProduct([0.6, 0, 0.4], [0.7, 0.3]));
    expect(matrixSum(e.distribution)).toBeCloseTo(1, 12);
    expect(e.requestsPerSecond).toBe(10);
    expect(e.warnings).toContain(INDEPENDENCE_WARNING);
  });

  it('interpolates where our edges fall inside vLLM buckets', () => {
    const e = estimateFromVllm(vllm(), cfg({ outputEdges: [100, 250, 1000] }));
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    // C(250) = C(200) + (C(500) - C(200)) · 50/300 = 7 + 3/6 = 7.5
    const out = [0.7, 0.05, 0.25];
    closeMatrix(e.distribution, outerProduct([0.6, 0, 0.4], out));
  });

  it('zero traffic with current histograms is valid (rate 0, zero matrix)', () => {
    const zero = hist(new Array<number>(13).fill(0), 0);
    const e = estimateFromVllm(vllm({ promptBuckets: zero, generationBuckets: zero, successRate: [s({}, 0)], recentSuccessRate: [s({}, 0)] }), cfg());
    expect(e.ok).toBe(true);
    if (e.ok) {
      expect(e.requestsPerSecond).toBe(0);
      expect(matrixSum(e.distribution)).toBe(0);
    }
  });

  it('uses the histogram count when vllm:request_success_total is absent', () => {
    const e = estimateFromVllm(vllm({ successRate: [], recentSuccessRate: [] }), cfg());
    expect(e.ok && e.requestsPerSecond).toBe(10);
    expect(e.ok && e.warnings.some((w) => w.includes('request_success_total is absent'))).toBe(true);
  });

  it('typed failures: absent, stale, NaN, missing +Inf, inconsistent histograms', () => {
    expect(estimateFromVllm({ promptBuckets: [], generationBuckets: [], successRate: [], recentSuccessRate: [], lastSeen: [] }, cfg())).toMatchObject({
      ok: false,
      reason: 'NoData',
      seriesAbsent: true,
    });
    expect(estimateFromVllm(vllm({ lastSeen: lastSeen(600) }), cfg())).toMatchObject({ ok: false, reason: 'Stale' });
    expect(estimateFromVllm(vllm({ lastSeen: [] }), cfg())).toMatchObject({ ok: false, reason: 'Stale' });
    expect(estimateFromVllm(vllm({ successRate: [s({}, Number.NaN)] }), cfg())).toMatchObject({ ok: false, reason: 'InvalidData' });
    expect(estimateFromVllm(vllm({ promptBuckets: [s({ le: '100' }, 1)] }), cfg())).toMatchObject({ ok: false, reason: 'InvalidData' });
    expect(estimateFromVllm(vllm({ generationBuckets: [] }), cfg())).toMatchObject({ ok: false, reason: 'NoData', seriesAbsent: false });
    const zero = hist(new Array<number>(13).fill(0), 0);
    expect(estimateFromVllm(vllm({ generationBuckets: zero }), cfg())).toMatchObject({ ok: false, reason: 'InvalidData' });
  });
});
