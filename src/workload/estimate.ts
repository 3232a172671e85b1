/**
 * Workload estimation from Prometheus query results (pure: no I/O, the clock is a parameter).
 *
 * Input: the instant vectors of the queries in queries.ts. Output: the total request rate (req/s) and the
 * joint [input range][output range] distribution (fractions summing to 1, or all zeros for zero traffic), or
 * a typed failure that the controller turns into `MetricsAvailable=False` while it keeps the last allocation.
 *
 * Headroom is NOT applied here: the solver multiplies the rate by (1 + policy.headroomPercent/100).
 * See docs/workload.md for the reasoning behind each rule.
 */
import type { Sample } from './prometheus-client.js';

export type EstimateFailureReason = 'NoData' | 'Stale' | 'InvalidData';

export interface EstimateConfig {
  /** The service's bucket edges (spec.buckets). */
  inputEdges: readonly number[];
  outputEdges: readonly number[];
  /** The averaging window (spec.workload.prometheus.window) in ms. */
  windowMs: number;
  /** The caller's clock; the queries were evaluated at this time. */
  now: Date;
  /** Newest raw sample older than this → Stale. */
  staleAfterMs: number;
  /** Share of the traffic whose bucket labels do not match the service's edges above which the data is rejected. */
  maxUnknownFraction: number;
  /** Below this many requests in the window the distribution is used but flagged as noisy. */
  minRequestsForDistribution: number;
}

export const DEFAULT_STALE_AFTER_MS = 120_000;
export const DEFAULT_MAX_UNKNOWN_FRACTION = 0.1;
export const DEFAULT_MIN_REQUESTS_FOR_DISTRIBUTION = 100;

export interface WorkloadEstimate {
  ok: true;
  /** Robust rate: max(window mean, recent rate). Before headroom. */
  requestsPerSecond: number;
  windowMeanRate: number;
  /** Rate over the short window; undefined when that query returned nothing. */
  recentRate: number | undefined;
  /** [input][output] fractions summing to 1; all zeros when there was no traffic. */
  distribution: number[][];
  /** Requests the window mean corresponds to (windowMeanRate × window). */
  requestsInWindow: number;
  /** Age of the newest raw sample at `now`. */
  lastSampleAgeMs: number;
  /** Rate (req/s) of requests whose bucket labels did not match the service's edges (router only). */
  unknownRate: number;
  warnings: string[];
}

export interface EstimateFailure {
  ok: false;
  reason: EstimateFailureReason;
  message: string;
  /** True when not a single series matched (neither now nor in the window): the caller may try another source. */
  seriesAbsent: boolean;
}

export type EstimateResult = WorkloadEstimate | EstimateFailure;

const fail = (reason: EstimateFailureReason, message: string, seriesAbsent = false): EstimateFailure => ({
  ok: false,
  reason,
  message,
  seriesAbsent,
});

// ---------------------------------------------------------------------------------------------
// Small pure helpers (exported for tests and reuse)

/**
 * The rate to plan for: the larger of the window mean and the recent (short-window) rate. Rising traffic
 * shows in the short window first, so capacity follows it within one short window; falling traffic lowers
 * the estimate only once the whole window has come down, so scale-down is slow and a single quiet minute
 * (or a brief scrape gap) never releases capacity. This asymmetry is what damps flapping.
 */
export function robustRate(windowMean: number, recent: number | undefined): number {
  return recent === undefined ? windowMean : Math.max(windowMean, recent);
}

