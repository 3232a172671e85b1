// Router overhead benchmark (issue #5): `npm run bench:router` (tsx bench/router-overhead.bench.ts). Not a test.
//
// Question: how much latency does the router add to a request, compared with calling the emulator directly,
// while it carries 200 concurrent streams? Target: p99 of the added latency <= 2 ms.
//
// Set-up (real processes, everything on 127.0.0.1):
//   - background: BENCH_EMULATORS (2) `melangectl emulate --gpu H100-80GB` processes at --speed BENCH_BG_SPEED (1,
//     real time, so tokens stream at a realistic pace) behind the router as pool `h100`;
//   - probe target: one more H100 emulator at --speed BENCH_PROBE_SPEED (100), i.e. a fast emulator configuration:
//     it only ever has one request at a time and answers a tiny request in ~1-2 ms, so what it adds is small
//     and the same whatever path the request took;
//   - one `melangectl router` process: the probe size bucket (<= 25 tokens in, <= 25 out) goes to pool `probe`
//     (the probe emulator) by the split, every other bucket to pool `h100` — the router's normal classify → split
//     table → least-loaded path for both;
//   - the background load in a process of its own (this file with --background), and the probes in this process
//     (node:http, keep-alive agent, no parsing beyond spotting `data: [DONE]`). Kept apart on purpose: a client
//     that also read the 200 streams would process their chunk bursts, which arrive right behind the router's
//     relaying, exactly when a routed probe's answer does — charging its own work to the router.
//
// Method:
//   1. Background load: BENCH_STREAMS (200) workers (in the background process) send streaming chat requests
//      through the router one after the other (prompt U[100, 300] tokens, output U[32, 96] tokens, seeded), so
//      200 streams are open at every moment; at --speed 1 that is ~2.4k SSE chunks per second through the
//      router. Once all are open, BENCH_WARMUP_S (10) s of unmeasured probes warm both paths.
//   2. Probes, during the background load, for BENCH_SECONDS (90) s: one small streaming chat request (20 prompt
//      tokens, 8 output tokens) every BENCH_PROBE_INTERVAL_MS (10) ms, one at a time, alternately DIRECT to the
//      probe emulator and ROUTED through the router to the same emulator, in the order D R R D D R R D … (ABBA:
//      neighbours in time are paired, so drifts in the machine's load cancel). Each probe is timed in real
//      milliseconds: TTFT = send → first body byte (the first SSE event; the router forwards the status line
//      together with it), and the whole probe = send → end of stream.
//   3. Added latency = quantile(routed) − quantile(direct), p50 and p99, of TTFT (what the target is about) and of
//      the whole probe; ratio routed / direct. Noise: an A/A split of the direct probes (even vs odd ones; should
//      be ≈ 0) and a bootstrap 95% interval of each difference. Router CPU per request from /proc.
//
// Why probes and not the TTFT of the 200 streams themselves: an emulator with 100 streams per replica answers
// each request after tens of ms that depend on how arrivals cluster around its engine steps (every newly
// scheduled request adds 30 emulated ms to its step); comparing those TTFTs measured the emulator's queueing
// reacting to the different arrival timing (≈ +190 ms at p50 in a first attempt, while the ends of the streams
// moved by +33 ms), not time spent in the router. The probes keep the router at 200 concurrent streams (the condition
// that matters for its event loop) while the request being timed meets an idle, fast emulator in both modes.
//
// Baseline in the same run (BENCH_RELAYS, default `router,bare`): the whole procedure — its own background
// process, warm-up, probes — is repeated with the router replaced by a bare relay (bench/support/bare-relay.ts:
// read the body, forward it over keep-alive, stream the answer chunk by chunk; no parsing, classification,
// metrics or usage taps). Its added latency is the floor of any relay written in Node on this machine under the
// same load; the ratio router / bare relay says how much of the added latency is the router's own work.
//
// PASS/FAIL: p99 added TTFT <= 2 ms (the point estimate; read it with the interval next to it). Exit status
// non-zero only if something broke (a process died, requests failed).
//
// Knobs (environment): BENCH_STREAMS (200), BENCH_SECONDS (90), BENCH_WARMUP_S (10), BENCH_PROBE_INTERVAL_MS (10),
// BENCH_EMULATORS (2), BENCH_BG_SPEED (1), BENCH_PROBE_SPEED (100), BENCH_SEED (1), BENCH_ROUTER_WORKERS (1: the
// router's --workers; router CPU is then summed over its process group), BENCH_RELAYS (`router,bare`: which relays,
// in that order), BENCH_PIN_RELAY=1 (the relay on a CPU of its own, everything else on the rest), BENCH_KEEP=1 (keep logs),
// BENCH_HEAP_SURVIVORS=DIR (what each relay's young-generation collections copy, by allocating function; printed at the end).

