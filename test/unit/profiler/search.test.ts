import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveRate } from '../../../src/solver/capacity-from-measurements.js';
import { meanFieldModel, modelEndpoint, type EndpointModel } from '../../../src/profiler/model.js';
import { DEFAULT_SIZING, probeRequests, simulateSearch } from '../../../src/profiler/plan.js';
import { DEFAULT_SEARCH, loadMeasurements, nextStep, type ProbeRecord, type SearchConfig, type SearchStep } from '../../../src/profiler/search.js';

const cfg = (o: Partial<SearchConfig> = {}): SearchConfig => ({ ...DEFAULT_SEARCH, sloTpotMillis: 120, ...o });

/**
 * A deterministic fake endpoint, as a pure function of the rate: mean TPOT = T0 / (1 - rate / c) below the
 * saturation rate c (the mean-field shape), and a server that cannot keep up above it.
 */
function fakeEndpoint(t0: number, c: number, opts: { rejects?: string; own?: number } = {}): EndpointModel {
  return modelEndpoint(
    `fake T0=${t0} c=${c}`,
    (_i, _o, rate) => (rate >= c ? { meanTpotMillis: 1e5, throughput: c } : { meanTpotMillis: t0 / (1 - rate / c) + (opts.own ?? 0), throughput: rate }),
    () => opts.rejects,
  );
}
/** Rate where the fake's TPOT meets the SLO. */
const crossing = (t0: number, c: number, slo: number, own = 0) => c * (1 - t0 / (slo - own));

/** Runs the search to the end against a model; returns every step and probe. */
function drive(model: EndpointModel, c: SearchConfig, input = 100, output = 100) {
  const probes: ProbeRecord[] = [];
  const steps: SearchStep[] = [];
  for (let i = 0; i < 100; i++) {
    const s = nextStep(probes, c);
    steps.push(s);
    if (s.action === 'done') return { probes, steps, result: s.result };
    probes.push(s.action === 'alone' ? model.alone(input, output) : { ...model.load(input, output, s.rate, probeRequests(s.rate, output, c.sloTpotMillis, DEFAULT_SIZING, 1, s.phase)), phase: s.phase });
  }
  throw new Error('search did not stop');
}

