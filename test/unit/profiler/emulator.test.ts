/**
 * `melangectl profile` against REAL emulators over HTTP on 127.0.0.1 (no cluster): two GPU types, L4 and A10G,
 * profiled concurrently over inputs <= 100, <= 12000 tokens x outputs <= 25 tokens at 120 ms — one
 * servable bucket and one the GPUs cannot serve.
 *
 *   - The L4 run goes through the real CLI process (`melangectl profile ... -o FILE --state FILE`).
 *   - The A10G run loses its endpoint midway (the emulator is SIGKILLed during a probe), stops, and resumes from
 *     its state file against another emulator on another port; it ends with the same shape of result.
 *   - The 12000-token bucket exceeds both GPUs' context (max_model_len 10000): recorded as cannot-serve with
 *     vLLM's 400 message, maxThroughput 0, and no measurement pretending a 0 rate.
 *   - The HTTP measurement is never much more optimistic (10%) than the same profile in simulated time
 *     (simulatedEndpoint, same seed, so the same arrival sequences), the mode accuracy.test.ts checks against the
 *     emulator's true capacity and the paper's scenarios.
 *
 * Why accuracy is not asserted here: over HTTP the emulator runs on the real clock, and on a busy machine its
 * event loop bunches arrivals (a shared 2-core machine at load 6-8 made runs read 14-65% low), so a bound on the
 * measured capacity would be a timing assertion. Late events make the server look SLOWER, hence a one-sided check.
 * For the same reason the probes are bounded in WALL time (2 s of arrivals each, 100-150 requests at x8), not in
 * requests, and at most 8 per bucket: a starved emulator costs neither longer probes nor many more, and the file
 * stays at 20-35 s. Such short probes measure poorly, which does not matter here. Only the emulator that must die
 * is a separate process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parse } from 'yaml';
import { parseGPUProfile, type GPUProfile } from '../../../src/api/index.js';
import { startEmulator as startInProcess, type RunningEmulator } from '../../../src/emulator/index.js';
import {
  CANNOT_SERVE_ANNOTATION,
  LOWER_BOUND_ANNOTATION,
  runProfile,
  simulatedEndpoint,
  type ProfileEvent,
  type ProfileOptions,
  type ProfileRunResult,
} from '../../../src/profiler/index.js';
import { TRUE_CAPACITY, TRUE_CAPACITY_SLO_MILLIS as SLO } from './fixtures/true-capacity.js';

const root = join(import.meta.dirname, '..', '..', '..');
const cli = join(import.meta.dirname, 'fixtures', 'melangectl.ts');
const tmp = mkdtempSync(join(tmpdir(), 'melange-profile-emu-'));

const BUCKETS = { inputEdges: [100, 12000], outputEdges: [25] };
const SPEED: Record<'L4' | 'A10G', number> = { L4: 8, A10G: 8 };
const SIZING = { minRequests: 100, rampMinRequests: 20, lifetimes: 5, maxProbeSeconds: 2 };
// Bounds the file's time on a starved machine, where noisy short probes would otherwise creep to the default 12.
const SEARCH = { maxProbes: 8 };

interface Emu { url: string; child: ChildProcess; exited: Promise<unknown>; log: string[] }
const children: ChildProcess[] = [];

function startEmulator(gpu: string, speed: number): Promise<Emu> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'emulate', '--gpu', gpu, '--port', '0', '--speed', String(speed), '--log-level', 'info'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const log: string[] = [];
  child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.url && rec.msg?.startsWith('listening on ')) resolve({ url: rec.url, child, exited, log });
      } catch { /* not a log line */ }
    });
    child.on('exit', (code) => reject(new Error(`emulator exited (${code}) before listening: ${log.join('')}`)));
  });
}

async function kill(e: Emu): Promise<void> {
  if (e.child.exitCode === null && e.child.signalCode === null) e.child.kill('SIGKILL');
  await e.exited;
}

const inProcess: RunningEmulator[] = [];

