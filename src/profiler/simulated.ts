/**
 * The emulator in SIMULATED time, as a profiling endpoint: `runProfile(options, simulatedEndpoint('A10G'))`
 * profiles the emulator's engine (src/emulator/engine.ts, the same scheduler `melangectl emulate` serves over
 * HTTP) with no sockets and no clock, in a fraction of a second per probe.
 *
 * Why it exists: the HTTP emulator's accuracy is bounded by the real clock. Above ~100-150 requests per REAL
 * second its event loop bunches arrivals (docs/profiling.md), so a time-dilated run cannot go much faster than
 * a hundred requests a second, while a capacity precise to ~1% needs probes of ~20,000 requests near the answer
 * (the Poisson luck of a finite run; docs/profiling.md measures it). Here probes cost CPU only, so the search,
 * the measurement window and the conservative derivation can be checked against the emulator's true capacity at
 * that precision.
 *
 * Fidelity: the arrivals are exactly the load generator's for the same seed (same generator, same draws per
 * request), a request's latency is its emulated arrival-to-last-token time (what a client with zero overhead
 * sees), and the window statistics are measure.ts's, so a probe here and over HTTP measure the same arrival
 * sequence the same way; an oversized request gets the emulator's own 400 message. Not modelled: the load
 * generator's in-flight cap (512), HTTP and event-loop delays (the point).
 */
import { exponential, mulberry32 } from '../common/random.js';
import { contextError, enginePerf, resolveGpuType, simulate, type EngineLimits, type EnginePerf, type RequestSpec } from '../emulator/index.js';
import { EMULATOR_HEADER, EMULATOR_SPEED_HEADER, type LoadDeps } from '../loadgen/run.js';
import { sizeSampler } from '../loadgen/distribution.js';
import { clientWindow, DEFAULT_TRIM, toMeasurement, type ProbeRequest } from './measure.js';
import { EndpointError, type ProbeContext, type ProbeOutcome, type ProbeSpec } from './probe.js';

/**
 * Target seconds per wall second a simulated endpoint reports. Wall-clock bounds (probe caps, the drain
 * period, --max-duration) are meant for a real clock; at this scale none of them binds a simulated probe.
 */
export const SIMULATED_TIME_SCALE = 1e6;

export interface SimulatedEndpoint {
  /** Answers GET /v1/models like the emulator (no /metrics: timing is the simulation's own). */
  fetch: typeof fetch;
  probe: (spec: ProbeSpec, ctx: ProbeContext, deps: LoadDeps) => Promise<ProbeOutcome>;
  /** The label profiles and progress show: '<GPU> (simulated time)'. */
  name: string;
}

export function simulatedEndpoint(gpu: string, opts: { model?: string; limits?: Partial<EngineLimits> } = {}): SimulatedEndpoint {
  const type = resolveGpuType(gpu);
  if (!type) throw new Error(`gpu: no emulator model for "${gpu}" (L4, A10G, A100-80GB, H100-80GB)`);
  const perf = enginePerf(type);
  const model = opts.model ?? 'meta-llama/Llama-2-7b-hf';
  const name = `${type} (simulated time)`;
  const doFetch = (async (input: string | URL | Request) => {
    const headers = { [EMULATOR_HEADER]: name, [EMULATOR_SPEED_HEADER]: String(SIMULATED_TIME_SCALE), 'content-type': 'application/json' };
    if (new URL(String(input instanceof Request ? input.url : input)).pathname.endsWith('/v1/models')) {
      return new Response(JSON.stringify({ object: 'list', data: [{ id: model, object: 'model', owned_by: 'melange-emulator' }] }), { status: 200, headers });
    }
    return new Response('not found', { status: 404, headers });
  }) as typeof fetch;
  return { fetch: doFetch, probe: (spec, ctx) => Promise.resolve(simulatedProbe(perf, spec, ctx, opts.limits)), name };
}

/**
 * The arrival times (target seconds from the start) the load generator (runLoad) uses for `n` fixed-size requests
 * at `rate` with `seed`: the same generator, and its size sampler's draws between arrivals, so the sequence is
 * identical, not merely alike.
 */
