/**
 * The orchestration of `melangectl profile` with the endpoint replaced by a deterministic model (no sockets, no
 * timers): every probe is checkpointed, a run stopped by an endpoint failure or by its time budget resumes where
 * it stopped and ends with exactly the profile an uninterrupted run gives, and the profile is a valid GPUProfile.
 */
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGPUProfile } from '../../../src/api/index.js';
import { modelEndpoint } from '../../../src/profiler/model.js';
import { DEFAULT_SEARCH } from '../../../src/profiler/search.js';
import { CANNOT_SERVE_ANNOTATION, buildProfile } from '../../../src/profiler/output.js';
import { EndpointError, type ProbeContext, type ProbeOutcome, type ProbeSpec } from '../../../src/profiler/probe.js';
import { optionErrors, ProfileOptionsError } from '../../../src/profiler/options.js';
import { runProfile, type ProfileEvent, type ProfileOptions } from '../../../src/profiler/run.js';
import { newState, readState, StateError, writeStateAtomic, type ProfilerState } from '../../../src/profiler/state.js';

const tmp = mkdtempSync(join(tmpdir(), 'melange-profile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const stateFile = () => join(tmp, `state-${++fileNo}.json`);

/** /v1/models and /metrics of a fake vLLM (no sockets). */
const discoveryFetch = (async (input: string | URL | Request) => {
  const url = String(input);
  if (url.endsWith('/v1/models')) return new Response(JSON.stringify({ data: [{ id: 'fake-model' }] }), { status: 200 });
  if (url.endsWith('/metrics')) return new Response('# TYPE vllm:e2e_request_latency_seconds histogram\n', { status: 200 });
  return new Response('no', { status: 404 });
}) as typeof fetch;

/**
 * A GPU as a pure function: TPOT = 20 ms / (1 - rate / c(input, output)) with c shrinking with the request's
 * size, context limit 10000 tokens. Each probe "takes" wall time (for the budget) on a fake clock.
 */
const gpu = modelEndpoint(
  'fake GPU',
  (input, output, rate) => {
    const c = 2000 / (input + 4 * output);
    return rate >= c ? { meanTpotMillis: 1e5, throughput: c } : { meanTpotMillis: 20 / (1 - rate / c), throughput: rate };
  },
  (input, output) => (input + output > 10_000 ? "http_400: This model's maximum context length is 10000 tokens" : undefined),
);

function modelProbe(clock: { t: number }, opts: { failAfter?: number; calls?: { n: number } } = {}) {
  const calls = opts.calls ?? { n: 0 };
  return async (spec: ProbeSpec, _ctx: ProbeContext): Promise<ProbeOutcome> => {
    calls.n++;
    if (opts.failAfter !== undefined && calls.n > opts.failAfter) throw new EndpointError('network: connect ECONNREFUSED 127.0.0.1:9');
    const wallSeconds = spec.kind === 'alone' ? 1 : spec.requests / spec.rate; // as long as its arrivals last
    clock.t += wallSeconds * 1000;
    const record = spec.kind === 'alone' ? gpu.alone(spec.input, spec.output) : gpu.load(spec.input, spec.output, spec.rate, spec.requests);
    return { record: { ...record, wallSeconds }, truncated: false };
  };
}

const options = (o: Partial<ProfileOptions> = {}): ProfileOptions => ({
  url: 'http://127.0.0.1:9',
  gpuType: 'FAKE',
  buckets: { inputEdges: [100, 1000, 12000], outputEdges: [50, 200] },
  sloTpotMillis: 100,
  maxDurationS: 1e6,
  ...o,
});

describe('runProfile against a model endpoint', () => {
  it('profiles every bucket into a valid GPUProfile: measurements kept, cannot-serve recorded with its reason, not as a measured 0', async () => {
    const clock = { t: 0 };
    const events: ProfileEvent[] = [];
    const r = await runProfile(options(), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock), onEvent: (e) => events.push(e) });
    expect(r.status).toBe('complete');
    const p = r.profile!;
    const v = parseGPUProfile(p);
    expect(v.ok, JSON.stringify(v)).toBe(true);
    expect(p.spec).toMatchObject({ model: 'fake-model', gpuType: 'FAKE', slo: { tpotMillis: 100 }, buckets: { inputEdges: [100, 1000, 12000], outputEdges: [50, 200] } });
    // The 12000-token row is refused by the endpoint: 0 AND a reason, and no measurement pretending a 0 rate.
    expect(p.spec.maxThroughput[2]).toEqual([0, 0]);
    const why = JSON.parse(p.metadata.annotations![CANNOT_SERVE_ANNOTATION]!) as Record<string, string>;
    expect(Object.keys(why).sort()).toEqual(['12000x200', '12000x50']);
    expect(why['12000x50']).toMatch(/maximum context length/);
    expect(p.spec.measurements!.some((m) => m.input === 12000)).toBe(false);
    // Measured buckets: below the true crossing (conservative), within the search tolerance of it.
    for (const [i, input] of [100, 1000].entries()) {
      for (const [j, output] of [50, 200].entries()) {
        const truth = (2000 / (input + 4 * output)) * (1 - 20 / 100);
        const got = p.spec.maxThroughput[i]![j]!;
        expect(got).toBeLessThanOrEqual(truth);
        expect(got).toBeGreaterThan(truth / 1.1);
        expect(p.spec.measurements!.filter((m) => m.input === input && m.output === output).length).toBeGreaterThan(2);
      }
    }
    expect(events[0]).toMatchObject({ type: 'start', resumed: false, done: 0, timing: 'server', model: 'fake-model' });
    expect(events.filter((e) => e.type === 'bucket-done')).toHaveLength(6);
  });

  it('checkpoints after every probe, atomically (no temporary files left)', async () => {
    const clock = { t: 0 };
    const path = stateFile();
    const seen: number[] = [];
    await runProfile(options({ statePath: path }), {
      fetch: discoveryFetch,
      now: () => clock.t,
      probe: modelProbe(clock),
      onEvent: (e) => {
        if (e.type !== 'probe-done') return;
        const s = JSON.parse(readFileSync(path, 'utf8')) as ProfilerState;
        seen.push(Object.values(s.buckets).reduce((n, b) => n + b.probes.length, 0));
      },
    });
    expect(seen).toEqual(seen.map((_, k) => k + 1)); // the file already holds the probe when it is reported
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('an endpoint that dies midway stops the run; the same state resumes against a new URL and ends with the uninterrupted profile', async () => {
    const clockA = { t: 0 };
    const straight = await runProfile(options(), { fetch: discoveryFetch, now: () => clockA.t, probe: modelProbe(clockA) });
    const total = Object.values(straight.state.buckets).reduce((n, b) => n + b.probes.length, 0);

    const path = stateFile();
    const clock = { t: 0 };
    const calls = { n: 0 };
    const first = await runProfile(options({ statePath: path }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock, { failAfter: 7, calls }) });
    expect(first.status).toBe('endpoint-error');
    expect(first.message).toMatch(/ECONNREFUSED.*run again with the same --state/);
    expect(first.profile).toBeUndefined();
    const saved = (await readState(path))!;
    expect(Object.values(saved.buckets).reduce((n, b) => n + b.probes.length, 0)).toBe(7);

    const events: ProfileEvent[] = [];
    const second = await runProfile(options({ statePath: path, url: 'http://127.0.0.1:10' }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock), onEvent: (e) => events.push(e) });
    expect(second.status).toBe('complete');
    expect(second.probesRun).toBe(total - 7); // nothing measured twice
    expect(second.state.runs).toBe(2);
    expect(events[0]).toMatchObject({ type: 'start', resumed: true });
    const strip = (x: typeof second.profile) => ({ ...x!.spec });
    expect(strip(second.profile)).toEqual(strip(straight.profile));
  });

  it('stops at its time budget with the state kept, and a second run finishes', async () => {
    const path = stateFile();
    const clock = { t: 0 };
    // The model's probes take up to ~10 min each on the fake clock (requests / rate).
    const budget = 1500;
    const first = await runProfile(options({ statePath: path, maxDurationS: budget }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock) });
    expect(first.status).toBe('deadline');
    expect(first.message).toMatch(/--max-duration reached .* run again with the same --state/);
    expect(first.probesRun).toBeGreaterThan(0);
    expect(first.wallSeconds).toBeLessThanOrEqual(budget);
    let r = first;
    for (let k = 0; k < 50 && r.status !== 'complete'; k++) {
      r = await runProfile(options({ statePath: path, maxDurationS: budget }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock) });
      expect(r.probesRun).toBeGreaterThan(0);
    }
    expect(r.status).toBe('complete');
    expect(r.state.runs).toBeGreaterThan(2);
  });

  it('a budget too small for even one probe says so instead of looping', async () => {
    const clock = { t: 0 };
    const r = await runProfile(options({ maxDurationS: 1 }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock) });
    expect(r.status).toBe('deadline');
    expect(r.message).toMatch(/needs about \d+ s, more than --max-duration allows/);
  });

  it('refuses to resume a state made with other settings, saying which', async () => {
    const path = stateFile();
    const clock = { t: 0 };
    await runProfile(options({ statePath: path, maxDurationS: 25 }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock) });
    await expect(runProfile(options({ statePath: path, sloTpotMillis: 40 }), { fetch: discoveryFetch, now: () => clock.t, probe: modelProbe(clock) }))
      .rejects.toThrow(/sloTpotMillis: 100 in the state file, 40 now/);
  });

  it('refuses a non-loopback endpoint unless allowed', async () => {
    await expect(runProfile(options({ url: 'http://10.0.0.1:8000' }), { fetch: discoveryFetch })).rejects.toThrow(/not a loopback address/);
  });
});