afterAll(async () => {
  await Promise.all(inProcess.map((e) => e.close({ drainMs: 0 })));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

const report: string[] = [];
let l4Profile: GPUProfile;
let a10gProfile: GPUProfile;
let a10gFirst: ProfileRunResult;
let a10gSecond: ProfileRunResult;
let a10gKilledAtProbe = 0;
let l4Stderr = '';
let wallSeconds = 0;

beforeAll(async () => {
  const started = performance.now();
  const lap = (what: string) => report.push(`${what} at ${((performance.now() - started) / 1000).toFixed(1)} s`);
  // Only the emulator that must die is a process of its own (a SIGKILL is a real death); the others run in this
  // one, which saves two start-ups of tsx on the critical path. All serve HTTP on 127.0.0.1.
  const silent = pino({ level: 'silent' });
  const [l4Emu, a10gStandby] = await Promise.all([
    startInProcess({ gpu: 'L4', speed: SPEED.L4, logger: silent }),
    startInProcess({ gpu: 'A10G', speed: SPEED.A10G, logger: silent }),
  ]);
  inProcess.push(l4Emu, a10gStandby);

  // L4: the real CLI as a process, writing the profile and a state file.
  const l4Out = join(tmp, 'l4.yaml');
  const l4Run = new Promise<number | null>((resolve, reject) => {
    const p = spawn(process.execPath, [
      '--import', 'tsx', cli, 'profile', '--url', l4Emu.url, '--gpu-type', 'L4', '--buckets', '100,12000/25', '--slo-tpot-ms', String(SLO),
      '--state', join(tmp, 'l4-state.json'), '--max-duration', '5m', '-o', l4Out, '--name', 'llama2-7b-l4',
      '--probe-min-requests', String(SIZING.minRequests), '--probe-ramp-min-requests', String(SIZING.rampMinRequests), '--probe-lifetimes', String(SIZING.lifetimes),
      '--probe-max-seconds', String(SIZING.maxProbeSeconds), '--max-probes', String(SEARCH.maxProbes),
    ], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(p);
    p.stderr!.on('data', (d: Buffer) => (l4Stderr += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => resolve(code));
  });

  // A10G: the library, with its emulator killed 300 ms into load probe KILL_AT, then resumed against a new one.
  const KILL_AT = 4;
  const statePath = join(tmp, 'a10g-state.json');
  const options = (url: string): ProfileOptions => ({ url, gpuType: 'A10G', buckets: BUCKETS, sloTpotMillis: SLO, maxDurationS: 300, statePath, sizing: SIZING, search: SEARCH });
  const a10gRun = (async () => {
    const a10gEmu = await startEmulator('A10G', SPEED.A10G);
    lap('A10G emulator process listening');
    let probes = 0;
    let killTimer: NodeJS.Timeout | undefined;
    a10gFirst = await runProfile(options(a10gEmu.url), {
      onEvent: (e: ProfileEvent) => {
        if (e.type === 'probe-done') probes++;
        if (e.type === 'probe-start' && probes + 1 === KILL_AT) {
          a10gKilledAtProbe = KILL_AT;
          killTimer = setTimeout(() => void kill(a10gEmu), 300);
        }
      },
    });
    clearTimeout(killTimer);
    await kill(a10gEmu);
    lap(`A10G endpoint killed after ${a10gFirst.probesRun} probes`);
    a10gSecond = await runProfile(options(a10gStandby.url));
  })();

  const [code] = await Promise.all([l4Run.finally(() => lap('L4 CLI done')), a10gRun.finally(() => lap('A10G resumed run done'))]);
  wallSeconds = (performance.now() - started) / 1000;
  expect(code, l4Stderr).toBe(0);
  l4Profile = parse(readFileSync(l4Out, 'utf8')) as GPUProfile;
  a10gProfile = a10gSecond.profile!;
}, 300_000);

afterAll(() => {
  // The numbers behind the assertions, for the record (docs/profiling.md quotes a run).
  console.log(`[profiler emulator test] wall ${wallSeconds.toFixed(0)} s\n${report.join('\n')}`);
});

describe('profiling real emulators over HTTP for two GPU types', () => {
  it('writes GPUProfiles the schema accepts, measured at the requested SLO over the requested buckets', () => {
    for (const p of [l4Profile, a10gProfile]) {
      const v = parseGPUProfile(p);
      expect(v.ok, JSON.stringify(v)).toBe(true);
      expect(p.spec.slo.tpotMillis).toBe(SLO);
      expect(p.spec.buckets).toEqual(BUCKETS);
      expect(p.metadata.annotations?.['melange.dev/measured-on']).toMatch(/EMULATOR/);
      expect(p.metadata.annotations?.[LOWER_BOUND_ANNOTATION]).toBeUndefined(); // the servable bucket was bracketed
    }
    expect(l4Profile.metadata.name).toBe('llama2-7b-l4');
    expect(l4Stderr).toMatch(/profile: bucket 1\/2 \(100 in, 25 out\) probe 1: alone/); // plain progress lines (no TTY)
  });

  it('measures the servable bucket (bracketed, never above what simulated time gives for the same arrivals)', async () => {
    const errors: string[] = [];
    for (const [gpu, p, statePath] of [['L4', l4Profile, 'l4-state.json'], ['A10G', a10gProfile, 'a10g-state.json']] as const) {
      const got = p.spec.maxThroughput[0]![0]!;
      const sim = simulatedEndpoint(gpu);
      const twin = await runProfile(
        // The HTTP run's time scale, so the wall-clock caps size its probes the same: the same arrival sequences.
        { url: 'http://127.0.0.1:1', gpuType: gpu, buckets: BUCKETS, sloTpotMillis: SLO, maxDurationS: 600, sizing: SIZING, search: SEARCH, timeScale: SPEED[gpu] },
        { fetch: sim.fetch, probe: sim.probe },
      );
      const simulated = twin.profile!.spec.maxThroughput[0]![0]!;
      const want = TRUE_CAPACITY[gpu][0]![0]!;
      const timing = (JSON.parse(readFileSync(join(tmp, statePath), 'utf8')) as { endpoint: { timing: string } }).endpoint.timing;
      const state = JSON.parse(readFileSync(join(tmp, statePath), 'utf8')) as { probeWallSeconds: number; buckets: Record<string, { probes: unknown[] }> };
      report.push(`${gpu.padEnd(5)} 100 in/25 out: ${state.buckets['100x25']!.probes.length} probes, ${state.probeWallSeconds.toFixed(1)} s probing; profiled ${got.toFixed(3)} req/s (${timing} timing), simulated time ${simulated.toFixed(3)} (${((got / simulated - 1) * 100).toFixed(1)}%), true ${want.toFixed(3)} (${((got / want - 1) * 100).toFixed(1)}%)`);
      expect(timing).toBe('server'); // the emulator's vLLM histograms, exact in emulated time
      if (!(got > 0)) errors.push(`${gpu}: ${got}`);
      // 10%: the two searches may end anywhere within their 3% tolerance, server timing's window is by completion
      // (scrapes) where simulated time's is by arrival, and time an HTTP request spends before the emulator sees
      // it is not latency to the server. Seen so far: -14% (a starved machine) to +3.5%.
      if (!(got <= simulated * 1.1)) errors.push(`${gpu}: ${got} req/s over HTTP, more than 10% above ${simulated} in simulated time`);
    }
    expect(errors).toEqual([]);
  });

  it('records the bucket the GPU cannot serve as such: 0, the reason, and no measured point', () => {
    for (const p of [l4Profile, a10gProfile]) {
      expect(p.spec.maxThroughput[1]).toEqual([0]);
      const why = JSON.parse(p.metadata.annotations![CANNOT_SERVE_ANNOTATION]!) as Record<string, string>;
      expect(Object.keys(why)).toEqual(['12000x25']);
      expect(why['12000x25']).toMatch(/http_400: This model's maximum context length is 10000 tokens/);
      expect(p.spec.measurements!.filter((m) => m.input === 12000)).toEqual([]);
      expect(p.spec.measurements!.filter((m) => m.input === 100 && m.output === 25).length).toBeGreaterThanOrEqual(3);
    }
  });

  it('a run whose endpoint dies midway stops, then resumes from its state against another emulator and finishes with the same result shape', () => {
    expect(a10gKilledAtProbe).toBeGreaterThan(0);
    expect(a10gFirst.status).toBe('endpoint-error');
    expect(a10gFirst.profile).toBeUndefined();
    // the probe hit by the kill is not recorded (unless it finished within the 300 ms before the kill)
    expect(a10gFirst.probesRun).toBeGreaterThanOrEqual(a10gKilledAtProbe - 1);
    expect(a10gFirst.probesRun).toBeLessThanOrEqual(a10gKilledAtProbe);
    expect(a10gSecond.status).toBe('complete');
    expect(a10gSecond.state.runs).toBe(2);
    expect(a10gSecond.state.endpoint?.url).not.toBe(a10gFirst.state.endpoint?.url);
    // Same shape as the uninterrupted L4 profile: same buckets, same cannot-serve set, every bucket measured.
    const shape = (p: GPUProfile) => ({
      buckets: p.spec.buckets,
      zero: p.spec.maxThroughput.map((row) => row.map((v) => v === 0)),
      cannot: Object.keys(JSON.parse(p.metadata.annotations![CANNOT_SERVE_ANNOTATION]!) as object).sort(),
      sizes: [...new Set(p.spec.measurements!.map((m) => `${m.input}x${m.output}`))].sort(),
    });
    expect(shape(a10gProfile)).toEqual(shape(l4Profile));
  });
});
