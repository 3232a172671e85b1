/**
 * SLO derivation: from the raw load-test points of a GPUProfile (`spec.measurements`) to the highest request
 * rate one replica sustains under ANY TPOT SLO — pure, no I/O. Used by `melangectl profile` to fill
 * `spec.maxThroughput`, and by the solver's `instanceFromService` when a service's SLO differs from the one a
 * profile was measured at.
 *
 * The conservative rule (docs/profiling.md):
 *
 *   A point PASSES the SLO s when its mean TPOT (the paper's: latency / output tokens) is <= s AND the server
 *   kept up with the offered load (throughput >= rate / MAX_SPAN_RATIO; a queue that grows is not sustainable,
 *   however good a finite run's mean looks).
 *
 *   For one request size, let f = the LOWEST rate of any failing point and p = the highest rate of a passing
 *   point below f (points above the first failure are ignored, so noise can never raise the answer).
 *     - no passing point below f (or no passing point at all)  -> 0: cannot serve at this SLO;
 *     - no failing point at all                                -> p: never extrapolate beyond what was measured;
 *     - otherwise, if f failed on TPOT: linear interpolation of TPOT between p and f, where it meets s;
 *       if f failed only because its queue grew: p.
 *   Mean TPOT grows convexly with the rate (T0 / (1 - rate/capacity) in the mean-field limit), so the chord
 *   between p and f lies ABOVE the true curve: the interpolated rate is never above the true crossing.
 *
 *   A bucket is profiled at its upper edges. Points are grouped by size (input, output) and assigned to the
 *   bucket whose ranges contain them (a range is (previous edge, edge]; sizes above the last edge count in the
 *   last range). A bucket with points at several sizes takes the smallest derived rate; a bucket with no
 *   points derives 0 (callers that also have a stored maxThroughput decide what to do with such buckets).
 */
import type { Measurement } from '../api/gpuprofile.js';

/** A rate is sustainable only when completions keep up with arrivals: finish span / arrival span <= this. */
export const MAX_SPAN_RATIO = 1.1;

export interface BucketEdges {
  inputEdges: readonly number[];
  outputEdges: readonly number[];
}

/** The fields of a measurement the rule reads. */
export type Point = Pick<Measurement, 'rate' | 'meanTpotMillis' | 'throughput'>;

export type Verdict = 'pass' | 'fail-tpot' | 'fail-queue';

/** Does one point meet a mean-TPOT SLO of `sloTpotMillis` (and keep up with its load)? */
export function judge(p: Point, sloTpotMillis: number): Verdict {
  if (!(p.meanTpotMillis <= sloTpotMillis)) return 'fail-tpot';
  if (p.rate > 0 && !(p.throughput * MAX_SPAN_RATIO >= p.rate)) return 'fail-queue';
  return 'pass';
}

export const passes = (p: Point, sloTpotMillis: number): boolean => judge(p, sloTpotMillis) === 'pass';

export interface RateDerivation {
  /** Highest sustainable rate (req/s) under the SLO; 0 = cannot serve at this SLO. */
  rate: number;
  /** How it was obtained. */
  how: 'no-points' | 'no-pass' | 'interpolated' | 'last-pass' | 'unbracketed';
  /** The passing and failing points that bracket the answer, when they exist. */
  pass?: Point;
  fail?: Point;
}