const labelText = (labels: Readonly<Record<string, string>>): string => {
  const entries = Object.entries(labels).filter(([k]) => k !== '__name__');
  return entries.length === 0 ? '{}' : `{${entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
};

/** A message naming the first non-finite or negative sample of `samples`, or undefined if all are fine. */
export function invalidSampleMessage(what: string, samples: readonly Sample[]): string | undefined {
  const bad = samples.find((s) => !Number.isFinite(s.value) || s.value < 0 || !Number.isFinite(s.timestamp));
  if (!bad) return undefined;
  const count = samples.filter((s) => !Number.isFinite(s.value) || s.value < 0 || !Number.isFinite(s.timestamp)).length;
  return `${what}: ${count} sample(s) not a finite non-negative number, e.g. ${labelText(bad.labels)} = ${bad.value}`;
}

/**
 * Index of the range whose upper edge is the label value ("25" → the range with edge 25). "+Inf" maps to the
 * last range (longer requests count there). Undefined for values that are not one of the edges.
 */
export function edgeIndex(label: string | undefined, edges: readonly number[]): number | undefined {
  if (label === undefined || label === '') return undefined;
  if (label === '+Inf' || label === 'Inf') return edges.length - 1;
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(label)) return undefined;
  const v = Number(label);
  const i = edges.indexOf(v);
  return i >= 0 ? i : undefined;
}

export const zeroMatrix = (rows: number, cols: number): number[][] =>
  Array.from({ length: rows }, () => new Array<number>(cols).fill(0));

/** The matrix divided by its sum; all zeros if the sum is 0. */
export function normalizeMatrix(m: readonly (readonly number[])[]): number[][] {
  const sum = m.reduce((a, row) => a + row.reduce((b, v) => b + v, 0), 0);
  return m.map((row) => row.map((v) => (sum > 0 ? v / sum : 0)));
}

/** a ⊗ b: the joint distribution of two independent marginals. */
export function outerProduct(a: readonly number[], b: readonly number[]): number[][] {
  return a.map((x) => b.map((y) => x * y));
}

/** Newest sample time (ms since epoch) of a `max(timestamp(...))` result, or undefined if empty. */
function newestSampleMs(lastSeen: readonly Sample[]): number | undefined {
  let newest: number | undefined;
  for (const s of lastSeen) if (Number.isFinite(s.value)) newest = Math.max(newest ?? -Infinity, s.value * 1000);
  return newest;
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Number(n.toPrecision(3)).toString());
const sumValues = (samples: readonly Sample[]) => samples.reduce((a, s) => a + s.value, 0);

function freshness(lastSeen: readonly Sample[], cfg: EstimateConfig, what: string): { ageMs: number } | EstimateFailure {
  const newest = newestSampleMs(lastSeen);
  if (newest === undefined) {
    return fail(
      'Stale',
      `${what}: series were reported within the ${fmt(cfg.windowMs / 1000)} s window but none is current ` +
        '(target down, series removed, or scrapes failing)',
    );
  }
  const ageMs = cfg.now.getTime() - newest;
  if (ageMs > cfg.staleAfterMs) {
    return fail(
      'Stale',
      `${what}: newest sample is ${fmt(ageMs / 1000)} s old (bound ${fmt(cfg.staleAfterMs / 1000)} s) at ${cfg.now.toISOString()}`,
    );
  }
  return { ageMs: Math.max(0, ageMs) };
}

// ---------------------------------------------------------------------------------------------
// Router metrics: melange_router_requests_total{namespace, service, input_le, output_le, pool, code}

export interface RouterQueryResults {
  /** sum by (input_le, output_le) (rate(requests[window])) */
  bucketRates: readonly Sample[];
  /** sum(rate(requests[shortWindow])) */
  recentRate: readonly Sample[];
  /** max(timestamp(requests)) — the newest raw sample, unix seconds */
  lastSeen: readonly Sample[];
}

export function estimateFromRouter(r: RouterQueryResults, cfg: EstimateConfig): EstimateResult {
  const what = 'router metrics';
  for (const [name, v] of [['bucket rates', r.bucketRates], ['recent rate', r.recentRate], ['last-seen timestamp', r.lastSeen]] as const) {
    const msg = invalidSampleMessage(`${what} ${name}`, v);
    if (msg) return fail('InvalidData', msg);
  }
  if (r.bucketRates.length === 0 && r.lastSeen.length === 0) {
    return fail('NoData', `${what}: no series match (not scraped, or no request has been served yet)`, true);
  }
  const fresh = freshness(r.lastSeen, cfg, what);
  if ('ok' in fresh) return fresh;
  if (r.bucketRates.length === 0) {
    return fail(
      'NoData',
      `${what}: series exist but have fewer than two samples in the ${fmt(cfg.windowMs / 1000)} s window ` +
        '(just appeared, or the window is shorter than two scrape intervals)',
    );
  }

  const nIn = cfg.inputEdges.length;
  const nOut = cfg.outputEdges.length;
  const known = zeroMatrix(nIn, nOut);
  let knownRate = 0;
  let unknownRate = 0;
  const unknownLabels = new Set<string>();
  for (const s of r.bucketRates) {
    const i = edgeIndex(s.labels.input_le, cfg.inputEdges);
    const j = edgeIndex(s.labels.output_le, cfg.outputEdges);
    if (i === undefined || j === undefined) {
      unknownRate += s.value;
      if (s.value > 0) unknownLabels.add(`input_le=${JSON.stringify(s.labels.input_le ?? '')},output_le=${JSON.stringify(s.labels.output_le ?? '')}`);
      continue;
    }
    const row = known[i];
    if (row) row[j] = (row[j] ?? 0) + s.value;
    knownRate += s.value;
  }
  const windowMean = knownRate + unknownRate;
  const recent = r.recentRate.length > 0 ? sumValues(r.recentRate) : undefined;
  const rps = robustRate(windowMean, recent);
  const warnings: string[] = [];
  const edgesText = `inputEdges [${cfg.inputEdges.join(', ')}], outputEdges [${cfg.outputEdges.join(', ')}]`;
  const unknownList = [...unknownLabels].slice(0, 5).join('; ') + (unknownLabels.size > 5 ? `; … (${unknownLabels.size} in all)` : '');

  if (unknownRate > 0) {
    const share = unknownRate / windowMean;
    if (knownRate === 0 || share > cfg.maxUnknownFraction) {
      return fail(
        'InvalidData',
        `${what}: ${fmt(share * 100)}% of the traffic (${fmt(unknownRate)} req/s) has bucket labels that are not the ` +
          `service's edges (${edgesText}): ${unknownList}. Is the router running with different buckets?`,
      );
    }
    warnings.push(
      `${fmt(share * 100)}% of the traffic (${fmt(unknownRate)} req/s) has bucket labels not among the service's edges ` +
        `(${unknownList}); it counts in the rate and is assumed to be sized like the rest`,
    );
  }
  if (recent === undefined && windowMean > 0) {
    warnings.push('the short-window rate returned no data (short window under two scrape intervals?); using the window mean only');
  }
  if (knownRate === 0 && rps > 0) {
    return fail('InvalidData', `${what}: a recent rate of ${fmt(rps)} req/s but no bucketed request in the window`);
  }
  const requestsInWindow = (windowMean * cfg.windowMs) / 1000;
  if (windowMean === 0 && rps === 0) {
    warnings.push('zero traffic in the window (series are current): plan for the minimum replicas');
  } else if (requestsInWindow < cfg.minRequestsForDistribution) {
    warnings.push(
      `the size distribution rests on only ~${fmt(requestsInWindow)} requests in the window (< ${cfg.minRequestsForDistribution}); ` +
        'it is noisy — a longer window gives a steadier estimate',
    );
  }
  return {
    ok: true,
    requestsPerSecond: rps,
    windowMeanRate: windowMean,
    recentRate: recent,
    distribution: normalizeMatrix(known),
    requestsInWindow,
    lastSampleAgeMs: fresh.ageMs,
    unknownRate,
    warnings,
  };
}

