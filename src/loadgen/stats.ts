/**
 * Percentiles by linear interpolation between closest ranks (Hyndman & Fan type 7, the default of numpy and
 * R): for n sorted values, p-th percentile = v[h] interpolated at h = (n - 1)·p/100.
 */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], not ${p}`);
  const h = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(h);
  const a = sorted[lo]!;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)]!;
  return a + (h - lo) * (b - a);
}

export interface Summary {
  count: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  min: number | null;
  max: number | null;
}

/** Count, mean, p50/p90/p99, min and max of the finite values (null when there are none). */
export function summarize(values: readonly number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { count: 0, mean: null, p50: null, p90: null, p99: null, min: null, max: null };
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  return {
    count: v.length,
    mean,
    p50: percentile(v, 50)!,
    p90: percentile(v, 90)!,
    p99: percentile(v, 99)!,
    min: v[0]!,
    max: v[v.length - 1]!,
  };
}