/** The conservative rule above, for the points of ONE request size. Points with rate <= 0 are ignored. */
export function deriveRate(points: readonly Point[], sloTpotMillis: number): RateDerivation {
  const pts = points.filter((p) => p.rate > 0 && Number.isFinite(p.rate) && Number.isFinite(p.meanTpotMillis));
  if (pts.length === 0) return { rate: 0, how: 'no-points' };
  let fail: Point | undefined;
  for (const p of pts) if (judge(p, sloTpotMillis) !== 'pass' && (!fail || p.rate < fail.rate)) fail = p;
  let pass: Point | undefined;
  for (const p of pts) {
    if (judge(p, sloTpotMillis) !== 'pass') continue;
    if (fail && p.rate >= fail.rate) continue;
    if (!pass || p.rate > pass.rate) pass = p;
  }
  if (!pass) return { rate: 0, how: 'no-pass', ...(fail ? { fail } : {}) };
  if (!fail) return { rate: pass.rate, how: 'unbracketed', pass };
  if (judge(fail, sloTpotMillis) === 'fail-queue' || !(fail.meanTpotMillis > pass.meanTpotMillis)) {
    return { rate: pass.rate, how: 'last-pass', pass, fail };
  }
  const t = (sloTpotMillis - pass.meanTpotMillis) / (fail.meanTpotMillis - pass.meanTpotMillis);
  const rate = pass.rate + Math.min(1, Math.max(0, t)) * (fail.rate - pass.rate);
  return { rate: Math.min(rate, fail.rate), how: 'interpolated', pass, fail };
}

/** Index of the range (previous edge, edge] holding `v`; sizes above the last edge go to the last range. */
export function rangeIndex(edges: readonly number[], v: number): number {
  for (let i = 0; i < edges.length; i++) if (v <= edges[i]!) return i;
  return edges.length - 1;
}

/** Measurements grouped by [input range][output range], then by exact size `${input}x${output}`. */
export function groupByBucket<M extends Pick<Measurement, 'input' | 'output'>>(
  measurements: readonly M[],
  buckets: BucketEdges,
): Array<Array<Map<string, M[]>>> {
  const grid = buckets.inputEdges.map(() => buckets.outputEdges.map(() => new Map<string, M[]>()));
  for (const m of measurements) {
    const cell = grid[rangeIndex(buckets.inputEdges, m.input)]![rangeIndex(buckets.outputEdges, m.output)]!;
    const key = `${m.input}x${m.output}`;
    const list = cell.get(key);
    if (list) list.push(m);
    else cell.set(key, [m]);
  }
  return grid;
}

/** Significant digits kept in derived throughputs (the catalog's convention). */
const DIGITS = 4;
const round = (v: number) => (v > 0 ? Number(v.toPrecision(DIGITS)) : 0);

/**
 * maxThroughput [input range][output range] for `sloTpotMillis` from raw measurements, by the conservative
 * rule in the module comment. 0 = no evidence that this bucket can be served at this SLO (no points, or none
 * passing). Rounded down to 4 significant digits never up: the value is at most what the rule gives.
 */
export function deriveMaxThroughput(measurements: readonly Measurement[], buckets: BucketEdges, sloTpotMillis: number): number[][] {
  return deriveMatrix(measurements, buckets, sloTpotMillis).map((row) => row.map((c) => c.rate));
}

export interface DerivedCell {
  rate: number;
  /** Number of measurements in the bucket (0 = not measured). */
  points: number;
  how: RateDerivation['how'];
}

/** deriveMaxThroughput with, per bucket, how many points it saw and which case of the rule applied. */
export function deriveMatrix(measurements: readonly Measurement[], buckets: BucketEdges, sloTpotMillis: number): DerivedCell[][] {
  if (!(sloTpotMillis > 0)) throw new RangeError(`sloTpotMillis must be > 0, not ${sloTpotMillis}`);
  return groupByBucket(measurements, buckets).map((row) =>
    row.map((sizes) => {
      let best: DerivedCell | undefined;
      let points = 0;
      for (const pts of sizes.values()) {
        points += pts.length;
        const d = deriveRate(pts, sloTpotMillis);
        if (!best || d.rate < best.rate) best = { rate: d.rate, points: 0, how: d.how };
      }
      if (!best) return { rate: 0, points: 0, how: 'no-points' };
      const r = round(best.rate);
      // toPrecision rounds to nearest: step down if that went up.
      const down = r > best.rate ? Number((r - 10 ** (Math.floor(Math.log10(r)) - DIGITS + 1)).toPrecision(DIGITS)) : r;
      return { rate: Math.max(0, down), points, how: best.how };
    }),
  );
}
