/**
 * The per-bucket rate search, as a PURE function of the probes done so far: given the probes of one bucket,
 * `nextStep` says what to do next (probe a single request alone, probe a rate, or stop with a result). Nothing
 * else is kept between probes, so a resumed run continues exactly where a killed one stopped: it replays the
 * recorded probes through the same function.
 *
 *   1. ALONE: a few requests one after the other. A 4xx (vLLM's context-length 400) or a single request that
 *      already misses the SLO means the GPU cannot serve this bucket at all -> cannot-serve, with the reason.
 *   2. RAMP: Poisson load at r0 = startConcurrency / (latency of a request alone) — about that many requests in
 *      flight — then r0·f, r0·f², ... (f = rampFactor) until a probe fails the SLO; while the server is still
 *      nearly idle (mean TPOT within idleShare of the way from a request alone to the SLO) the factor is
 *      idleRampFactor, so an endpoint whose capacity is far above r0 is not approached in many tiny steps. If
 *      the very first ramp probe fails, the ramp goes DOWN instead (r0/f, r0/f², ... at most maxDescents steps); failing at the
 *      lowest of those -> cannot-serve ("fails even at the lowest rate").
 *   3. BISECT. The bracket is the derivation's own (solver/capacity-from-measurements.ts, on the rates the probes actually OFFERED): the
 *      highest passing point below the lowest failing one, and the conservative answer interpolated between
 *      them. The crossing lies between that answer and the failure (TPOT is convex in the rate), so the search
 *      stops when failure <= answer x (1 + tolerance); a bracket narrow in rate is not enough near saturation,
 *      where a few percent more load can take TPOT from 106 to 385 ms. The next probe aims at an offered rate
 *      inside (answer, failure): with split = 'interpolate' (default) where 1/TPOT interpolated linearly
 *      between the two points meets 1/SLO (exact for the mean-field curve TPOT = T0 / (1 - rate/c)), nudged by
 *      tolerance/2 towards the side the last probe did not land on and kept inside the middle 80% of the
 *      interval (log scale); within (1 + tolerance)^2, and always with 'midpoint', at its geometric midpoint.
 *      The nominal rate asked for is scaled by the latest full-size probe's offered/nominal ratio: probes of one
 *      bucket replay one seeded arrival sequence, which offers the same share of whatever it is asked.
 *   A ramp probe is sized for speed (fewer requests), so it never ends a bucket as an end of the final bracket:
 *   one that fails by a near miss (mean TPOT within confirmNearMiss x the SLO) is measured again at full size
 *   before bisecting, and a passing one at the lower end of the final bracket before stopping; the new probe
 *   replaces the quick one (a noisy near miss would cap the answer, a lucky pass raise it).
 *   Every bucket stops after at most maxProbes load probes (plus the alone probe), whatever happened.
 *   The bucket's capacity is then derived from its measurements by the conservative rule of solver/capacity-from-measurements.ts.
 */
import type { Measurement } from '../api/gpuprofile.js';
import { deriveRate, judge, type Point, type Verdict } from '../solver/capacity-from-measurements.js';

export interface SearchConfig {
  sloTpotMillis: number;
  /** Geometric ramp factor (default 2). */
  rampFactor: number;
  /**
   * Ramp factor while the server is still nearly idle: the last passing probe's mean TPOT used less than
   * `idleShare` of the room between one request alone and the SLO (default 4; 1 = always rampFactor).
   */
  idleRampFactor: number;
  /** See idleRampFactor (default 0.25). */
  idleShare: number;
  /** Stop bisecting when the lowest failure <= the conservative answer x (1 + tolerance) (default 0.03). */
  tolerance: number;
  /** Where to split the bracket: 'interpolate' (default) or 'midpoint' (geometric). */
  split: 'interpolate' | 'midpoint';
  /** Most load probes per bucket (default 12), the alone probe not counted. */
  maxProbes: number;
  /** Most steps down from r0 when the first ramp probe fails (default 4). */
  maxDescents: number;
  /** First ramp rate = startConcurrency / latency of one request alone (default 1). */
  startConcurrency: number;
  /** Requests of the alone probe (default 3). */
  aloneRequests: number;
  /**
   * A ramp probe (sized for speed, not precision) that fails with a mean TPOT within this factor of the SLO is a
   * near miss that may be noise: it is measured again at full size, and the new probe replaces it (default 1.5;
   * 0 = never confirm, neither near misses nor a quick pass ending the final bracket).
   */
  confirmNearMiss: number;
}

