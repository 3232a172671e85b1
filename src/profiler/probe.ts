/**
 * One probe against a live endpoint: fixed-size requests (a bucket's upper edges) sent by the load generator
 * (`runLoad`) as a Poisson process at one rate, turned into a load-test point (measure.ts), with latencies from
 * the server's vLLM histograms when available (metrics.ts) or from the client's clock.
 *
 * Errors are sorted into three kinds, because they mean different things for the profile:
 *   - 4xx (vLLM's 400 "maximum context length", 413, 422): the endpoint refuses this SIZE -> outcome `rejected`,
 *     which the search turns into cannot-serve, never into a measured 0;
 *   - network errors, 5xx, 404 (wrong model): the ENDPOINT is broken or gone -> EndpointError; the probe is not
 *     recorded and the run stops (resumable from its state file);
 *   - requests still running at the end of the drain period: the server did not keep up -> they count as
 *     failures with a lower bound of their latency (measure.ts).
 */
import { runLoad, type LoadDeps, type LoadReport, type RequestResult } from '../loadgen/run.js';
import type { SizeDistribution } from '../loadgen/distribution.js';
import { clientWindow, DEFAULT_TRIM, toMeasurement, type ProbeRequest } from './measure.js';
import { histogramDelta, histogramQuantile, scrape, type MetricsSnapshot } from './metrics.js';
import type { ProbeRecord } from './search.js';

/** The endpoint failed (not the GPU): stop, keep the state, resume later. */
export class EndpointError extends Error {}

export interface ProbeContext {
  url: string;
  model: string;
  api: 'chat' | 'completions';
  /** Target seconds per wall-clock second (the emulator's --speed; 1 for a real server). */
  timeScale: number;
  timing: 'server' | 'client';
  seed: number;
  trim?: number;
  /** Wall-clock seconds during which arrivals may be sent. */
  arrivalWallS: number;
  /** Wall-clock seconds to wait for running requests after the last arrival. */
  drainWallS: number;
  maxInFlight?: number;
  allowRemote?: boolean;
}

export interface ProbeSpec {
  kind: 'alone' | 'load';
  input: number;
  output: number;
  /** Nominal rate (req/s, target time); ignored for the alone probe (its requests go one after the other). */
  rate: number;
  requests: number;
}

export interface ProbeOutcome {
  record: ProbeRecord;
  /** Fewer requests were sent than planned (the arrival window closed first). */
  truncated: boolean;
  report?: LoadReport;
}

const fixedSize = (input: number, output: number): SizeDistribution => ({
  name: `fixed ${input} in / ${output} out`,
  ranges: [{ probability: 1, inputMin: input, inputMax: input, outputMin: output, outputMax: output }],
});

function classifyErrors(results: readonly RequestResult[]): { endpoint?: string; rejected?: string } {
  for (const r of results) {
    if (r.status !== 'error') continue;
    if (r.httpStatus === undefined) {
      if (r.error === 'timeout') continue; // counted as a slow request
      return { endpoint: r.error ?? 'network error' };
    }
    if (r.httpStatus >= 500 || r.httpStatus === 404 || r.httpStatus === 401 || r.httpStatus === 403 || r.httpStatus === 429) {
      return { endpoint: r.error ?? `HTTP ${r.httpStatus}` };
    }
  }
  const rej = results.find((r) => r.status === 'error' && r.httpStatus !== undefined && r.httpStatus >= 400 && r.httpStatus < 500);
  return rej ? { rejected: rej.error ?? `HTTP ${rej.httpStatus}` } : {};
}

