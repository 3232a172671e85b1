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
// PASS/FAIL: p99 added TTFT <= 2 ms (the point estimate; read it with the interval next to it). Exit status
// non-zero only if something broke (a process died, requests failed).
//
// Knobs (environment): BENCH_STREAMS (200), BENCH_SECONDS (90), BENCH_WARMUP_S (10), BENCH_PROBE_INTERVAL_MS (10),
// BENCH_EMULATORS (2), BENCH_BG_SPEED (1), BENCH_PROBE_SPEED (100), BENCH_SEED (1), BENCH_ROUTER_WORKERS (1: the
// router's --workers; router CPU is then summed over its process group), BENCH_KEEP=1 (keep logs).

import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { PAPER_BUCKETS } from '../src/api/catalog.js';
import { mulberry32 } from '../src/common/random.js';
import { percentile, requestBody } from '../src/loadgen/index.js';
import type { RouterConfigInput } from '../src/router/config.js';
import { benchDir, cleanup, cpuSeconds, cpuSecondsOfGroup, startEmulatorProcess, startRouterProcess, startScriptProcess, stopAllOnSignal, stopBenchProcess } from './support/processes.js';

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
const TARGET_P99_MS = 2;
const MAX_PROBES = 100_000; // loop bound, far above what BENCH_SECONDS allows
const GPU = 'H100-80GB';
const PROBE_INPUT = 20;
const PROBE_OUTPUT = 8;
const ABBA: Mode[] = ['direct', 'routed', 'routed', 'direct'];

type Mode = 'direct' | 'routed';

const log = (s = ''): void => { process.stdout.write(`${s}\n`); };
const f2 = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(2));
const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });

