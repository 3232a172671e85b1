/**
 * What a profiling run will do: the bucket grid (each bucket probed at its upper edges, as the paper does), how
 * big each probe is, the bounds on probes and time, and — for `--dry-run` — an expected duration from replaying
 * the search against a model of the GPU when one is known (model.ts). Pure.
 */
import { deriveRate } from '../solver/capacity-from-measurements.js';
import { loadMeasurements, nextStep, DEFAULT_SEARCH, type ProbeRecord, type SearchConfig, type SearchPhase } from './search.js';
import type { EndpointModel } from './model.js';

export interface BucketTarget {
  /** [input range][output range] */
  i: number;
  j: number;
  /** Probed size: the bucket's upper edges. */
  input: number;
  output: number;
  key: string;
}

export interface BucketGrid {
  inputEdges: readonly number[];
  outputEdges: readonly number[];
}

/** Every bucket, row-major ([input range][output range]), at its upper edges. */
export function bucketTargets(b: BucketGrid): BucketTarget[] {
  const out: BucketTarget[] = [];
  b.inputEdges.forEach((input, i) => b.outputEdges.forEach((output, j) => out.push({ i, j, input, output, key: `${input}x${output}` })));
  return out;
}

export interface ProbeSizing {
  /**
   * A load probe spans this many request lifetimes (lifetime = output tokens x SLO, what a request takes at the
   * SLO), so the middle of the run is in steady state (default 20, like the emulator's own capacity function).
   */
  lifetimes: number;
  /**
   * Fewest requests in a load probe near the answer (bisection, descent, confirmation; default 1000). The answer
   * is the capacity of ONE finite Poisson arrival sequence, which differs from the steady state by its luck:
   * against the emulator about 4% (1 s.d.) at 300 requests, 2.6% at 1000, 1.3% at 10,000 (docs/profiling.md).
   */
  minRequests: number;
  /** Fewest requests in a ramp probe, far below the answer where precision matters less (default 40). */
  rampMinRequests: number;
  /** Most requests in a load probe (default 4000). */
  maxRequests: number;
  /** Most wall-clock seconds of arrivals in one probe (default 600). */
  maxProbeSeconds: number;
  /** Wait for running requests up to this many lifetimes after the last arrival, then count them as failures (default 4). */
  drainLifetimes: number;
}

export const DEFAULT_SIZING: ProbeSizing = { lifetimes: 20, minRequests: 1000, rampMinRequests: 40, maxRequests: 4000, maxProbeSeconds: 600, drainLifetimes: 4 };

/** Target seconds one request lives at the SLO. */
export const lifetimeS = (output: number, sloTpotMillis: number) => (output * sloTpotMillis) / 1000;

/** Requests in a load probe at `rate` (req/s, target time) in a search phase. */
export function probeRequests(rate: number, output: number, sloTpotMillis: number, sizing: ProbeSizing, timeScale = 1, phase: SearchPhase = 'bisect'): number {
  const byLifetimes = Math.ceil(rate * sizing.lifetimes * lifetimeS(output, sloTpotMillis));
  const byWall = Math.floor(rate * sizing.maxProbeSeconds * timeScale);
  const min = phase === 'ramp' ? Math.min(sizing.minRequests, sizing.rampMinRequests) : sizing.minRequests;
  return Math.max(1, Math.min(sizing.maxRequests, byWall, Math.max(min, byLifetimes)));
}

/** Wall-clock bounds of one probe: arrival window (with room for Poisson variability) and drain. */
export function probeWallBounds(kind: 'alone' | 'load', rate: number, requests: number, output: number, sloTpotMillis: number, sizing: ProbeSizing, timeScale: number) {
  const life = lifetimeS(output, sloTpotMillis) / timeScale;
  const drainWallS = Math.max(5, sizing.drainLifetimes * life);
  if (kind === 'alone') return { arrivalWallS: Math.max(10, requests * life * 2), drainWallS, expectedWallS: requests * life };
  const arrivals = (requests + 4 * Math.sqrt(requests) + 2) / rate / timeScale;
  return { arrivalWallS: Math.min(sizing.maxProbeSeconds * 1.2 + 5, arrivals + 1), drainWallS, expectedWallS: requests / rate / timeScale + life };
}