import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { PAPER_BUCKETS } from '../src/api/catalog.js';
import { requestBody } from '../src/loadgen/index.js';
import type { RouterConfigInput } from '../src/router/config.js';
import { agent, type BgStats, bootstrapDiff, delay, PROBE_HEADER, quantile as q, runBackground, send } from './support/overhead-probes.js';
import { allowedCpus, type BenchProcess, benchDir, cleanup, cpuSeconds, cpuSecondsOfGroup, pinToCpus, relayNodeArgs, startBareRelayProcess, startEmulatorProcess, startRouterProcess, startScriptProcess, stopAllOnSignal, stopBenchProcess } from './support/processes.js';
import { survivorLines, survivorPids } from './support/survivors.js';

const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n : dflt;
};
const STREAMS = Math.round(envNum('BENCH_STREAMS', 200));
const SECONDS = envNum('BENCH_SECONDS', 90);
const WARMUP_S = envNum('BENCH_WARMUP_S', 10);
const PROBE_INTERVAL_MS = envNum('BENCH_PROBE_INTERVAL_MS', 10);
const EMULATORS = Math.round(envNum('BENCH_EMULATORS', 2));
const BG_SPEED = envNum('BENCH_BG_SPEED', 1);
const PROBE_SPEED = envNum('BENCH_PROBE_SPEED', 100);
const SEED = Math.round(envNum('BENCH_SEED', 1));
const ROUTER_WORKERS = Math.round(envNum('BENCH_ROUTER_WORKERS', 1));
const RELAYS = parseRelays(process.env['BENCH_RELAYS'] ?? 'router,bare');
// BENCH_PIN_RELAY=1: the relay gets the last CPU to itself, every other process of the bench shares the others
// (what a router pod with its own CPU request has in a cluster); needs >= 2 CPUs.
const PIN_RELAY = process.env['BENCH_PIN_RELAY'] === '1';
// BENCH_HEAP_SURVIVORS=DIR: the relays sample what their young-generation collections copy (support/survivor-sampler.ts).
const SURVIVORS_DIR = process.env['BENCH_HEAP_SURVIVORS'] || undefined;
const CPUS = allowedCpus();
const RELAY_CPU = String(CPUS.at(-1));
const OTHER_CPUS = CPUS.slice(0, -1).join(',');
const TARGET_P99_MS = 2;
const MAX_PROBES = 100_000; // loop bound, far above what BENCH_SECONDS allows
const GPU = 'H100-80GB';
const PROBE_INPUT = 20;
const PROBE_OUTPUT = 8;
const ABBA: Mode[] = ['direct', 'routed', 'routed', 'direct'];

type Mode = 'direct' | 'routed';
type Relay = 'router' | 'bare';

function parseRelays(v: string): Relay[] {
  const out = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  const bad = out.filter((x) => x !== 'router' && x !== 'bare');
  if (out.length === 0 || bad.length > 0) throw new Error(`BENCH_RELAYS: expected a comma-separated list of "router" and "bare", got "${v}"`);
  return out as Relay[];
}

const log = (s = ''): void => { process.stdout.write(`${s}\n`); };
const f2 = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(2));
const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');

/** Added latency (routed − direct) of one phase, TTFT and whole probe, p50 and p99 with their 95% intervals. */
interface PhaseResult {
  relay: Relay;
  ttft: Added;
  whole: Added;
  relayCpuShare: number;
  failures: string[];
}
interface Added { p50: number; p99: number; ci50: [number, number]; ci99: [number, number] }