// ---------------------------------------------------------------------------------------------
// vLLM histograms (fallback without the router)

/** A point of a cumulative histogram: the count (or rate) of observations ≤ le. */
export interface CumulativePoint {
  le: number;
  cumulative: number;
}

export interface CumulativeHistogram {
  /** Sorted by le, strictly increasing, monotone non-decreasing cumulative; the last point has le = +Inf. */
  points: CumulativePoint[];
  /** The +Inf point's value: all observations. */
  total: number;
  /** Largest amount subtracted to make the cumulative values monotone (rate() of each bucket is extrapolated separately). */
  monotoneRepair: number;
}

/**
 * Builds a cumulative histogram from `sum by (le) (rate(x_bucket[w]))` samples. Buckets whose `le` labels
 * are numerically equal ("1" and "1.0" from different client versions) are merged. Fails without +Inf.
 */
export function cumulativeFromBuckets(samples: readonly Sample[], what: string): CumulativeHistogram | string {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    const raw = s.labels.le;
    const le = raw === undefined ? undefined : raw === '+Inf' || raw === 'Inf' ? Infinity : /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(raw) ? Number(raw) : undefined;
    if (le === undefined || Number.isNaN(le)) return `${what}: bucket with a missing or malformed le label ${labelText(s.labels)}`;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  if (!byLe.has(Infinity)) return `${what}: no le="+Inf" bucket`;
  const sorted = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  const points: CumulativePoint[] = [];
  let running = 0;
  let repair = 0;
  // Cumulative counts must not decrease with le; rate() extrapolates each bucket series separately, so tiny
  // inversions happen. Like histogram_quantile, take the running maximum.
  for (const [le, c] of sorted) {
    if (c < running) repair = Math.max(repair, running - c);
    running = Math.max(running, c);
    points.push({ le, cumulative: running });
  }
  return { points, total: running, monotoneRepair: repair };
}

