/**
 * Discrete-event simulation of the engine in emulated time (no timers, no I/O, deterministic): used by the
 * unit tests and to compute the emulator's "true" capacity per size bucket, which the profiler (P7) should
 * recover by measurement.
 */
import { Engine, type EngineLimits, type FinishedRequest, type RequestSpec } from './engine.js';
import { enginePerf, type EnginePerf, type GpuModel, type GpuType } from './gpu-models.js';
import { exponential, mulberry32 } from '../common/random.js';

export interface SimulationResult {
  finished: FinishedRequest[];
  /** Emulated seconds from 0 to the last token. */
  makespan: number;
  steps: number;
  preemptions: number;
  /** Largest number of requests running in one iteration. */
  maxRunning: number;
  maxWaiting: number;
}

/** Runs `requests` (any order) through a fresh engine until all finish. */
export function simulate(perf: EnginePerf, requests: readonly RequestSpec[], limits: Partial<EngineLimits> = {}, maxSteps = 50_000_000): SimulationResult {
  const engine = new Engine(perf, limits);
  const pending = [...requests].sort((a, b) => a.arrival - b.arrival);
  const finished: FinishedRequest[] = [];
  let next = 0;
  let t = 0;
  let steps = 0;
  let maxRunning = 0;
  let maxWaiting = 0;
  while (next < pending.length || !engine.idle) {
    while (next < pending.length && pending[next]!.arrival <= t) engine.add(pending[next++]!);
    const step = engine.schedule(t);
    if (!step) {
      const a = next < pending.length ? pending[next]!.arrival : engine.nextArrival();
      if (a === undefined || a <= t) throw new Error('simulation stalled');
      t = a;
      continue;
    }
    const s = engine.stats();
    maxRunning = Math.max(maxRunning, s.running);
    maxWaiting = Math.max(maxWaiting, s.waiting);
    t = step.end;
    finished.push(...engine.complete(step).finished);
    if (++steps > maxSteps) throw new Error(`simulation exceeded ${maxSteps} steps`);
  }
  return { finished, makespan: t, steps, preemptions: engine.stats().preemptions, maxRunning, maxWaiting };
}

/** The paper's per-request TPOT: request latency (queueing and prefill included) / output tokens. */
export const paperTpot = (r: FinishedRequest): number => (r.finish - r.arrival) / r.outputTokens;

export interface CapacityOptions {
  /** Poisson requests per trial (default 300). */
  requests?: number;
  /** Share of the first and of the last requests left out of the mean (warm-up, drain), default 0.2. */
  trim?: number;
  seed?: number;
  /** Bisection steps on the rate (default 18: ~4e-6 of the bracket). */
  iterations?: number;
  limits?: Partial<EngineLimits>;
  /** Expected TPOT (s) used to size a trial (default 0.1; emulatedMaxThroughput passes the SLO). */
  sloHintS?: number;
}

/** A trial's arrivals span at least this many request lifetimes (output tokens x SLO)... */
export const MIN_LIFETIMES = 20;
/** ...but never more than this many requests. */
export const MAX_TRIAL_REQUESTS = 20_000;

export interface RateTrial {
  /** Mean paper-TPOT (s) over the measured (middle) requests. */
  meanTpotS: number;
  /** Finish-time span / arrival-time span of the measured requests: ~1 when the server keeps up, > 1 when a queue builds. */
  spanRatio: number;
}

/**
 * Fixed-size requests arriving as a Poisson process at `rate` req/s, measured over the middle of the run.
 * Common random numbers: the same seed gives the same unit inter-arrival sequence at every rate, so the
 * result is (nearly) monotone in the rate.
 */