export const DEFAULT_SEARCH: Omit<SearchConfig, 'sloTpotMillis'> = {
  rampFactor: 2,
  idleRampFactor: 4,
  idleShare: 0.25,
  tolerance: 0.03,
  split: 'interpolate',
  maxProbes: 12,
  maxDescents: 4,
  startConcurrency: 1,
  aloneRequests: 3,
  confirmNearMiss: 1.5,
};

export type ProbeKind = 'alone' | 'load';

/** One probe as recorded in the state file (and replayed on resume). */
export interface ProbeRecord {
  kind: ProbeKind;
  /** The search phase that asked for this load probe. */
  phase?: SearchPhase;
  /** Rate asked for (req/s, target time); 0 for the alone probe. */
  nominalRate: number;
  /** `measured`: the endpoint served the requests; `rejected`: it refused them with a 4xx (the reason in `error`). */
  outcome: 'measured' | 'rejected';
  /** The load-test point (rate = arrivals per second actually offered in the measurement window). */
  measurement?: Measurement;
  /** Mean end-to-end latency of one request (ms, target time), for the alone probe. */
  meanLatencyMillis?: number;
  error?: string;
  requests: { sent: number; completed: number; errors: number; incomplete: number; window: number };
  /** Where the latencies came from: the server's vLLM histograms or the client's clock. */
  timing: 'server' | 'client';
  wallSeconds: number;
  /** ISO time the probe ended. */
  at: string;
}

export type BucketResult =
  | { status: 'measured'; bracketed: boolean; note?: string }
  | { status: 'cannot-serve'; reason: string };

export type SearchPhase = 'ramp' | 'descend' | 'bisect' | 'confirm';

export type SearchStep =
  | { action: 'alone' }
  | { action: 'probe'; rate: number; phase: SearchPhase }
  | { action: 'done'; result: BucketResult };

const fmt = (v: number) => Number(v.toPrecision(3)).toString();

/** The load probes that count: a probe repeated at the same nominal rate (a confirmation) replaces the earlier one. */
export function effectiveLoadProbes(probes: readonly ProbeRecord[]): ProbeRecord[] {
  const last = new Map<number, ProbeRecord>();
  for (const p of probes) if (p.kind === 'load') last.set(p.nominalRate, p);
  return probes.filter((p) => p.kind === 'load' && last.get(p.nominalRate) === p);
}

/** The load-test points of a bucket's probes (the alone probe is not a rate point; replaced probes are left out). */
export function loadMeasurements(probes: readonly ProbeRecord[]): Measurement[] {
  const out: Measurement[] = [];
  for (const p of effectiveLoadProbes(probes)) if (p.outcome === 'measured' && p.measurement) out.push(p.measurement);
  return out;
}

/** Verdict of one load probe under the search SLO (the same rule solver/capacity-from-measurements.ts applies). */
export function probeVerdict(p: ProbeRecord, sloTpotMillis: number): Verdict {
  if (p.outcome !== 'measured' || !p.measurement) return 'fail-tpot';
  return judge(p.measurement, sloTpotMillis);
}

/** The first ramp rate for a bucket, from its alone probe: startConcurrency requests in flight on average. */
export function startRate(alone: ProbeRecord, cfg: Pick<SearchConfig, 'startConcurrency'>): number {
  const latencyS = (alone.meanLatencyMillis ?? 0) / 1000;
  if (!(latencyS > 0)) throw new Error('alone probe has no latency');
  return cfg.startConcurrency / latencyS;
}

