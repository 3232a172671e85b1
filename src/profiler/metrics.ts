/**
 * Server-side timing from vLLM's Prometheus metrics (also served, under the same names, by the emulator).
 *
 * Why: the client's clock measures what a user sees, but against a time-dilated emulator (--speed X) every real
 * millisecond of HTTP, JSON and event-loop delay becomes X emulated milliseconds, so client timings are only
 * trustworthy at low speeds. vLLM's own histograms time each request inside the server (the emulator's are in
 * emulated seconds), so the difference of two scrapes gives the exact mean latency and TTFT of the requests that
 * finished between them, whatever the speed. The profiler scrapes when a probe's warm-up share of requests has
 * completed and again when all but its drain share have: the requests finishing in between are the steady state.
 */

/** The series the profiler reads (sums over every label set except `le`). */
export const E2E = 'vllm:e2e_request_latency_seconds';
export const TTFT = 'vllm:time_to_first_token_seconds';

export interface HistogramSnapshot {
  sum: number;
  count: number;
  /** Cumulative bucket counts by upper bound (le), ascending; +Inf last. */
  buckets: Array<[number, number]>;
}

export interface MetricsSnapshot {
  e2e: HistogramSnapshot;
  ttft?: HistogramSnapshot;
}

function parseValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

/** Sums `name`'s histogram over all label sets in a Prometheus text exposition; undefined when absent. */
export function parseHistogram(text: string, name: string): HistogramSnapshot | undefined {
  let sum = 0;
  let count = 0;
  let seen = false;
  const le = new Map<number, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      // A declared histogram with no observations yet has only its HELP/TYPE lines.
      if (line === `# TYPE ${name} histogram`) seen = true;
      continue;
    }
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    if (space < 0) continue;
    const metric = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space).trim();
    const value = parseValue(line.slice(space + 1).trim());
    if (Number.isNaN(value)) continue;
    if (metric === `${name}_sum`) { sum += value; seen = true; }
    else if (metric === `${name}_count`) { count += value; seen = true; }
    else if (metric === `${name}_bucket`) {
      const m = /le="([^"]+)"/.exec(line);
      if (!m) continue;
      const bound = parseValue(m[1]!);
      le.set(bound, (le.get(bound) ?? 0) + value);
      seen = true;
    }
  }
  if (!seen) return undefined;
  return { sum, count, buckets: [...le.entries()].sort((a, b) => a[0] - b[0]) };
}

export function parseSnapshot(text: string): MetricsSnapshot | undefined {
  const e2e = parseHistogram(text, E2E);
  if (!e2e) return undefined;
  const ttft = parseHistogram(text, TTFT);
  return { e2e, ...(ttft ? { ttft } : {}) };
}

/** b − a, bucket by bucket (both from the same server; a counter reset gives undefined). */
export function histogramDelta(a: HistogramSnapshot, b: HistogramSnapshot): HistogramSnapshot | undefined {
  if (b.count < a.count) return undefined;
  const before = new Map(a.buckets);
  return { sum: b.sum - a.sum, count: b.count - a.count, buckets: b.buckets.map(([le, c]) => [le, c - (before.get(le) ?? 0)]) };
}

/**
 * Quantile q (0-1) of a histogram by linear interpolation inside the bucket that holds it (Prometheus'
 * histogram_quantile). Coarse: vLLM's latency buckets are up to 2x apart. undefined for an empty histogram.
 */
export function histogramQuantile(h: HistogramSnapshot, q: number): number | undefined {
  if (h.count <= 0 || h.buckets.length === 0) return undefined;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of h.buckets) {
    if (c >= rank) {
      if (!Number.isFinite(le)) return prevLe; // in the +Inf bucket: the highest finite bound is all we know
      const inBucket = c - prevCount;
      return inBucket > 0 ? prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket : le;
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}

/** GET {base}/metrics and parse; undefined when the endpoint has no vLLM latency histogram. */
export async function scrape(base: string, doFetch: typeof fetch, timeoutMs = 5000): Promise<MetricsSnapshot | undefined> {
  const url = new URL('metrics', base.endsWith('/') ? base : `${base}/`).href;
  const res = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) {
    await res.body?.cancel();
    return undefined;
  }
  return parseSnapshot(await res.text());
}