describe('the state file', () => {
  it('round-trips, replaces atomically, and rejects files that are not profiler states', async () => {
    const path = stateFile();
    expect(await readState(path)).toBeUndefined();
    const s = newState({
      model: 'm', gpuType: 'g', buckets: { inputEdges: [1], outputEdges: [1] }, sloTpotMillis: 1, api: 'chat', seed: 1,
      search: { ...DEFAULT_SEARCH, sloTpotMillis: 1, maxProbes: 1 },
      sizing: { lifetimes: 1, minRequests: 1, rampMinRequests: 1, maxRequests: 1, maxProbeSeconds: 1, drainLifetimes: 1 },
    }, new Date(0));
    await writeStateAtomic(path, s);
    s.runs = 5;
    await writeStateAtomic(path, s);
    expect((await readState(path))!.runs).toBe(5);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const junk = join(tmp, 'junk.json');
    writeFileSync(junk, '{"kind":"something-else"}');
    await expect(readState(junk)).rejects.toThrow(StateError);
    writeFileSync(junk, '{ torn');
    await expect(readState(junk)).rejects.toThrow(/not JSON/);
  });

  it('an unfinished state cannot be turned into a profile', () => {
    const s = newState({
      model: 'm', gpuType: 'g', buckets: { inputEdges: [10], outputEdges: [10] }, sloTpotMillis: 100, api: 'chat', seed: 1,
      search: { ...DEFAULT_SEARCH, sloTpotMillis: 100, maxProbes: 3 },
      sizing: { lifetimes: 1, minRequests: 1, rampMinRequests: 1, maxRequests: 1, maxProbeSeconds: 1, drainLifetimes: 1 },
    }, new Date(0));
    expect(() => buildProfile(s)).toThrow(/not profiled yet: 10x10/);
  });
});