/** What to do next in a bucket, given every probe done so far in it (oldest first). Pure. */
export function nextStep(probes: readonly ProbeRecord[], cfg: SearchConfig): SearchStep {
  const alone = probes.find((p) => p.kind === 'alone');
  if (!alone) return { action: 'alone' };
  if (alone.outcome === 'rejected') {
    return { action: 'done', result: { status: 'cannot-serve', reason: `the endpoint refuses this size: ${alone.error ?? 'rejected'}` } };
  }
  const aloneTpot = alone.measurement?.meanTpotMillis;
  if (aloneTpot === undefined || !(aloneTpot <= cfg.sloTpotMillis)) {
    return {
      action: 'done',
      result: { status: 'cannot-serve', reason: `one request alone takes ${fmt(aloneTpot ?? Infinity)} ms per output token, over the ${cfg.sloTpotMillis} ms SLO` },
    };
  }
  const r0 = startRate(alone, cfg);
  const all = probes.filter((p) => p.kind === 'load');
  const load = effectiveLoadProbes(probes);
  const rejected = load.find((p) => p.outcome === 'rejected');
  if (rejected) {
    return { action: 'done', result: { status: 'cannot-serve', reason: `the endpoint refused requests under load: ${rejected.error ?? 'rejected'}` } };
  }
  if (load.length === 0) return { action: 'probe', rate: r0, phase: 'ramp' };
  const budgetLeft = all.length < cfg.maxProbes;
  const repeated = (p: ProbeRecord) => all.filter((q) => q.nominalRate === p.nominalRate).length > 1;

  // The bracket is the one the answer will be derived from: the derivation's own pass and fail points, on the
  // rates actually offered. A bracket on the nominal rates can disagree with it (a short probe offers its
  // nominal rate only to about 1/sqrt(n)), and the answer would then fall back to a far-away passing point.
  const d = deriveRate(load.flatMap((p) => (p.measurement ? [p.measurement] : [])), cfg.sloTpotMillis);
  const probeOf = (m: Measurement | undefined) => load.find((p) => p.measurement === m);
  const passP = probeOf(d.pass as Measurement | undefined);
  const failP = probeOf(d.fail as Measurement | undefined);

  if (!failP) {
    const top = passP ?? load[load.length - 1]!;
    if (!budgetLeft) {
      return { action: 'done', result: { status: 'measured', bracketed: false, note: `still meets the SLO at ${fmt(d.rate)} req/s after ${all.length} probes (a lower bound)` } };
    }
    const lo = Math.max(...load.map((p) => p.nominalRate));
    const last = top.measurement;
    const idle = last !== undefined && last.meanTpotMillis <= aloneTpot + cfg.idleShare * (cfg.sloTpotMillis - aloneTpot);
    return { action: 'probe', rate: lo * (idle ? Math.max(cfg.rampFactor, cfg.idleRampFactor) : cfg.rampFactor), phase: 'ramp' };
  }

  // A near miss of a quick ramp probe bounds the answer from above: measure it again at full size first.
  const t = failP.measurement?.meanTpotMillis;
  if (passP && budgetLeft && cfg.confirmNearMiss > 0 && failP.phase === 'ramp' && !repeated(failP) &&
      probeVerdict(failP, cfg.sloTpotMillis) === 'fail-tpot' && t !== undefined && t <= cfg.confirmNearMiss * cfg.sloTpotMillis) {
    return { action: 'probe', rate: failP.nominalRate, phase: 'confirm' };
  }

  if (!passP) {
    // Everything at or below the lowest failure failed: go down from it.
    const hi = Math.min(...load.map((p) => p.nominalRate));
    const floor = r0 / cfg.rampFactor ** cfg.maxDescents;
    if (hi <= floor * (1 + 1e-9) || !budgetLeft) {
      return { action: 'done', result: { status: 'cannot-serve', reason: `misses the ${cfg.sloTpotMillis} ms SLO even at ${fmt(d.fail?.rate ?? hi)} req/s, the lowest rate tried` } };
    }
    return { action: 'probe', rate: Math.max(floor, hi / cfg.rampFactor), phase: 'descend' };
  }

  // The crossing lies between the conservative answer and the lowest failure (TPOT is convex in the rate):
  // stop when that interval is within the tolerance. A bracket narrow in RATE is not enough: near saturation a
  // few percent more load can take TPOT from 106 to 385 ms, and the chord through such points sits well below.
  const answer = d.rate;
  const hi = d.fail!.rate;
  if (hi <= answer * (1 + cfg.tolerance)) {
    // The answer is interpolated between these two points: a quick ramp probe at its lower end is as noisy as
    // one at its upper end, so it is measured again at full size too (and replaced) before the bucket ends.
    if (passP.phase === 'ramp' && !repeated(passP) && budgetLeft && cfg.confirmNearMiss > 0) {
      return { action: 'probe', rate: passP.nominalRate, phase: 'confirm' };
    }
    return { action: 'done', result: { status: 'measured', bracketed: true } };
  }
  if (!budgetLeft) {
    return { action: 'done', result: { status: 'measured', bracketed: true, note: `probe budget spent with the answer between ${fmt(answer)} and ${fmt(hi)} req/s` } };
  }
  const lastSide = [...load].reverse().find((p) => p === passP || p === failP);
  const target = splitPoint(d.pass!, d.fail!, answer, lastSide === passP ? 'pass' : 'fail', cfg);
  // Offered/nominal of the latest full-size probe: the same seeded arrival sequence at the same size offers
  // the same share of its nominal rate, so this aims the next probe's OFFERED rate at the target.
  const ref = [...all].reverse().find((p) => p.phase !== 'ramp' && p.measurement && p.measurement.rate > 0);
  let rate = ref ? (target * ref.nominalRate) / ref.measurement!.rate : target;
  // A probe at an existing nominal rate would replace that probe (effectiveLoadProbes): step off it.
  while (all.some((p) => p.nominalRate === rate)) rate *= 1 + 1e-6;
  return { action: 'probe', rate, phase: 'bisect' };
}