export function poissonArrivals(seed: number, rate: number, n: number, input: number, output: number): number[] {
  const random = mulberry32(seed);
  const sample = sizeSampler({ name: 'fixed', ranges: [{ probability: 1, inputMin: input, inputMax: input, outputMin: output, outputMax: output }] }, random);
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += exponential(random, rate);
    sample();
    out.push(t);
  }
  return out;
}

const counts = (sent: number, completed: number, incomplete: number, window: number) => ({ sent, completed, errors: sent - completed - incomplete, incomplete, window });

/** One probe (see runProbe in probe.ts for the HTTP twin) run through a fresh engine in emulated time. */
export function simulatedProbe(perf: EnginePerf, spec: ProbeSpec, ctx: ProbeContext, limits: Partial<EngineLimits> = {}): ProbeOutcome {
  const started = performance.now();
  const n = Math.max(1, Math.floor(spec.requests));
  const base = { kind: spec.kind, nominalRate: spec.kind === 'alone' ? 0 : spec.rate, timing: 'client' as const, at: new Date().toISOString() };
  const wall = () => (performance.now() - started) / 1000;
  const refused = contextError(perf, spec.input, spec.output);
  if (refused) {
    return { record: { ...base, outcome: 'rejected', error: `http_400: ${refused}`, requests: counts(n, 0, 0, 0), wallSeconds: wall() }, truncated: false };
  }

  if (spec.kind === 'alone') {
    // One after the other on an idle engine: every one of them takes what the first takes.
    const r = simulate(perf, [{ id: '0', inputTokens: spec.input, outputTokens: spec.output, arrival: 0 }], limits).finished[0]!;
    const latency = (r.finish - r.arrival) * 1000;
    const measurement = toMeasurement(spec.input, spec.output, { rate: 0, throughput: 0, meanTpotMillis: latency / spec.output, meanTtftMillis: (r.firstToken - r.arrival) * 1000 });
    return { record: { ...base, outcome: 'measured', measurement, meanLatencyMillis: Number(latency.toPrecision(6)), requests: counts(n, n, 0, n), wallSeconds: wall() }, truncated: false };
  }

  const arrivalEnd = ctx.arrivalWallS * ctx.timeScale;
  const reqs: RequestSpec[] = [];
  for (const [i, t] of poissonArrivals(ctx.seed, spec.rate, n, spec.input, spec.output).entries()) {
    if (t > arrivalEnd) break;
    reqs.push({ id: String(i), inputTokens: spec.input, outputTokens: spec.output, arrival: t });
  }
  if (reqs.length === 0) throw new EndpointError('no request was due within the arrival window');
  const cutoff = reqs[reqs.length - 1]!.arrival + ctx.drainWallS * ctx.timeScale;
  const byId = new Map(simulate(perf, reqs, limits).finished.map((f) => [f.id, f]));
  let lastFinish = 0;
  const requests: ProbeRequest[] = reqs.map((r, index) => {
    const f = byId.get(r.id)!;
    if (f.finish > cutoff) return { index, sentMs: r.arrival * 1000, status: 'incomplete' };
    lastFinish = Math.max(lastFinish, f.finish);
    return { index, sentMs: r.arrival * 1000, status: 'ok', latencyMs: (f.finish - f.arrival) * 1000, ttftMs: (f.firstToken - f.arrival) * 1000, outputTokens: f.outputTokens };
  });
  const completed = requests.filter((r) => r.status === 'ok').length;
  if (completed === 0) throw new EndpointError(`no request completed (${reqs.length} sent)`);
  const incomplete = reqs.length - completed;
  // Like runLoad: the run ends when the last request finishes, or at the drain limit if some never did.
  const w = clientWindow(requests, spec.output, (incomplete > 0 ? cutoff : lastFinish) * 1000, ctx.trim ?? DEFAULT_TRIM)!;
  return {
    record: { ...base, outcome: 'measured', measurement: toMeasurement(spec.input, spec.output, w), requests: counts(reqs.length, completed, incomplete, w.count), wallSeconds: wall() },
    truncated: reqs.length < n,
  };
}