interface Emulators { background: BenchProcess[]; probe: BenchProcess }

/** Starts the relay under test: the router with the probe bucket split to pool `probe`, or the bare relay. */
async function startRelay(relay: Relay, emus: Emulators, dir: string): Promise<BenchProcess> {
  if (relay === 'bare') return startBareRelayProcess({ name: 'bare-relay', probeUrl: emus.probe.url, backgroundUrls: emus.background.map((e) => e.url), logDir: dir });
  const { inputEdges, outputEdges } = PAPER_BUCKETS;
  const config: RouterConfigInput = {
    service: { namespace: 'bench', name: 'overhead' },
    buckets: { inputEdges: [...inputEdges], outputEdges: [...outputEdges] },
    split: inputEdges.flatMap((_, i) => outputEdges.map((_, o) => ({ input: i, output: o, weights: { [i === 0 && o === 0 ? 'probe' : 'h100']: 1 } }))),
    pools: [
      { name: 'h100', gpuType: GPU, backends: emus.background.map((e) => e.url) },
      { name: 'probe', gpuType: GPU, backends: [emus.probe.url] },
    ],
  };
  const configFile = join(dir, 'router.yaml');
  writeFileSync(configFile, stringify(config));
  return startRouterProcess({ name: 'router', configFile, logDir: dir, workers: ROUTER_WORKERS });
}

