/**
 * Fits the GPUProfile's `spec.latency` (src/api/latency.ts) to the profiler's alone probes: one request on an idle
 * replica, one point per bucket at its upper edges. Pure.
 *
 * Relative error, not absolute: the router's SLO guard asks "would this request alone miss its TPOT SLO?", a
 * question about latency ÷ output tokens, so a 30 ms error on a 3-token answer matters as much as 3 s on a
 * 2000-token one. An absolute fit would let the few long buckets (tens of seconds) decide every coefficient and
 * leave the overhead — what dominates short requests — to chance.
 *
 * Coefficients are physical times and must not be negative: a negative one would predict a faster request for a
 * longer prompt and could even predict a negative latency outside the probed range.
 */
import { aloneLatencyMillis, type LatencyModel } from '../api/latency.js';

export interface LatencyPoint {
  input: number;
  output: number;
  latencyMillis: number;
}

export interface LatencyFitError {
  /** Largest |predicted − measured| ÷ measured over the points. */
  max: number;
  mean: number;
}

const features = (input: number, output: number): number[] => {
  const out = Math.max(1, output); // as aloneLatencyMillis
  return [1, input, out, out * (input + out / 2)];
};

const usable = (points: readonly LatencyPoint[]): LatencyPoint[] =>
  points.filter((p) => [p.input, p.output, p.latencyMillis].every(Number.isFinite) && p.input >= 0 && p.output > 0 && p.latencyMillis > 0);

const dot = (a: readonly number[], b: readonly number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);

/** A column this much smaller than itself once the others are projected out is taken as a combination of them. */
const RANK_TOL = 1e-9;

/**
 * Least squares on columns `cols` (target b) by modified Gram–Schmidt; undefined when they are (nearly) linearly
 * dependent. QR rather than normal equations: the features span ~7 orders of magnitude (1 to out·in ≈ 2e7) and the
 * normal equations would square that conditioning.
 */
function leastSquares(cols: readonly number[][], b: readonly number[]): number[] | undefined {
  const k = cols.length;
  const q = cols.map((c) => [...c]);
  const r = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < j; i++) {
      r[i]![j] = dot(q[i]!, q[j]!);
      q[j] = q[j]!.map((v, n) => v - r[i]![j]! * q[i]![n]!);
    }
    const norm = Math.sqrt(dot(q[j]!, q[j]!));
    if (!(norm > RANK_TOL * Math.sqrt(dot(cols[j]!, cols[j]!)))) return undefined;
    r[j]![j] = norm;
    q[j] = q[j]!.map((v) => v / norm);
  }
  let z = [...b];
  const c = q.map((qi) => {
    const ci = dot(qi, z);
    z = z.map((v, n) => v - ci * qi[n]!);
    return ci;
  });
  const x = new Array<number>(k).fill(0);
  for (let i = k - 1; i >= 0; i--) {
    let s = c[i]!;
    for (let j = i + 1; j < k; j++) s -= r[i]![j]! * x[j]!;
    x[i] = s / r[i]![i]!;
  }
  return x.every(Number.isFinite) ? x : undefined;
}

/**
 * The non-negative least-squares fit of the latency model to `points`, minimising Σ ((predicted − y) ÷ y)²;
 * undefined with fewer than 2 usable points (finite, latency > 0) or when the points cannot tell the four terms
 * apart (e.g. every probe at one prompt length: overhead and prefill are then the same column). In practice that
 * takes 4 points at 2+ prompt lengths and 2+ output lengths.
 *
 * With only 4 unknowns, exact NNLS is cheapest by enumeration: the optimum is the unconstrained fit on its own
 * support, so the best of the 15 subset fits whose coefficients are all >= 0 is it. (Dropping the negative
 * coefficients of one full fit and refitting can stop at a worse subset.)
 */
export function fitLatencyModel(points: readonly LatencyPoint[]): LatencyModel | undefined {
  const ps = usable(points);
  if (ps.length < 2) return undefined;
  // Row i divided by y_i: ordinary least squares on it is the relative-error fit, with target 1.
  const rows = ps.map((p) => features(p.input, p.output).map((f) => f / p.latencyMillis));
  const column = (j: number) => rows.map((row) => row[j]!);
  const ones = rows.map(() => 1);
  // A degenerate full design would make several subsets fit equally well: no single model to trust.
  if (!leastSquares([0, 1, 2, 3].map(column), ones)) return undefined;
  let best: { x: number[]; sse: number } | undefined;
  for (let mask = 1; mask < 16; mask++) {
    const idx = [0, 1, 2, 3].filter((j) => mask & (1 << j));
    const sol = leastSquares(idx.map(column), ones);
    if (!sol || sol.some((v) => v < 0)) continue;
    const x = [0, 0, 0, 0];
    idx.forEach((j, n) => (x[j] = sol[n]!));
    const sse = rows.reduce((s, row) => s + (dot(row, x) - 1) ** 2, 0);
    if (!best || sse < best.sse) best = { x, sse };
  }
  if (!best) return undefined; // cannot happen for positive data: some single term always fits with a positive coefficient
  const [overheadMillis, prefillMillisPerToken, decodeStepMillis, decodeMillisPerContextToken] = best.x as [number, number, number, number];
  return { overheadMillis, prefillMillisPerToken, decodeStepMillis, decodeMillisPerContextToken };
}

/** Max and mean relative error of `model` over the usable points ({0, 0} when there are none). */
export function latencyFitError(model: LatencyModel, points: readonly LatencyPoint[]): LatencyFitError {
  const errs = usable(points).map((p) => Math.abs(aloneLatencyMillis(model, p.input, p.output) - p.latencyMillis) / p.latencyMillis);
  if (errs.length === 0) return { max: 0, mean: 0 };
  return { max: Math.max(...errs), mean: errs.reduce((s, v) => s + v, 0) / errs.length };
}

/** Each coefficient to `digits` significant digits (what the GPUProfile stores: more would be false precision). */
export function roundLatencyModel(m: LatencyModel, digits = 4): LatencyModel {
  const r = (v: number) => Number(v.toPrecision(digits));
  return {
    overheadMillis: r(m.overheadMillis),
    prefillMillisPerToken: r(m.prefillMillisPerToken),
    decodeStepMillis: r(m.decodeStepMillis),
    decodeMillisPerContextToken: r(m.decodeMillisPerContextToken),
  };
}

/** One line for the end of a run: the model in the formula's shape, and how well it matches its points. */
export function formatLatencyFit(m: LatencyModel, points: readonly LatencyPoint[]): string {
  const e = latencyFitError(m, points);
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  return (
    `latency alone ≈ ${m.overheadMillis} ms + ${m.prefillMillisPerToken} ms × input + output × (${m.decodeStepMillis} ms + ` +
    `${m.decodeMillisPerContextToken} ms × context) (fitted to ${usable(points).length} alone probes: max error ${pct(e.max)}, mean ${pct(e.mean)})`
  );
}