/**
 * The next OFFERED rate inside (answer, fail.rate), where the crossing is; see step 3 of the module comment.
 * `answer` = the conservative derivation from `pass` and `fail`; `last` = which end the most recent probe of the
 * bracket landed on.
 */
export function splitPoint(pass: Point, fail: Point, answer: number, last: 'pass' | 'fail', cfg: SearchConfig): number {
  const lo = Math.max(pass.rate, Math.min(answer, fail.rate));
  const hi = fail.rate;
  const mid = Math.sqrt(lo * hi);
  // Within (1 + tolerance)^2 the geometric midpoint finishes in one probe whatever it finds.
  if (cfg.split === 'midpoint' || hi / lo <= (1 + cfg.tolerance) ** 2) return mid;
  const s = cfg.sloTpotMillis;
  if (!(pass.meanTpotMillis > 0) || !(fail.meanTpotMillis > s)) return mid; // fail failed on its queue only
  const xa = 1 / pass.meanTpotMillis;
  const xb = 1 / fail.meanTpotMillis;
  if (!(xa > xb)) return mid;
  // 1/TPOT is linear in the rate in the mean-field limit: its crossing is the best single guess.
  const guess = pass.rate + ((fail.rate - pass.rate) * (xa - 1 / s)) / (xa - xb);
  // Nudge away from the side the last bracketing probe landed on: a pass moved lo up, so aim just above the
  // guess (a fail is likely and closes the bracket), and vice versa.
  const nudge = 1 + cfg.tolerance / 2;
  const target = last === 'pass' ? guess * nudge : guess / nudge;
  const g = Math.log(hi / lo);
  return Math.min(lo * Math.exp(0.9 * g), Math.max(lo * Math.exp(0.1 * g), target));
}