/** One phase: background load through `relayProc`, warm-up, then the ABBA probes; prints its figures. */
async function runPhase(relay: Relay, relayProc: BenchProcess, emus: Emulators, dir: string): Promise<PhaseResult> {
  const name = relay === 'router' ? (ROUTER_WORKERS === 1 ? 'router (one process)' : `router (--workers ${ROUTER_WORKERS})`) : 'bare relay (floor)';
  log('');
  log(`=== ${name}`);
  const relayUrl = new URL(relayProc.url);
  const probeUrl = new URL(emus.probe.url);
  const failures: string[] = [];

  // ---- background: STREAMS closed-loop workers through the relay, in their own process
  const maxBgSeconds = WARMUP_S + SECONDS + 120;
  const bgProc = startScriptProcess(`background-${relay}`, fileURLToPath(import.meta.url), ['--background', relayProc.url, String(STREAMS), String(SEED), String(maxBgSeconds)], dir);
  if (PIN_RELAY) pinToCpus(bgProc.pid, OTHER_CPUS);
  const bgStats = (): BgStats[] => {
    const out: BgStats[] = [];
    for (const line of readFileSync(bgProc.proc.record.logFile, 'utf8').split('\n')) {
      if (!line.startsWith('{"bg":')) continue;
      try { out.push((JSON.parse(line) as { bg: BgStats }).bg); } catch { /* partial line */ }
    }
    return out;
  };
  const lastBg = (): BgStats | undefined => bgStats().at(-1);
  try {
    const rampDeadline = performance.now() + 60_000;
    while ((lastBg()?.open ?? 0) < STREAMS && performance.now() < rampDeadline) {
      bgProc.proc.assertRunning();
      await delay(200);
    }
    log(`background: ${lastBg()?.open ?? 0} streams open; warm-up ${WARMUP_S} s, load ${load()}`);
    // Warm the probe paths too (JIT, connections), not measured.
    const probeBodies = Array.from({ length: 256 }, (_, i) => Buffer.from(JSON.stringify(requestBody('chat', PROBE_INPUT, PROBE_OUTPUT, { stream: true, variant: 100_000 + i }))));
    const warmEnd = performance.now() + WARMUP_S * 1000;
    bgProc.proc.assertRunning();
    for (let i = 0; performance.now() < warmEnd && i < 10_000; i++) {
      try {
        await send(i % 2 === 0 ? probeUrl : relayUrl, probeBodies[i % probeBodies.length]!, PROBE_HEADER);
      } catch (err) {
        failures.push(`warm-up: ${(err as Error).message}`);
      }
      await delay(PROBE_INTERVAL_MS);
    }

    // ---- probes
    const loadBefore = load();
    const c0 = process.cpuUsage();
    const r0 = cpuSecondsOfGroup(relayProc.pid) ?? 0;
    const e0 = emus.background.reduce((s, e) => s + (cpuSeconds(e.pid) ?? 0), 0);
    const p0 = cpuSeconds(emus.probe.pid) ?? 0;
    bgProc.proc.assertRunning();
    const bg0 = lastBg();
    const b0 = cpuSeconds(bgProc.pid) ?? 0;
    const samples: { mode: Mode; ttftMs: number; latencyMs: number }[] = [];
    const start = performance.now();
    const end = start + SECONDS * 1000;
    const progress = setInterval(() => log(`  ${((performance.now() - start) / 1000).toFixed(0)} s: ${samples.length} probes, ${lastBg()?.open ?? '?'} background streams open, load ${load()}`), 30_000);
    let routedProbes = 0;
    for (let i = 0; i < MAX_PROBES && performance.now() < end && failures.length < 20; i++) {
      const wait = start + i * PROBE_INTERVAL_MS - performance.now();
      if (wait > 0) await delay(wait);
      const mode = ABBA[i % ABBA.length]!;
      if (mode === 'routed') routedProbes++;
      try {
        samples.push({ mode, ...(await send(mode === 'direct' ? probeUrl : relayUrl, probeBodies[i % probeBodies.length]!, PROBE_HEADER)) });
      } catch (err) {
        failures.push(`${mode}: ${(err as Error).message}`);
      }
    }
    clearInterval(progress);
    const wall = (performance.now() - start) / 1000;
    const c1 = process.cpuUsage(c0);
    const relayCpu = (cpuSecondsOfGroup(relayProc.pid) ?? r0) - r0;
    const bgEmuCpu = emus.background.reduce((s, e) => s + (cpuSeconds(e.pid) ?? 0), 0) - e0;
    const probeEmuCpu = (cpuSeconds(emus.probe.pid) ?? p0) - p0;
    const bgCpu = (cpuSeconds(bgProc.pid) ?? b0) - b0;
    const window = bgStats().filter((b) => bg0 !== undefined && b.t > bg0.t);
    const bg1 = window.at(-1);
    const bgRequests = (bg1?.done ?? 0) - (bg0?.done ?? 0);
    const bgChunkRate = ((bg1?.chunks ?? 0) - (bg0?.chunks ?? 0)) / Math.max(1e-9, ((bg1?.t ?? 0) - (bg0?.t ?? 0)) / 1000);
    const openMin = Math.min(...window.map((b) => b.minOpen));
    const openMax = Math.max(...window.map((b) => b.maxOpen));
    const bgFailed = bg1?.failures ?? 0;
    if (bgFailed > 0) failures.push(`background (${bgFailed}): ${bg1?.firstFailure ?? 'failure'}`);
    const loadAfter = load();

    // ---- analysis
    const D = samples.filter((s) => s.mode === 'direct');
    const R = samples.filter((s) => s.mode === 'routed');
    log(`probes: ${samples.length} (${D.length} direct, ${R.length} through the ${relay === 'router' ? 'router' : 'bare relay'}), ${failures.length} failed, over ${wall.toFixed(0)} s`);
    log(`background during the probes: ${bgRequests} streams completed, ${bgChunkRate.toFixed(0)} SSE chunks/s through the relay, open streams between ${openMin} and ${openMax}; ${bgFailed} failed`);
    log(`CPU during the probes: ${relay} ${relayCpu.toFixed(1)} s (${((100 * relayCpu) / wall).toFixed(0)}% of a core; ${((1000 * relayCpu) / Math.max(1, bgRequests + routedProbes)).toFixed(2)} ms per request incl. its streamed chunks), background emulators ${bgEmuCpu.toFixed(1)} s, probe emulator ${probeEmuCpu.toFixed(1)} s, background client ${bgCpu.toFixed(1)} s, probe client ${((c1.user + c1.system) / 1e6).toFixed(1)} s`);
    log(`load average ${loadBefore} → ${loadAfter} (${availableParallelism()} cores)`);
    if (D.length < 100 || R.length < 100) throw new Error('too few probes for percentiles');
    log('');
    log(`${''.padEnd(14)}${'direct p50'.padStart(11)}${'routed p50'.padStart(11)}  ${'added p50 [95% CI]'.padEnd(26)}${'direct p99'.padStart(11)}${'routed p99'.padStart(11)}  ${'added p99 [95% CI]'.padEnd(26)}ratio p50 / p99`);
    const added = (get: (s: { ttftMs: number; latencyMs: number }) => number, label: string): Added => {
      const d = D.map(get);
      const r = R.map(get);
      const d50 = q(d, 50), r50 = q(r, 50), d99 = q(d, 99), r99 = q(r, 99);
      const a: Added = { p50: r50 - d50, p99: r99 - d99, ci50: bootstrapDiff(r, d, 50, SEED + 7), ci99: bootstrapDiff(r, d, 99, SEED + 7) };
      log(`${label.padEnd(14)}${f2(d50).padStart(11)}${f2(r50).padStart(11)}  ${`${f2(a.p50)} [${f2(a.ci50[0])}, ${f2(a.ci50[1])}]`.padEnd(26)}` +
        `${f2(d99).padStart(11)}${f2(r99).padStart(11)}  ${`${f2(a.p99)} [${f2(a.ci99[0])}, ${f2(a.ci99[1])}]`.padEnd(26)}${(r50 / d50).toFixed(2)} / ${(r99 / d99).toFixed(2)}`);
      return a;
    };
    const ttft = added((s) => s.ttftMs, 'TTFT');
    const whole = added((s) => s.latencyMs, 'whole probe');
    const dEven = D.filter((_, k) => k % 2 === 0).map((s) => s.ttftMs);
    const dOdd = D.filter((_, k) => k % 2 === 1).map((s) => s.ttftMs);
    log(`A/A noise floor (TTFT, direct vs direct, alternate direct probes, ${dEven.length} vs ${dOdd.length}): p50 ${f2(q(dEven, 50) - q(dOdd, 50))} ms, p99 ${f2(q(dEven, 99) - q(dOdd, 99))} ms`);
    return { relay, ttft, whole, relayCpuShare: relayCpu / wall, failures };
  } finally {
    await stopBenchProcess(bgProc);
  }
}