/** One streaming chat request; resolves with its timings, rejects on any failure (status, cut stream). */
function send(url: URL, body: Buffer, onChunk?: () => void): Promise<{ ttftMs: number; latencyMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first: number | undefined;
    let tail = '';
    const req = http.request(
      { hostname: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length, accept: 'text/event-stream' } },
      (res) => {
        res.on('data', (c: Buffer) => {
          if (first === undefined) first = performance.now();
          onChunk?.();
          tail = (tail + c.toString('latin1')).slice(-64);
        });
        res.on('end', () => {
          const t1 = performance.now();
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${tail}`));
          else if (!tail.includes('data: [DONE]')) reject(new Error('stream ended without [DONE]'));
          else resolve({ ttftMs: (first ?? t1) - t0, latencyMs: t1 - t0 });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(120_000, () => req.destroy(new Error('request timeout (120 s)')));
    req.on('error', reject);
    req.end(body);
  });
}

const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
const q = (xs: readonly number[], p: number): number => percentile(sorted(xs), p) ?? NaN;

/** Bootstrap 95% interval of quantile_p(routed) − quantile_p(direct). */
function bootstrapDiff(routed: readonly number[], direct: readonly number[], p: number, rounds = 300): [number, number] {
  const rnd = mulberry32(SEED + 7);
  const resample = (xs: readonly number[]) => {
    const out = new Array<number>(xs.length);
    for (let i = 0; i < xs.length; i++) out[i] = xs[Math.floor(rnd() * xs.length)]!;
    return out;
  };
  const diffs: number[] = [];
  for (let r = 0; r < rounds; r++) diffs.push(q(resample(routed), p) - q(resample(direct), p));
  diffs.sort((a, b) => a - b);
  return [percentile(diffs, 2.5)!, percentile(diffs, 97.5)!];
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface BgStats {
  /** ms since the background process started. */
  t: number;
  open: number;
  /** Fewest / most streams open during the last interval. */
  minOpen: number;
  maxOpen: number;
  done: number;
  chunks: number;
  failures: number;
  firstFailure?: string;
}

/**
 * Background mode (`--background URL STREAMS SEED MAX_SECONDS`): STREAMS closed-loop workers through the router;
 * a `{"bg": BgStats}` line on stdout every 500 ms; exits after MAX_SECONDS or on SIGTERM.
 */
async function background(url: URL, streams: number, seed: number, maxSeconds: number): Promise<number> {
  const rnd = mulberry32(seed);
  const bodies: Buffer[] = [];
  for (let i = 0; i < 1024; i++) {
    const input = 100 + Math.floor(rnd() * 201);
    const output = 32 + Math.floor(rnd() * 65);
    bodies.push(Buffer.from(JSON.stringify(requestBody('chat', input, output, { stream: true, variant: i }))));
  }
  const t0 = performance.now();
  const end = t0 + maxSeconds * 1000;
  const st: BgStats = { t: 0, open: 0, minOpen: Infinity, maxOpen: 0, done: 0, chunks: 0, failures: 0 };
  const onChunk = () => { st.chunks++; };
  const report = setInterval(() => {
    st.t = performance.now() - t0;
    process.stdout.write(`${JSON.stringify({ bg: { ...st, minOpen: Math.min(st.minOpen, st.open) } })}\n`);
    st.minOpen = st.open;
    st.maxOpen = st.open;
  }, 500);
  process.once('SIGTERM', () => process.exit(0));
  const worker = async (w: number) => {
    await delay((w / streams) * 2000); // stagger, so the streams do not move in lock-step
    let k = w * 37;
    while (performance.now() < end && st.failures < 100) {
      st.open++;
      st.maxOpen = Math.max(st.maxOpen, st.open);
      try {
        await send(url, bodies[k++ % bodies.length]!, onChunk);
        st.done++;
      } catch (err) {
        st.failures++;
        st.firstFailure ??= (err as Error).message;
      } finally {
        st.open--;
        st.minOpen = Math.min(st.minOpen, st.open);
      }
    }
  };
  await Promise.all(Array.from({ length: streams }, (_, w) => worker(w)));
  clearInterval(report);
  return 0;
}

async function main(): Promise<number> {
  log(`Mélange router overhead benchmark — node ${process.version}, ${availableParallelism()} cores, load average ${load()}`);
  log(`router: ${ROUTER_WORKERS === 1 ? 'one process' : `--workers ${ROUTER_WORKERS}`}`);
  log(`background: ${STREAMS} concurrent streams through the router to ${EMULATORS} x ${GPU} emulator(s) at --speed ${BG_SPEED}`);
  log(`probes: ${PROBE_INPUT}-token prompt, ${PROBE_OUTPUT} output tokens, every ${PROBE_INTERVAL_MS} ms for ${SECONDS} s, alternately direct and routed (ABBA) to one ${GPU} emulator at --speed ${PROBE_SPEED}`);
  log('all times are real (wall-clock) milliseconds measured by this client');
  stopAllOnSignal();
  const dir = benchDir('router');
  let broken = false;
  const bgFailures: string[] = [];
  const probeFailures: string[] = [];
  try {
    const bgEmus = [];
    for (let i = 0; i < EMULATORS; i++) bgEmus.push(await startEmulatorProcess({ name: `emu-bg-${i}`, gpu: GPU, speed: BG_SPEED, logDir: dir }));
    const probeEmu = await startEmulatorProcess({ name: 'emu-probe', gpu: GPU, speed: PROBE_SPEED, logDir: dir });
    const { inputEdges, outputEdges } = PAPER_BUCKETS;
    const config: RouterConfigInput = {
      service: { namespace: 'bench', name: 'overhead' },
      buckets: { inputEdges: [...inputEdges], outputEdges: [...outputEdges] },
      split: inputEdges.flatMap((_, i) => outputEdges.map((_, o) => ({ input: i, output: o, weights: { [i === 0 && o === 0 ? 'probe' : 'h100']: 1 } }))),
      pools: [
        { name: 'h100', gpuType: GPU, backends: bgEmus.map((e) => e.url) },
        { name: 'probe', gpuType: GPU, backends: [probeEmu.url] },
      ],
    };
    const configFile = join(dir, 'router.yaml');
    writeFileSync(configFile, stringify(config));
    const router = await startRouterProcess({ name: 'router', configFile, logDir: dir, workers: ROUTER_WORKERS });
    const routerUrl = new URL(router.url);
    const probeUrl = new URL(probeEmu.url);

    // ---- background: STREAMS closed-loop workers through the router, in their own process
    const maxBgSeconds = WARMUP_S + SECONDS + 120;
    const bgProc = startScriptProcess('background', fileURLToPath(import.meta.url), ['--background', router.url, String(STREAMS), String(SEED), String(maxBgSeconds)], dir);
    const bgStats = (): BgStats[] => {
      const out: BgStats[] = [];
      for (const line of readFileSync(bgProc.proc.record.logFile, 'utf8').split('\n')) {
        if (!line.startsWith('{"bg":')) continue;
        try { out.push((JSON.parse(line) as { bg: BgStats }).bg); } catch { /* partial line */ }
      }
      return out;
    };
    const lastBg = (): BgStats | undefined => bgStats().at(-1);
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
        await send(i % 2 === 0 ? probeUrl : routerUrl, probeBodies[i % probeBodies.length]!);
      } catch (err) {
        probeFailures.push(`warm-up: ${(err as Error).message}`);
      }
      await delay(PROBE_INTERVAL_MS);
    }

    // ---- probes
    const loadBefore = load();
    const c0 = process.cpuUsage();
    const r0 = cpuSecondsOfGroup(router.pid) ?? 0;
    const e0 = bgEmus.reduce((s, e) => s + (cpuSeconds(e.pid) ?? 0), 0);
    const p0 = cpuSeconds(probeEmu.pid) ?? 0;
    bgProc.proc.assertRunning();
    const bg0 = lastBg();
    const b0 = cpuSeconds(bgProc.pid) ?? 0;
    const samples: { mode: Mode; i: number; ttftMs: number; latencyMs: number }[] = [];
    const start = performance.now();
    const end = start + SECONDS * 1000;
    const progress = setInterval(() => log(`  ${((performance.now() - start) / 1000).toFixed(0)} s: ${samples.length} probes, ${lastBg()?.open ?? '?'} background streams open, load ${load()}`), 30_000);
    let routedProbes = 0;
    for (let i = 0; i < MAX_PROBES && performance.now() < end && probeFailures.length < 20; i++) {
      const due = start + i * PROBE_INTERVAL_MS;
      const wait = due - performance.now();
      if (wait > 0) await delay(wait);
      const mode = ABBA[i % ABBA.length]!;
      if (mode === 'routed') routedProbes++;
      try {
        const r = await send(mode === 'direct' ? probeUrl : routerUrl, probeBodies[i % probeBodies.length]!);
        samples.push({ mode, i, ...r });
      } catch (err) {
        probeFailures.push(`${mode}: ${(err as Error).message}`);
      }
    }
    clearInterval(progress);
    const wall = (performance.now() - start) / 1000;
    const c1 = process.cpuUsage(c0);
    const routerCpu = (cpuSecondsOfGroup(router.pid) ?? r0) - r0;
    const bgEmuCpu = bgEmus.reduce((s, e) => s + (cpuSeconds(e.pid) ?? 0), 0) - e0;
    const probeEmuCpu = (cpuSeconds(probeEmu.pid) ?? p0) - p0;
    const bgCpu = (cpuSeconds(bgProc.pid) ?? b0) - b0;
    const window = bgStats().filter((b) => bg0 !== undefined && b.t > bg0.t);
    const bg1 = window.at(-1);
    const bgRequests = (bg1?.done ?? 0) - (bg0?.done ?? 0);
    const bgChunkRate = ((bg1?.chunks ?? 0) - (bg0?.chunks ?? 0)) / Math.max(1e-9, ((bg1?.t ?? 0) - (bg0?.t ?? 0)) / 1000);
    const openMin = Math.min(...window.map((b) => b.minOpen));
    const openMax = Math.max(...window.map((b) => b.maxOpen));
    const bgFailed = bg1?.failures ?? 0;
    if (bgFailed > 0) bgFailures.push(bg1?.firstFailure ?? 'failure');
    const loadAfter = load();
    await stopBenchProcess(bgProc);

    // ---- analysis
    const D = samples.filter((s) => s.mode === 'direct');
    const R = samples.filter((s) => s.mode === 'routed');
    log('');
    log(`probes: ${samples.length} (${D.length} direct, ${R.length} routed), ${probeFailures.length} failed, over ${wall.toFixed(0)} s`);
    log(`background during the probes: ${bgRequests} streams completed, ${bgChunkRate.toFixed(0)} SSE chunks/s through the router, open streams between ${openMin} and ${openMax}; ${bgFailed} failed`);
    log(`CPU during the probes: router ${routerCpu.toFixed(1)} s (${((100 * routerCpu) / wall).toFixed(0)}% of a core; ${((1000 * routerCpu) / Math.max(1, bgRequests + routedProbes)).toFixed(2)} ms per request incl. its streamed chunks), background emulators ${bgEmuCpu.toFixed(1)} s, probe emulator ${probeEmuCpu.toFixed(1)} s, background client ${bgCpu.toFixed(1)} s, probe client ${((c1.user + c1.system) / 1e6).toFixed(1)} s`);
    log(`load average ${loadBefore} → ${loadAfter} (${availableParallelism()} cores)`);
    if (D.length < 100 || R.length < 100) throw new Error('too few probes for percentiles');
    log('');
    log(`${''.padEnd(14)}${'direct p50'.padStart(11)}${'routed p50'.padStart(11)}  ${'added p50 [95% CI]'.padEnd(26)}${'direct p99'.padStart(11)}${'routed p99'.padStart(11)}  ${'added p99 [95% CI]'.padEnd(26)}ratio p50 / p99`);
    const added: Record<string, [number, number]> = {};
    for (const [label, get] of [['TTFT', (s: { ttftMs: number }) => s.ttftMs], ['whole probe', (s: { latencyMs: number }) => s.latencyMs]] as const) {
      const d = D.map(get);
      const r = R.map(get);
      const d50 = q(d, 50), r50 = q(r, 50), d99 = q(d, 99), r99 = q(r, 99);
      const ci50 = bootstrapDiff(r, d, 50);
      const ci99 = bootstrapDiff(r, d, 99);
      added[label] = [r50 - d50, r99 - d99];
      log(`${label.padEnd(14)}${f2(d50).padStart(11)}${f2(r50).padStart(11)}  ${`${f2(r50 - d50)} [${f2(ci50[0])}, ${f2(ci50[1])}]`.padEnd(26)}` +
        `${f2(d99).padStart(11)}${f2(r99).padStart(11)}  ${`${f2(r99 - d99)} [${f2(ci99[0])}, ${f2(ci99[1])}]`.padEnd(26)}${(r50 / d50).toFixed(2)} / ${(r99 / d99).toFixed(2)}`);
    }
    const dEven = D.filter((_, k) => k % 2 === 0).map((s) => s.ttftMs);
    const dOdd = D.filter((_, k) => k % 2 === 1).map((s) => s.ttftMs);
    log(`A/A noise floor (TTFT, direct vs direct, alternate direct probes, ${dEven.length} vs ${dOdd.length}): p50 ${f2(q(dEven, 50) - q(dOdd, 50))} ms, p99 ${f2(q(dEven, 99) - q(dOdd, 99))} ms`);
    log('');
    const [add50, add99] = added['TTFT']!;
    log(`added latency per request (TTFT, routed − direct) at ${STREAMS} concurrent streams: p50 ${f2(add50)} ms, p99 ${f2(add99)} ms`);
    log(`${add99 <= TARGET_P99_MS ? 'PASS' : 'FAIL'}  p99 added latency ${f2(add99)} ms <= ${TARGET_P99_MS} ms`);
    if (probeFailures.length > 0 || bgFailures.length > 0) {
      broken = true;
      log(`ERROR: ${probeFailures.length} probe(s) and ${bgFailed} background stream(s) failed; first: ${[...probeFailures, ...bgFailures].slice(0, 3).join(' | ')}`);
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
  background(new URL(url!), Number(streams), Number(seed), Number(maxSeconds)).then(done, fail);
} else {
  main().then(done, fail);
}