describe('runProfile: options', () => {
  it('refuses bad options before contacting anything, naming every bad field (the profile\'s own fields by their schema path)', async () => {
    let contacted = false;
    const fetchSpy = (async () => { contacted = true; return new Response('{}'); }) as unknown as typeof fetch;
    const bad = options({
      gpuType: 'X'.repeat(70),
      buckets: { inputEdges: [100, 50], outputEdges: [25] },
      search: { tolerance: 0 },
      sizing: { minRequests: 1.5 },
      meta: { name: 'Not_A_Name' },
    });
    const err = await runProfile(bad, { fetch: fetchSpy }).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ProfileOptionsError);
    expect(err!.message.split('\n')).toEqual([
      'search.tolerance: must be > 0, not 0',
      'sizing.minRequests: must be an integer >= 1, not 1.5',
      expect.stringMatching(/^metadata\.name: must be a DNS subdomain/),
      expect.stringMatching(/^spec\.gpuType: .*63/),
      'spec.buckets.inputEdges: must be strictly increasing',
    ]);
    expect(contacted).toBe(false);
  });

  it('refuses a grid whose measurements could outgrow a GPUProfile, before the first probe', () => {
    const edges = Array.from({ length: 32 }, (_, i) => 10 * (i + 1));
    expect(optionErrors(options({ buckets: { inputEdges: edges, outputEdges: edges } }))).toEqual([
      expect.stringMatching(/^buckets: 1024 buckets x up to 12 probes .* could exceed the 4096 measurements/),
    ]);
  });
});