export async function runProbe(spec: ProbeSpec, ctx: ProbeContext, deps: LoadDeps = {}): Promise<ProbeOutcome> {
  const doFetch = deps.fetch ?? fetch;
  const now = deps.now ?? (() => performance.now());
  const trim = ctx.trim ?? DEFAULT_TRIM;
  const alone = spec.kind === 'alone';
  const n = Math.max(1, Math.floor(spec.requests));
  const server = ctx.timing === 'server';

  const snap = async (): Promise<MetricsSnapshot | undefined> => {
    try {
      return await scrape(ctx.url, doFetch);
    } catch {
      return undefined;
    }
  };
  // Scrapes: before; after the warm-up share of completions; after all but the drain share; after the run.
  const k1 = Math.max(1, Math.floor(n * trim));
  const k2 = Math.max(k1 + 1, n - Math.floor(n * trim));
  const s0 = server ? await snap() : undefined;
  let s1: Promise<MetricsSnapshot | undefined> | undefined;
  let s2: Promise<MetricsSnapshot | undefined> | undefined;

  const started = now();
  const report = await runLoad(
    {
      url: ctx.url,
      // The alone probe: all requests due at once, one in flight at a time -> back to back, unloaded.
      rate: alone ? 1e6 : spec.rate,
      requests: n,
      durationS: ctx.arrivalWallS,
      distribution: fixedSize(spec.input, spec.output),
      api: ctx.api,
      model: ctx.model,
      // Server timing needs no stream (TTFT comes from the server's histogram): one response per request instead
      // of one chunk per token keeps the client light, which matters at high request rates and time dilation.
      stream: !server,
      timeScale: ctx.timeScale,
      seed: ctx.seed,
      maxInFlight: alone ? 1 : (ctx.maxInFlight ?? 512),
      // Whole seconds: the load generator hands this to AbortSignal.timeout, which wants integer milliseconds.
      requestTimeoutS: Math.ceil(ctx.arrivalWallS + ctx.drainWallS + 30),
      drainS: ctx.drainWallS,
      ...(ctx.allowRemote ? { allowRemote: true } : {}),
      onResult: (_r, done) => {
        if (!server || alone) return;
        if (done === k1) s1 = snap();
        if (done === k2) s2 = snap();
      },
    },
    deps,
  );
  const wallSeconds = (now() - started) / 1000;
  const s3 = server ? await snap() : undefined;
  const [m1, m2] = [await s1, await s2];

  const errs = classifyErrors(report.results);
  if (errs.endpoint) throw new EndpointError(errs.endpoint);
  const counts = { sent: report.sent, completed: report.completed, errors: report.errors, incomplete: report.incomplete, window: 0 };
  const base = { kind: spec.kind, nominalRate: alone ? 0 : spec.rate, requests: counts, wallSeconds, at: new Date().toISOString() } as const;
  if (errs.rejected) {
    return { record: { ...base, outcome: 'rejected', error: errs.rejected, timing: ctx.timing }, truncated: false, report };
  }
  if (report.completed === 0) throw new EndpointError(`no request completed (${report.sent} sent, ${report.incomplete} still running at the drain limit)`);

  const scale = ctx.timeScale;
  const requests: ProbeRequest[] = report.results.map((r) => ({
    index: r.index,
    sentMs: r.sentAtMs * scale,
    status: r.status === 'ok' ? 'ok' : 'incomplete',
    ...(r.latencyMs !== undefined ? { latencyMs: r.latencyMs } : {}),
    ...(r.ttftMs !== undefined ? { ttftMs: r.ttftMs } : {}),
    ...(r.completionTokens !== undefined ? { outputTokens: r.completionTokens } : {}),
  }));
  const cutoffMs = report.wallSeconds * 1000 * scale;
  const truncated = report.sent < n;

  if (alone) {
    const done = requests.filter((r) => r.status === 'ok');
    let meanLatency = done.reduce((s, r) => s + (r.latencyMs ?? 0), 0) / done.length;
    let meanTtft: number | undefined;
    let timing = ctx.timing;
    const d = s0 && s3 ? histogramDelta(s0.e2e, s3.e2e) : undefined;
    if (server && d && d.count > 0) {
      meanLatency = (d.sum / d.count) * 1000;
      const t = s0!.ttft && s3!.ttft ? histogramDelta(s0!.ttft, s3!.ttft) : undefined;
      if (t && t.count > 0) meanTtft = (t.sum / t.count) * 1000;
    } else {
      timing = 'client';
      const tt = done.filter((r) => r.ttftMs !== undefined);
      if (tt.length > 0) meanTtft = tt.reduce((s, r) => s + r.ttftMs!, 0) / tt.length;
    }
    const measurement = toMeasurement(spec.input, spec.output, {
      rate: 0,
      throughput: 0,
      meanTpotMillis: meanLatency / spec.output,
      ...(meanTtft !== undefined ? { meanTtftMillis: meanTtft } : {}),
    });
    counts.window = done.length;
    return { record: { ...base, outcome: 'measured', measurement, meanLatencyMillis: Number(meanLatency.toPrecision(6)), timing }, truncated, report };
  }

  const w = clientWindow(requests, spec.output, cutoffMs, trim);
  if (!w) throw new EndpointError('no request in the measurement window');
  counts.window = w.count;
  let stats: { meanTpotMillis: number; p99TpotMillis?: number; meanTtftMillis?: number } = {
    meanTpotMillis: w.meanTpotMillis,
    ...(w.p99TpotMillis !== undefined ? { p99TpotMillis: w.p99TpotMillis } : {}),
    ...(w.meanTtftMillis !== undefined ? { meanTtftMillis: w.meanTtftMillis } : {}),
  };
  let timing: 'server' | 'client' = 'client';
  if (server) {
    // The window between the warm-up and drain scrapes (or the whole run if a scrape is missing).
    const a = m1 ?? s0;
    const b = m2 ?? s3;
    const d = a && b ? histogramDelta(a.e2e, b.e2e) : undefined;
    if (d && d.count >= Math.min(5, n)) {
      timing = 'server';
      const meanTpot = (d.sum / d.count / spec.output) * 1000;
      const p99 = histogramQuantile(d, 0.99);
      const t = a!.ttft && b!.ttft ? histogramDelta(a!.ttft, b!.ttft) : undefined;
      stats = {
        // Requests cut off at the drain limit are not in the server's histogram: never report better than the
        // client's lower bound then.
        meanTpotMillis: w.incomplete > 0 ? Math.max(meanTpot, w.meanTpotMillis) : meanTpot,
        ...(p99 !== undefined ? { p99TpotMillis: (p99 / spec.output) * 1000 } : {}),
        ...(t && t.count > 0 ? { meanTtftMillis: (t.sum / t.count) * 1000 } : {}),
      };
    }
  }
  const measurement = toMeasurement(spec.input, spec.output, { rate: w.rate, throughput: w.throughput, ...stats });
  return { record: { ...base, outcome: 'measured', measurement, timing }, truncated, report };
}