/** Cumulative count at x (interpolated linearly inside a bucket; see rebinCumulative). */
export function cumulativeAt(points: readonly CumulativePoint[], x: number): number {
  let prevLe = 0;
  let prevC = 0;
  for (const p of points) {
    if (!Number.isFinite(p.le)) return prevC; // beyond the last finite boundary: nothing is known to be ≤ x
    if (x <= p.le) {
      if (p.le <= prevLe) return p.cumulative;
      return prevC + ((p.cumulative - prevC) * (x - prevLe)) / (p.le - prevLe);
    }
    prevLe = p.le;
    prevC = p.cumulative;
  }
  return prevC;
}

/**
 * Re-bins a cumulative histogram (arbitrary boundaries, e.g. vLLM's 1-2-5 series) onto our ranges
 * (upper edges `edges`, range i = (edges[i-1], edges[i]], the last range also takes everything beyond).
 * C(e) at each edge is interpolated linearly between the surrounding boundaries, i.e. observations are
 * assumed uniform inside a source bucket; the first source bucket starts at 0. Above the largest finite
 * source boundary nothing is known, so C stays flat there and that mass lands in our last range (the
 * conservative choice: it is planned as the largest requests). Returns the mass per range (sums to `total`).
 */
export function rebinCumulative(h: Pick<CumulativeHistogram, 'points' | 'total'>, edges: readonly number[]): number[] {
  const n = edges.length;
  const out = new Array<number>(n).fill(0);
  let prev = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = Math.min(h.total, Math.max(prev, cumulativeAt(h.points, edges[i] ?? 0)));
    out[i] = c - prev;
    prev = c;
  }
  out[n - 1] = Math.max(0, h.total - prev);
  return out;
}

export interface VllmQueryResults {
  /** sum by (le) (rate(vllm:request_prompt_tokens_bucket[window])) */
  promptBuckets: readonly Sample[];
  /** sum by (le) (rate(vllm:request_generation_tokens_bucket[window])) */
  generationBuckets: readonly Sample[];
  /** sum(rate(vllm:request_success_total[window])) */
  successRate: readonly Sample[];
  /** sum(rate(vllm:request_success_total[shortWindow])) */
  recentSuccessRate: readonly Sample[];
  /** max(timestamp(vllm:request_prompt_tokens_count)) */
  lastSeen: readonly Sample[];
}

export const INDEPENDENCE_WARNING =
  'size distribution from vLLM histograms: input and output lengths are measured separately, so the joint ' +
  'distribution assumes they are independent (outer product of the marginals); routing is not size-aware';