describe('nextStep: the rate search against a deterministic fake endpoint', () => {
  it('probes one request alone first, then ramps from about one request in flight', () => {
    const model = fakeEndpoint(30, 10);
    expect(nextStep([], cfg())).toEqual({ action: 'alone' });
    const alone = model.alone(100, 100);
    const s = nextStep([alone], cfg());
    // latency alone = 30 ms x 100 tokens = 3 s -> one request in flight at 1/3 req/s
    expect(s).toMatchObject({ action: 'probe', phase: 'ramp' });
    expect((s as { rate: number }).rate).toBeCloseTo(1 / 3, 10);
  });

  it('ramps geometrically (faster while nearly idle), then bisects to the tolerance', () => {
    const { steps, result, probes } = drive(fakeEndpoint(30, 10), cfg({ split: 'midpoint' }));
    const rates = steps.filter((s): s is Extract<SearchStep, { action: 'probe' }> => s.action === 'probe');
    const ramp = rates.filter((s) => s.phase === 'ramp').map((s) => s.rate);
    for (let k = 1; k < ramp.length; k++) expect([2, 4]).toContainEqual(Number((ramp[k]! / ramp[k - 1]!).toFixed(6)));
    expect(rates.some((s) => s.phase === 'bisect')).toBe(true);
    expect(result).toEqual({ status: 'measured', bracketed: true });
    const truth = crossing(30, 10, 120);
    const d = deriveRate(loadMeasurements(probes), 120);
    expect(d.rate).toBeLessThanOrEqual(truth + 1e-9);
    expect(d.rate).toBeGreaterThan(truth / (1 + DEFAULT_SEARCH.tolerance));
  });

  it('property: for any endpoint shape both split rules stop within the probe budget, bracketed, conservative and within the tolerance', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 5, max: 100, noNaN: true }),
        // saturation in requests in flight at one request's latency (100 tokens x T0): from a quarter (the
        // descent reaches 1/16 of one in flight) to hundreds (continuous batching)
        fc.double({ min: 0.25, max: 500, noNaN: true }),
        fc.constantFrom<'interpolate' | 'midpoint'>('interpolate', 'midpoint'),
        (t0, k, split) => {
          const c = k / ((t0 * 100) / 1000);
          const conf = cfg({ split, sloTpotMillis: 150, maxProbes: 30 });
          const { result, probes } = drive(fakeEndpoint(t0, c), conf);
          expect(probes.filter((p) => p.kind === 'load').length).toBeLessThanOrEqual(conf.maxProbes);
          expect(result.status).toBe('measured');
          const truth = crossing(t0, c, 150);
          const d = deriveRate(loadMeasurements(probes), 150);
          expect(d.rate).toBeLessThanOrEqual(truth * (1 + 1e-5)); // the points are stored to 6 digits
          expect(d.rate).toBeGreaterThan(truth / (1 + conf.tolerance) - 1e-9);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the interpolated split needs fewer probes than plain bisection on the mean-field shape', () => {
    let interp = 0;
    let mid = 0;
    for (const [t0, c] of [[30, 10], [50, 2], [14, 40], [80, 0.3]] as const) {
      interp += drive(fakeEndpoint(t0, c), cfg({ split: 'interpolate' })).probes.length;
      mid += drive(fakeEndpoint(t0, c), cfg({ split: 'midpoint' })).probes.length;
    }
    expect(interp).toBeLessThan(mid);
  });

  it('a size the endpoint refuses (HTTP 400) is cannot-serve with the reason, after one probe', () => {
    const { result, probes } = drive(fakeEndpoint(30, 10, { rejects: "http_400: This model's maximum context length is 10000 tokens" }), cfg());
    expect(probes).toHaveLength(1);
    expect(result).toMatchObject({ status: 'cannot-serve', reason: expect.stringMatching(/refuses this size: http_400: .*maximum context length/) });
  });

  it('a size whose single request already misses the SLO is cannot-serve (no load probes)', () => {
    const { result, probes } = drive(fakeEndpoint(30, 10, { own: 100 }), cfg());
    expect(probes).toHaveLength(1);
    expect(result).toMatchObject({ status: 'cannot-serve', reason: expect.stringMatching(/one request alone takes 130 ms per output token, over the 120 ms SLO/) });
  });

  it('a size that fails even at the lowest rate tried is cannot-serve, not a measured 0', () => {
    // Alone it meets the SLO, but any load at all breaks it (saturation far below one request in flight).
    const model = modelEndpoint('cliff', (_i, _o, rate) => (rate === 0 ? { meanTpotMillis: 100, throughput: 0 } : { meanTpotMillis: 500, throughput: rate }));
    const { result, steps } = drive(model, cfg());
    const rates = steps.filter((s): s is Extract<SearchStep, { action: 'probe' }> => s.action === 'probe');
    expect(rates[0]!.phase).toBe('ramp');
    expect(rates.slice(1).every((s) => s.phase === 'descend')).toBe(true);
    expect(rates).toHaveLength(1 + DEFAULT_SEARCH.maxDescents);
    expect(result).toMatchObject({ status: 'cannot-serve', reason: expect.stringMatching(/even at .* req\/s, the lowest rate tried/) });
  });

  it('descends when the first ramp probe is already too fast, and then bisects', () => {
    // One request takes 3 s; saturation at 0.2 req/s, well below one request in flight (0.33 req/s).
    const { result, steps, probes } = drive(fakeEndpoint(30, 0.2), cfg());
    expect(steps.some((s) => s.action === 'probe' && s.phase === 'descend')).toBe(true);
    expect(result.status).toBe('measured');
    expect(deriveRate(loadMeasurements(probes), 120).rate).toBeLessThanOrEqual(crossing(30, 0.2, 120));
  });

  it('a budget spent while still passing gives a lower bound, flagged as not bracketed', () => {
    const { result, probes } = drive(fakeEndpoint(30, 1e9), cfg({ maxProbes: 3 }));
    expect(probes.filter((p) => p.kind === 'load')).toHaveLength(3);
    expect(result).toMatchObject({ status: 'measured', bracketed: false, note: expect.stringMatching(/lower bound/) });
  });

  it('a ramp probe that fails by a near miss is measured again at full size, and the new probe replaces it', () => {
    // Truth: TPOT = 30 / (1 - rate / 7.5), crossing 120 ms at 5.625 req/s. Quick ramp probes read 30% high.
    const truthT = (rate: number) => 30 / (1 - Math.min(rate / 7.5, 0.999));
    const run = (c: SearchConfig) => {
      const probes: ProbeRecord[] = [];
      const steps: SearchStep[] = [];
      for (let k = 0; k < 50; k++) {
        const s = nextStep(probes, c);
        steps.push(s);
        if (s.action === 'done') break;
        if (s.action === 'alone') { probes.push(fakeEndpoint(30, 7.5).alone(100, 100)); continue; }
        const t = truthT(s.rate) * (s.phase === 'ramp' ? 1.3 : 1);
        probes.push({ ...modelEndpoint('x', () => ({ meanTpotMillis: t, throughput: s.rate })).load(100, 100, s.rate, 100), phase: s.phase });
      }
      return { probes, steps };
    };
    const withConfirm = run(cfg({ split: 'midpoint' }));
    const confirms = withConfirm.steps.filter((s) => s.action === 'probe' && s.phase === 'confirm');
    expect(confirms).toHaveLength(1);
    // the replaced probe is not among the measurements: one point per rate
    const rates = loadMeasurements(withConfirm.probes).map((m) => m.rate);
    expect(new Set(rates).size).toBe(rates.length);
    expect(withConfirm.probes.filter((p) => p.kind === 'load')).toHaveLength(rates.length + 1);
    const a = deriveRate(loadMeasurements(withConfirm.probes), 120).rate;
    const b = deriveRate(loadMeasurements(run(cfg({ split: 'midpoint', confirmNearMiss: 0 })).probes), 120).rate;
    expect(a).toBeLessThanOrEqual(5.625);
    expect(a).toBeGreaterThan(5.625 / 1.1);
    expect(b).toBeLessThan(a); // without the confirmation, the noisy near miss caps the answer lower
  });

  describe('the bracket the search closes is the one the answer is derived from', () => {
    const alone = fakeEndpoint(30, 10).alone(100, 100); // 3 s alone -> ramp from 1/3 req/s
    /** A recorded load probe: asked for `nominal`, actually offered `offered`, mean TPOT `tpot`. */
    const rec = (phase: ProbeRecord['phase'], nominal: number, offered: number, tpot: number): ProbeRecord => ({
      ...modelEndpoint('x', () => ({ meanTpotMillis: tpot, throughput: offered })).load(100, 100, nominal, 100),
      phase,
      measurement: { input: 100, output: 100, rate: offered, meanTpotMillis: tpot, throughput: offered },
    });

    it('uses the OFFERED rates: a short ramp probe that offered more than asked cannot close it above a full-size failure', () => {
      // Nominally 4.376 (pass) < 4.406 (fail), a 0.7% bracket; offered 4.398 > 4.388, so the derivation sees
      // the failure BELOW that pass and falls back to the 1 req/s point: keep going.
      const probes = [alone, rec('ramp', 1, 1, 40), rec('ramp', 4.376, 4.398, 119.9), rec('ramp', 8.75, 9.58, 849), rec('bisect', 4.69, 4.67, 149), rec('bisect', 4.406, 4.388, 127.2)];
      expect(deriveRate(loadMeasurements(probes), 120).pass!.rate).toBe(1);
      const s = nextStep(probes, cfg());
      expect(s).toMatchObject({ action: 'probe', phase: 'bisect' });
      expect((s as { rate: number }).rate).toBeGreaterThan(deriveRate(loadMeasurements(probes), 120).rate);
      expect((s as { rate: number }).rate).toBeLessThan(4.406);
    });

    it('stops when the answer is within the tolerance of the lowest failure, not when the RATE bracket is narrow', () => {
      // 7.5% apart in rate, but across the knee (106 -> 385 ms): the chord answer is 7% below the failure.
      const probes = [alone, rec('ramp', 1, 1, 40), rec('bisect', 7.995, 7.995, 106), rec('bisect', 8.595, 8.595, 385)];
      const answer = deriveRate(loadMeasurements(probes), 120).rate;
      expect(8.595 / 7.995).toBeLessThan(1 + 0.1);
      expect(8.595 / answer).toBeGreaterThan(1 + DEFAULT_SEARCH.tolerance);
      const s = nextStep(probes, cfg());
      expect(s).toMatchObject({ action: 'probe', phase: 'bisect' });
      expect((s as { rate: number }).rate).toBeGreaterThan(answer);
      expect((s as { rate: number }).rate).toBeLessThan(8.595);
      // ... and once probes land close to the crossing on either side, it is done.
      const closed = [...probes, rec('bisect', 8.2, 8.2, 118), rec('bisect', 8.3, 8.3, 125)];
      expect(nextStep(closed, cfg())).toEqual({ action: 'done', result: { status: 'measured', bracketed: true } });
    });

    it('measures a quick ramp probe at the lower end of the final bracket again at full size before stopping', () => {
      const probes = [alone, rec('ramp', 1, 1, 40), rec('ramp', 5, 5, 119), rec('bisect', 5.05, 5.05, 121)];
      expect(nextStep(probes, cfg())).toEqual({ action: 'probe', rate: 5, phase: 'confirm' });
      // At full size it fails: it replaces the quick probe and the search goes on below it.
      const confirmed = [...probes, rec('confirm', 5, 5, 124)];
      expect(loadMeasurements(confirmed).map((m) => m.meanTpotMillis)).toEqual([40, 121, 124]);
      expect(nextStep(confirmed, cfg())).toMatchObject({ action: 'probe', phase: 'bisect' });
    });

    it('aims a bisection at an offered rate: the nominal rate is scaled by the latest full-size probe\'s offered/nominal', () => {
      // Full-size probes of this arrival sequence offer 10% less than asked.
      const probes = [alone, rec('ramp', 1, 1, 40), rec('bisect', 5, 4.5, 60), rec('bisect', 10, 9, 300)];
      const s = nextStep(probes, cfg({ split: 'midpoint' }));
      const answer = deriveRate(loadMeasurements(probes), 120).rate;
      expect((s as { rate: number }).rate).toBeCloseTo(Math.sqrt(answer * 9) / 0.9, 10);
    });
  });

  it('is a pure function of the probes: replaying any prefix of a run asks for the same next step (resume)', () => {
    const { probes, steps } = drive(fakeEndpoint(40, 5), cfg());
    for (let k = 0; k <= probes.length; k++) expect(nextStep(probes.slice(0, k), cfg())).toEqual(steps[k]);
  });
});

describe('the mean-field model of the emulator (used by the dry run)', () => {
  it('knows the emulator GPU types, refuses what exceeds max_model_len, and its search recovers its own capacity', () => {
    expect(meanFieldModel('not-a-gpu')).toBeUndefined();
    const a10g = meanFieldModel('a10g')!;
    expect(a10g.alone(12000, 100).outcome).toBe('rejected');
    const r = simulateSearch(a10g, { input: 250, output: 100 }, cfg(), DEFAULT_SIZING, 1);
    expect(r.maxThroughput).toBeGreaterThan(0);
    expect(r.probes).toBeLessThanOrEqual(1 + DEFAULT_SEARCH.maxProbes);
    expect(r.wallS).toBeGreaterThan(0);
  });
});