async function main(): Promise<number> {
  log(`Mélange router overhead benchmark — node ${process.version}, ${availableParallelism()} cores, load average ${load()}`);
  log(`relays, one after the other: ${RELAYS.map((r) => (r === 'router' ? `router (${ROUTER_WORKERS === 1 ? 'one process' : `--workers ${ROUTER_WORKERS}`})` : 'bare relay (baseline: the floor of a Node relay)')).join(', ')}`);
  log(`background: ${STREAMS} concurrent streams through the relay to ${EMULATORS} x ${GPU} emulator(s) at --speed ${BG_SPEED}`);
  log(`probes: ${PROBE_INPUT}-token prompt, ${PROBE_OUTPUT} output tokens, every ${PROBE_INTERVAL_MS} ms for ${SECONDS} s, alternately direct and through the relay (ABBA) to one ${GPU} emulator at --speed ${PROBE_SPEED}`);
  log('all times are real (wall-clock) milliseconds measured by this client');
  log(`relay node flags: ${relayNodeArgs().join(' ') || '(none)'} (the router pods' flags from the router defaults, then BENCH_RELAY_NODE_ARGS)`);
  stopAllOnSignal();
  const startedAt = Date.now();
  const dir = benchDir('router');
  let broken = false;
  const results: PhaseResult[] = [];
  try {
    const background = [];
    for (let i = 0; i < EMULATORS; i++) background.push(await startEmulatorProcess({ name: `emu-bg-${i}`, gpu: GPU, speed: BG_SPEED, logDir: dir }));
    const emus: Emulators = { background, probe: await startEmulatorProcess({ name: 'emu-probe', gpu: GPU, speed: PROBE_SPEED, logDir: dir }) };
    if (PIN_RELAY) {
      if (CPUS.length < 2) throw new Error(`BENCH_PIN_RELAY=1 needs at least 2 CPUs (allowed: ${CPUS.join(',') || 'unknown'})`);
      for (const e of [...background, emus.probe]) pinToCpus(e.pid, OTHER_CPUS);
      pinToCpus(process.pid, OTHER_CPUS);
      log(`pinned: the relay on CPU ${RELAY_CPU}, the emulators and both clients on CPU ${OTHER_CPUS}`);
    }
    const relayPids = new Map<Relay, number>();
    for (const relay of RELAYS) {
      const proc = await startRelay(relay, emus, dir);
      relayPids.set(relay, proc.pid);
      if (PIN_RELAY) pinToCpus(proc.pid, RELAY_CPU);
      try {
        results.push(await runPhase(relay, proc, emus, dir));
      } finally {
        await stopBenchProcess(proc);
      }
    }
    if (SURVIVORS_DIR) {
      log('');
      log('young-generation survivors (BENCH_HEAP_SURVIVORS; the sampler slows the relays: take latencies from a run without it):');
      // With --workers the router's relaying happens in its workers, which inherit the sampler: each reports.
      const names = new Map([...relayPids].map(([relay, pid]) => [pid, relay === 'router' && ROUTER_WORKERS > 1 ? 'router primary' : relay]));
      const pids = new Set([...relayPids.values(), ...survivorPids(SURVIVORS_DIR, startedAt)]); // a relay without a report says so
      for (const pid of pids) for (const line of survivorLines(SURVIVORS_DIR, pid, names.get(pid) ?? `router worker ${pid}`)) log(line);
    }
    log('');
    log(`added latency per request (TTFT, through the relay − direct) at ${STREAMS} concurrent streams:`);
    for (const r of results) log(`  ${r.relay.padEnd(7)} p50 ${f2(r.ttft.p50)} ms [${f2(r.ttft.ci50[0])}, ${f2(r.ttft.ci50[1])}], p99 ${f2(r.ttft.p99)} ms [${f2(r.ttft.ci99[0])}, ${f2(r.ttft.ci99[1])}], CPU ${(100 * r.relayCpuShare).toFixed(0)}% of a core`);
    const router = results.find((r) => r.relay === 'router');
    const bare = results.find((r) => r.relay === 'bare');
    if (router && bare) log(`ratio router / bare relay: p50 ${(router.ttft.p50 / bare.ttft.p50).toFixed(2)}, p99 ${(router.ttft.p99 / bare.ttft.p99).toFixed(2)}, CPU ${(router.relayCpuShare / bare.relayCpuShare).toFixed(2)}`);
    for (const r of results) log(`${r.ttft.p99 <= TARGET_P99_MS ? 'PASS' : 'FAIL'}  ${r.relay === 'router' ? 'router' : 'bare relay (for reference)'}: p99 added latency ${f2(r.ttft.p99)} ms <= ${TARGET_P99_MS} ms`);
    const failures = results.flatMap((r) => r.failures.map((f) => `${r.relay}: ${f}`));
    if (failures.length > 0) {
      broken = true;
      log(`ERROR: ${failures.length} failure(s); first: ${failures.slice(0, 3).join(' | ')}`);
    }
  } catch (err) {
    broken = true;
    log(`ERROR: ${(err as Error).stack ?? String(err)}`);
  } finally {
    agent.destroy();
    const errors = await cleanup(dir);
    for (const e of errors) { broken = true; log(`ERROR stopping a process: ${e}`); }
  }
  return broken ? 1 : 0;
}

const done = (code: number) => { process.exitCode = code; };
const fail = (err: unknown) => { console.error(err); process.exitCode = 1; };
if (process.argv[2] === '--background') {
  const [url, streams, seed, maxSeconds] = process.argv.slice(3);
  runBackground(new URL(url!), Number(streams), Number(seed), Number(maxSeconds)).then(() => done(0), fail);
} else {
  main().then(done, fail);
}