export function trialAtRate(
  perf: EnginePerf,
  input: number,
  output: number,
  rate: number,
  opts: CapacityOptions = {},
): RateTrial {
  // Enough requests that arrivals span many request lifetimes: with a short run, an overloaded server
  // that batches everything at once can look fine.
  const lifetime = output * (opts.sloHintS ?? 0.1);
  const n = Math.min(MAX_TRIAL_REQUESTS, Math.max(5, opts.requests ?? 300, Math.ceil(rate * lifetime * MIN_LIFETIMES)));
  const random = mulberry32(opts.seed ?? 1);
  const reqs: RequestSpec[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += exponential(random, rate);
    reqs.push({ id: String(i), inputTokens: input, outputTokens: output, arrival: t });
  }
  const { finished } = simulate(perf, reqs, opts.limits);
  const trim = Math.floor(n * (opts.trim ?? 0.2));
  const mid = finished.filter((r) => {
    const i = Number(r.id);
    return i >= trim && i < n - trim;
  });
  let a0 = Infinity, a1 = -Infinity, f0 = Infinity, f1 = -Infinity, sum = 0;
  for (const r of mid) {
    sum += paperTpot(r);
    a0 = Math.min(a0, r.arrival); a1 = Math.max(a1, r.arrival);
    f0 = Math.min(f0, r.finish); f1 = Math.max(f1, r.finish);
  }
  return { meanTpotS: sum / mid.length, spanRatio: a1 > a0 ? (f1 - f0) / (a1 - a0) : 1 };
}

/** Mean paper-TPOT (s) at `rate`; see trialAtRate. */
export function meanTpotAtRate(perf: EnginePerf, input: number, output: number, rate: number, opts: CapacityOptions = {}): number {
  return trialAtRate(perf, input, output, rate, opts).meanTpotS;
}

/** A rate is sustainable when the mean TPOT meets the SLO and no queue builds up (span ratio <= this). */
export const MAX_SPAN_RATIO = 1.1;

/**
 * The emulator's capacity for one size: the highest Poisson rate (req/s) at which the mean paper-TPOT of
 * `input`-token prompts generating `output` tokens stays <= tpotMillis — what the paper's profiler measures
 * (and what `melangectl profile` against the emulator should recover), also requiring that the server keeps
 * up (no growing queue: with a finite run, an overloaded server can otherwise look fine). 0 if the GPU cannot serve the size
 * (context too long) or not even one request alone meets the SLO.
 */
export function emulatedMaxThroughput(
  gpu: GpuType | GpuModel | EnginePerf,
  input: number,
  output: number,
  tpotMillis: number,
  opts: CapacityOptions = {},
): number {
  const perf = typeof gpu === 'object' && 'baseStepS' in gpu ? gpu : enginePerf(gpu);
  if (input + output > perf.maxModelLen) return 0;
  const slo = tpotMillis / 1000;
  const ok = (rate: number) => {
    const r = trialAtRate(perf, input, output, rate, { sloHintS: slo, ...opts });
    return r.meanTpotS <= slo && r.spanRatio <= MAX_SPAN_RATIO;
  };
  // Alone: one request's TPOT.
  const alone = simulate(perf, [{ id: 'x', inputTokens: input, outputTokens: output, arrival: 0 }], opts.limits);
  if (paperTpot(alone.finished[0]!) > slo) return 0;
  // Upper bound: the work of one request, ignoring the base step, must fit in a second.
  const busy = input * perf.prefillPerTokenS + perf.perContextTokenS * output * (input + output / 2) + perf.requestOverheadS;
  let lo = 0;
  let hi = 1 / busy;
  for (let k = 0; k < 20 && ok(hi); k++) { lo = hi; hi *= 2; }
  for (let i = 0; i < (opts.iterations ?? 18); i++) {
    const mid = (lo + hi) / 2;
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * The emulator's capacity for every bucket of a grid, profiled at the buckets' upper edges like the paper:
 * [input edge][output edge] → req/s (0 = cannot serve). Slow-ish (a simulation per bisection step): about a
 * minute per GPU type for the paper's 60 buckets.
 */
export function emulatedProfile(
  gpu: GpuType | GpuModel | EnginePerf,
  inputEdges: readonly number[],
  outputEdges: readonly number[],
  tpotMillis: number,
  opts: CapacityOptions = {},
): number[][] {
  return inputEdges.map((i) => outputEdges.map((o) => emulatedMaxThroughput(gpu, i, o, tpotMillis, opts)));
}
