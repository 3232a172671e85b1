/**
 * Turning one probe's requests into a load-test point (pure). A probe sends n fixed-size requests as a Poisson
 * process; the first and last `trim` share of them are warm-up (the server fills up) and drain (it empties),
 * so the point describes the MIDDLE of the run, where the server is in steady state:
 *
 *   - rate       = arrivals per second over the middle requests (by arrival order), measured between the 10th and
 *                  90th percentiles of their arrival times. The load actually offered — a short Poisson run's
 *                  realised rate differs from the nominal one;
 *   - throughput = completions per second of the same requests, between the same percentiles of their finish
 *                  times. When the server keeps up the two match; when a queue grows the finish times spread out
 *                  (derive.ts's queue test);
 *   - mean TPOT  = the paper's per-request TPOT (latency / output tokens), averaged over the window, from the
 *                  client's clock (client timing) or from the server's vLLM histograms (server timing; see
 *                  metrics.ts), with p99 and mean TTFT alongside.
 *
 * Requests cut off at the end of the drain period count with the time they had waited so far (a lower bound of
 * their TPOT) and stretch the finish span to the cut-off: an overloaded probe can only look worse, never better.
 */
import type { Measurement } from '../api/gpuprofile.js';
import { percentile } from '../loadgen/stats.js';

/** One request of a probe, in target-time milliseconds from the start of the probe. */
export interface ProbeRequest {
  index: number;
  sentMs: number;
  status: 'ok' | 'error' | 'incomplete';
  latencyMs?: number;
  ttftMs?: number;
  outputTokens?: number;
}

export const DEFAULT_TRIM = 0.2;

/** Indices [from, to) of the middle requests of a probe of n (at least one request, at least 2 when n >= 2). */
export function middleRange(n: number, trim = DEFAULT_TRIM): [number, number] {
  const t = Math.floor(n * trim);
  const from = Math.min(t, Math.max(0, n - 2));
  const to = Math.max(from + Math.min(2, n), n - t);
  return [from, Math.min(n, to)];
}

export interface WindowStats {
  /** Requests in the window. */
  count: number;
  rate: number;
  throughput: number;
  meanTpotMillis: number;
  p99TpotMillis?: number;
  meanTtftMillis?: number;
  meanLatencyMillis: number;
  incomplete: number;
}

/**
 * Client-timed window statistics. `cutoffMs` = when the probe stopped waiting (target time from its start);
 * requests without a latency count as if they finished then. `output` = tokens each request asked for.
 */
export function clientWindow(requests: readonly ProbeRequest[], output: number, cutoffMs: number, trim = DEFAULT_TRIM): WindowStats | undefined {
  const sorted = [...requests].sort((a, b) => a.sentMs - b.sentMs || a.index - b.index);
  const [from, to] = middleRange(sorted.length, trim);
  const win = sorted.slice(from, to);
  if (win.length === 0) return undefined;
  const tpots: number[] = [];
  const ttfts: number[] = [];
  const arrivals: number[] = [];
  const finishes: number[] = [];
  let latSum = 0;
  let incomplete = 0;
  for (const r of win) {
    const done = r.status === 'ok' && r.latencyMs !== undefined;
    const latency = done ? r.latencyMs! : Math.max(0, cutoffMs - r.sentMs);
    if (!done) incomplete++;
    const tokens = done && r.outputTokens !== undefined && r.outputTokens > 0 ? r.outputTokens : output;
    tpots.push(latency / tokens);
    latSum += latency;
    if (done && r.ttftMs !== undefined) ttfts.push(r.ttftMs);
    arrivals.push(r.sentMs);
    finishes.push(r.sentMs + latency);
  }
  const m = win.length;
  const { rate, throughput } = spanRates(arrivals, finishes);
  tpots.sort((x, y) => x - y);
  return {
    count: m,
    rate,
    throughput,
    meanTpotMillis: tpots.reduce((s, v) => s + v, 0) / m,
    p99TpotMillis: percentile(tpots, 99)!,
    ...(ttfts.length > 0 ? { meanTtftMillis: ttfts.reduce((s, v) => s + v, 0) / ttfts.length } : {}),
    meanLatencyMillis: latSum / m,
    incomplete,
  };
}

/** Share of the window's requests between the span quantiles: robust to a few late deliveries at either end. */
export const SPAN_QUANTILE = 0.1;

/**
 * Arrival and completion rates of the same requests: k / (q90 - q10) of their arrival times and of their finish
 * times, k = the requests between the quantiles. Quantiles rather than first/last, so one request delivered late
 * (a garbage-collection pause, a busy machine; multiplied by the time dilation) cannot fake a growing queue.
 */
export function spanRates(arrivalsMs: readonly number[], finishesMs: readonly number[]): { rate: number; throughput: number } {
  const m = arrivalsMs.length;
  if (m < 2) return { rate: 0, throughput: 0 };
  const a = [...arrivalsMs].sort((x, y) => x - y);
  const f = [...finishesMs].sort((x, y) => x - y);
  const q = m >= 20 ? SPAN_QUANTILE : 0;
  const k = (m - 1) * (1 - 2 * q);
  const aSpan = percentile(a, 100 * (1 - q))! - percentile(a, 100 * q)!;
  const fSpan = percentile(f, 100 * (1 - q))! - percentile(f, 100 * q)!;
  const rate = aSpan > 0 ? (k / aSpan) * 1000 : 0;
  return { rate, throughput: fSpan > 0 ? (k / fSpan) * 1000 : rate };
}

const r6 = (v: number) => Number(v.toPrecision(6));

/** The GPUProfile measurement for a window (numbers rounded to 6 significant digits). */
export function toMeasurement(input: number, output: number, w: Pick<WindowStats, 'rate' | 'throughput' | 'meanTpotMillis' | 'p99TpotMillis' | 'meanTtftMillis'>): Measurement {
  return {
    input,
    output,
    rate: r6(w.rate),
    meanTpotMillis: r6(w.meanTpotMillis),
    ...(w.p99TpotMillis !== undefined ? { p99TpotMillis: r6(w.p99TpotMillis) } : {}),
    ...(w.meanTtftMillis !== undefined ? { meanTtftMillis: r6(w.meanTtftMillis) } : {}),
    throughput: r6(w.throughput),
  };
}