export interface PlanSummary {
  buckets: BucketTarget[];
  /** Buckets already finished in the state file. */
  done: number;
  /** Upper bound on probes still to run (1 alone + maxProbes per unfinished bucket, minus those done). */
  probesUpperBound: number;
  /** Upper bound on wall time: probes x (arrival cap + drain cap), and never more than maxDurationS. */
  wallUpperBoundS: number;
  /** Expected probes and wall time (not capped by the budget) from replaying the search against a model of the GPU, when known. */
  expected?: { probes: number; wallS: number; model: string; perBucket: Array<{ key: string; probes: number; wallS: number; maxThroughput: number }> };
}

export function planSummary(args: {
  buckets: BucketGrid;
  sloTpotMillis: number;
  search: SearchConfig;
  sizing: ProbeSizing;
  timeScale: number;
  maxDurationS: number;
  probesDone?: ReadonlyMap<string, readonly ProbeRecord[]>;
  model?: EndpointModel;
}): PlanSummary {
  const targets = bucketTargets(args.buckets);
  let done = 0;
  let probes = 0;
  let wall = 0;
  for (const t of targets) {
    const recorded = args.probesDone?.get(t.key) ?? [];
    if (nextStep(recorded, args.search).action === 'done') { done++; continue; }
    const left = Math.max(1, 1 + args.search.maxProbes - recorded.length);
    probes += left;
    const life = lifetimeS(t.output, args.sloTpotMillis) / args.timeScale;
    wall += left * (args.sizing.maxProbeSeconds + Math.max(5, args.sizing.drainLifetimes * life));
  }
  const summary: PlanSummary = { buckets: targets, done, probesUpperBound: probes, wallUpperBoundS: Math.min(wall, args.maxDurationS) };
  if (args.model) {
    const perBucket = targets.map((t) => {
      const r = simulateSearch(args.model!, t, args.search, args.sizing, args.timeScale, args.probesDone?.get(t.key) ?? []);
      return { key: t.key, ...r };
    });
    summary.expected = {
      probes: perBucket.reduce((s, b) => s + b.probes, 0),
      wallS: perBucket.reduce((s, b) => s + b.wallS, 0),
      model: args.model.name,
      perBucket,
    };
  }
  return summary;
}

/** Replays the search for one bucket against a model endpoint: probes still to run and their wall time. */
export function simulateSearch(
  model: EndpointModel,
  t: Pick<BucketTarget, 'input' | 'output'>,
  search: SearchConfig,
  sizing: ProbeSizing,
  timeScale: number,
  recorded: readonly ProbeRecord[] = [],
): { probes: number; wallS: number; maxThroughput: number } {
  const probes = [...recorded];
  let count = 0;
  let wallS = 0;
  for (let guard = 0; guard < 100; guard++) {
    const step = nextStep(probes, search);
    if (step.action === 'done') break;
    count++;
    if (step.action === 'alone') {
      const p = model.alone(t.input, t.output);
      probes.push(p);
      // A refused request costs nothing; otherwise the requests run back to back.
      if (p.outcome === 'measured') wallS += (search.aloneRequests * (p.meanLatencyMillis ?? 0)) / 1000 / timeScale;
      continue;
    }
    const n = probeRequests(step.rate, t.output, search.sloTpotMillis, sizing, timeScale, step.phase);
    probes.push({ ...model.load(t.input, t.output, step.rate, n), phase: step.phase });
    wallS += probeWallBounds('load', step.rate, n, t.output, search.sloTpotMillis, sizing, timeScale).expectedWallS;
  }
  const final = nextStep(probes, search);
  const maxThroughput = final.action === 'done' && final.result.status === 'measured' ? deriveRate(loadMeasurements(probes), search.sloTpotMillis).rate : 0;
  return { probes: count, wallS, maxThroughput };
}

export { DEFAULT_SEARCH };