export function estimateFromVllm(v: VllmQueryResults, cfg: EstimateConfig): EstimateResult {
  const what = 'vLLM histograms';
  const vectors = [
    ['prompt-token buckets', v.promptBuckets],
    ['generation-token buckets', v.generationBuckets],
    ['success rate', v.successRate],
    ['recent success rate', v.recentSuccessRate],
    ['last-seen timestamp', v.lastSeen],
  ] as const;
  for (const [name, samples] of vectors) {
    const msg = invalidSampleMessage(`${what} ${name}`, samples);
    if (msg) return fail('InvalidData', msg);
  }
  if (v.promptBuckets.length === 0 && v.generationBuckets.length === 0 && v.lastSeen.length === 0 && v.successRate.length === 0) {
    return fail('NoData', `${what}: no series match`, true);
  }
  const fresh = freshness(v.lastSeen, cfg, what);
  if ('ok' in fresh) return fresh;
  if (v.promptBuckets.length === 0 || v.generationBuckets.length === 0) {
    const missing = v.promptBuckets.length === 0 ? 'vllm:request_prompt_tokens' : 'vllm:request_generation_tokens';
    return fail('NoData', `${what}: ${missing} has fewer than two samples in the ${fmt(cfg.windowMs / 1000)} s window`);
  }
  const prompt = cumulativeFromBuckets(v.promptBuckets, 'vllm:request_prompt_tokens');
  if (typeof prompt === 'string') return fail('InvalidData', prompt);
  const gen = cumulativeFromBuckets(v.generationBuckets, 'vllm:request_generation_tokens');
  if (typeof gen === 'string') return fail('InvalidData', gen);

  const warnings: string[] = [INDEPENDENCE_WARNING];
  let windowMean: number;
  if (v.successRate.length > 0) windowMean = sumValues(v.successRate);
  else {
    windowMean = prompt.total;
    warnings.push('vllm:request_success_total is absent; the rate comes from the prompt-token histogram count');
  }
  const recent = v.recentSuccessRate.length > 0 ? sumValues(v.recentSuccessRate) : undefined;
  const rps = robustRate(windowMean, recent);

  if ((prompt.total > 0) !== (gen.total > 0)) {
    return fail('InvalidData', `${what}: one histogram counts requests and the other none (prompt ${fmt(prompt.total)}/s, generation ${fmt(gen.total)}/s)`);
  }
  if (prompt.total === 0 && rps > 0) {
    return fail('InvalidData', `${what}: requests finish at ${fmt(rps)}/s but the token histograms count none`);
  }
  const disagree = (a: number, b: number) => Math.abs(a - b) > 0.2 * Math.max(a, b);
  if (prompt.total > 0 && disagree(prompt.total, gen.total)) {
    warnings.push(`prompt and generation histograms disagree on the request rate (${fmt(prompt.total)}/s vs ${fmt(gen.total)}/s)`);
  }
  if (v.successRate.length > 0 && prompt.total > 0 && disagree(prompt.total, windowMean)) {
    warnings.push(`vllm:request_success_total (${fmt(windowMean)}/s) and the histogram count (${fmt(prompt.total)}/s) disagree`);
  }
  for (const h of [prompt, gen]) {
    if (h.total > 0 && h.monotoneRepair > 0.01 * h.total) {
      warnings.push(`histogram buckets were not monotone (up to ${fmt((h.monotoneRepair / h.total) * 100)}% of the count); repaired`);
      break;
    }
  }

  const requestsInWindow = (windowMean * cfg.windowMs) / 1000;
  let distribution: number[][];
  if (prompt.total === 0) {
    distribution = zeroMatrix(cfg.inputEdges.length, cfg.outputEdges.length);
    warnings.push('zero traffic in the window (series are current): plan for the minimum replicas');
  } else {
    const pIn = rebinCumulative(prompt, cfg.inputEdges).map((m) => m / prompt.total);
    const pOut = rebinCumulative(gen, cfg.outputEdges).map((m) => m / gen.total);
    distribution = normalizeMatrix(outerProduct(pIn, pOut));
    if (requestsInWindow < cfg.minRequestsForDistribution) {
      warnings.push(
        `the size distribution rests on only ~${fmt(requestsInWindow)} requests in the window (< ${cfg.minRequestsForDistribution}); it is noisy`,
      );
    }
  }
  return {
    ok: true,
    requestsPerSecond: rps,
    windowMeanRate: windowMean,
    recentRate: recent,
    distribution,
    requestsInWindow,
    lastSampleAgeMs: fresh.ageMs,
    unknownRate: 0,
    warnings,
  };
}
