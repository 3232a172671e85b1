// SLO attainment benchmark (issue #5): `npm run bench:slo` (tsx bench/slo-attainment.bench.ts). Not a test.
//
// The paper's real-deployment scenario on the emulator: 4 req/s, 2,000 Poisson requests, the mixed workload
// (examples/workloads/mixed-80-20.yaml: 80% short chat, 20% long documents, sizes drawn uniformly inside their
// bucket), 10% headroom, at a 120 ms and a 40 ms mean-TPOT SLO (the paper's TPOT: request latency / output
// tokens, queueing and prefill included). Per SLO:
//
//   1. Profile: each GPU type's capacity per bucket under the SLO, measured on the emulator's own engine in
//      simulated time (bench/support/emulated-profiles.ts, cached), at the buckets' upper edges like the paper.
//   2. Plan: our solver (fractional mode, HiGHS) over L4 / A10G / A100-80GB / H100-80GB at the paper's prices,
//      rate 4 req/s, the distribution's bucket fractions, headroom 10%. A bucket that no GPU type can serve under
//      the SLO even alone (profile 0 everywhere) cannot be planned: it is left out of the solve and reported; its
//      requests are still sent and count as misses unless they happen to make it.
//   3. Serve: one real `melangectl emulate` process per solved replica, on 127.0.0.1 (free ports).
//   4. Ours: a real `melangectl router` process with the solved split (one pool per GPU type, smooth weighted
//      round-robin per bucket, then the least-loaded replica of the pool) and the SLO guard (docs/router.md):
//      routing.sloGuard at the SLO, each pool carrying its GPU type's latency model fitted, as `melangectl profile`
//      does, to one request alone on the emulator at each bucket's upper edges. BENCH_GUARD=0 turns the guard off;
//      the twin without it is printed either way.
//   5. Baseline, the paper's load balancer, on the SAME replicas and the SAME requests: the same router binary
//      configured as the paper's balancer (no code of its own): one pool per replica, and for every bucket the
//      weights = that replica's GPU type's max throughput for the bucket (the profile above), picked at random
//      (`routing.strategy: random`, seeded). So each request goes to a replica at random with probability ∝ its
//      type's throughput for the request's size bucket, ignoring the solved split. (The paper estimates the
//      output length from a running mean; here both balancers classify by the request's max_tokens, i.e. the
//      baseline gets the true bucket — if anything this favours the baseline.)
//   6. Load: our load generator (`runLoad`, in this process), seeded: both balancers get the identical sequence
//      of arrival times, sizes and prompts (checked request by request against the sequence recomputed here).
//      Before measuring, each emulator gets two tiny requests and each router a GET /v1/models (JIT warm-up).
//   7. Simulated twin (bench/support/twin.ts): the same plan, requests and balancing decisions (the router's own
//      split table, pickers and least-loaded rule, same seed) with every replica's engine advanced in exact
//      simulated time. It shows what the plan and the policy alone yield; the gap to the measured figure is what
//      the real processes and the shared machine add.
//
// Reported per SLO: attainment (% of SENT requests with TPOT <= SLO; errors count as misses) ours vs baseline and
// their ratio; the ceiling (share of the requests that an idle replica of some GPU type of the allocation could
// serve within the SLO — tiny-output requests cannot, whatever the balancer: a 1-token answer's TPOT is its
// whole latency, prefill and per-request overhead included) and the attainment among those servable requests; PASS/FAIL against the issue's
// targets (>= 99.95% at 120 ms, >= 99.5% at 40 ms, and not worse than the baseline). Per balancer also the GPU
// types that served the requests (the router's X-Melange-Pool header), how many met the SLO there, and how many
// were sent to a type that could not have met the SLO for them even idle.
//
// Time: BENCH_SPEED=X runs every emulator at --speed X (X emulated seconds per real second) and the load
// generator at time scale X, so arrival times and service times are scaled identically (4 req/s stays 4 req/s of
// emulated time). Real overheads (HTTP, the router, timers) are NOT scaled down: at speed X, 1 ms of real
// overhead is X ms of emulated latency, so a speed > 1 is pessimistic for both balancers alike. Default 1 (real
// time: ~500 s per run, four runs ≈ 35 min). Exit status: non-zero only if something broke (a process, a solve);
// missed targets print FAIL.
//
// Knobs (environment): BENCH_SPEED (1), BENCH_REQUESTS (2000), BENCH_RATE (4), BENCH_SEED (1),
// BENCH_HEADROOM (10), BENCH_SLOS ("120,40"), BENCH_DISTRIBUTION (examples/workloads/mixed-80-20.yaml), BENCH_GUARD (1),
// BENCH_GUARD_THRESHOLD (routing.sloGuard.threshold; the router's default 0.5),
// BENCH_KEEP=1 (keep the logs and configs in the printed directory), BENCH_TWIN_ONLY=1 (only the simulated twins of
// both balancers and the misses among servable requests, in seconds: for trying a routing policy first).

import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PAPER_BUCKETS } from '../src/api/catalog.js';
import { exponential, mulberry32 } from '../src/common/random.js';
import { enginePerf, GPU_MODELS, GPU_TYPES, paperTpot, simulate, type GpuType } from '../src/emulator/index.js';
import { loadDistribution, requestBody, runLoad, sizeSampler, type LoadReport, type RequestResult, type SizeDistribution } from '../src/loadgen/index.js';
import { bucketIndex } from '../src/router/buckets.js';
import type { RouterConfigInput } from '../src/router/config.js';
import { loadHighsEngine } from '../src/solver/highs-engine.js';
import { solve } from '../src/solver/solve.js';
import { isSuccess, type SolveSuccess } from '../src/solver/types.js';
import { repoPath } from '../test/support/paths.js';
import type { LatencyModel } from '../src/api/latency.js';
import { fitLatencyModel, formatLatencyFit, roundLatencyModel } from '../src/profiler/latency-fit.js';
import { cachedEmulatedProfile } from './support/emulated-profiles.js';
import { simulateRun, type TwinRequest, type TwinResult } from './support/twin.js';
import { benchDir, cleanup, cpuSeconds, startEmulatorProcess, startRouterProcess, stopAllOnSignal, stopBenchProcess, type BenchProcess } from './support/processes.js';

const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n : dflt;
};
const SPEED = envNum('BENCH_SPEED', 1);
const REQUESTS = Math.round(envNum('BENCH_REQUESTS', 2000));
const RATE = envNum('BENCH_RATE', 4);
const SEED = Math.round(envNum('BENCH_SEED', 1));
const HEADROOM = envNum('BENCH_HEADROOM', 10);
const SLOS = (process.env['BENCH_SLOS'] ?? '120,40').split(',').map(Number).filter((x) => x > 0);
const DISTRIBUTION = process.env['BENCH_DISTRIBUTION'] ?? repoPath('examples', 'workloads', 'mixed-80-20.yaml');
const TARGET: Record<number, number> = { 120: 99.95, 40: 99.5 };
const GUARD = process.env['BENCH_GUARD'] !== '0';
const TWIN_ONLY = process.env['BENCH_TWIN_ONLY'] === '1';
/** routing.sloGuard.threshold; unset: the router's default. */
const GUARD_THRESHOLD = process.env['BENCH_GUARD_THRESHOLD'] ? envNum('BENCH_GUARD_THRESHOLD', 0.5) : undefined;

const POOL: Record<GpuType, string> = { L4: 'l4', A10G: 'a10g', 'A100-80GB': 'a100', 'H100-80GB': 'h100' };
const TYPE_OF_POOL = Object.fromEntries(Object.entries(POOL).map(([t, p]) => [p, t as GpuType])) as Record<string, GpuType>;
const { inputEdges, outputEdges } = PAPER_BUCKETS;

const log = (s = ''): void => { process.stdout.write(`${s}\n`); };
const pct = (v: number | null | undefined, d = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(d)}%`);
const ms = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(1));
const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

/** Bucket fractions [input][output] of a distribution whose ranges each lie inside one bucket. */
function bucketFractions(dist: SizeDistribution): number[][] {
  const f = inputEdges.map(() => outputEdges.map(() => 0));
  for (const r of dist.ranges) {
    const i = bucketIndex(inputEdges, r.inputMax);
    const o = bucketIndex(outputEdges, r.outputMax);
    if (bucketIndex(inputEdges, r.inputMin) !== i || bucketIndex(outputEdges, r.outputMin) !== o) {
      throw new Error(`${dist.name}: a size range spans several of the paper's buckets (${r.inputMin}-${r.inputMax} x ${r.outputMin}-${r.outputMax})`);
    }
    f[i]![o]! += r.probability;
  }
  return f;
}

/**
 * The load generator's request sequence for SEED, recomputed: runLoad draws an exponential gap and then a size
 * from one mulberry32(seed) stream, in that order; a chat prompt is synthesized to `input` tokens (at least 7:
 * the template's 6 plus one word). Used for the simulated twin; checked against what was actually sent.
 */
function seededRequests(dist: SizeDistribution): TwinRequest[] {
  const random = mulberry32(SEED);
  const sample = sizeSampler(dist, random);
  const out: TwinRequest[] = [];
  let arrival = 0;
  for (let i = 0; i < REQUESTS; i++) {
    arrival += exponential(random, RATE);
    const s = sample();
    out.push({ index: i, arrival, promptTokens: Math.max(7, s.input), outputTokens: s.output });
  }
  return out;
}

/** The paper's TPOT (ms) of one request alone on an idle replica of `gpu`; Infinity if it does not fit. */
const aloneCache = new Map<string, number>();
function aloneTpotMs(gpu: GpuType, input: number, output: number): number {
  const key = `${gpu}/${input}/${output}`;
  let v = aloneCache.get(key);
  if (v === undefined) {
    const perf = enginePerf(gpu);
    v = input + output > perf.maxModelLen ? Infinity : paperTpot(simulate(perf, [{ id: 'x', inputTokens: input, outputTokens: output, arrival: 0 }]).finished[0]!) * 1000;
    aloneCache.set(key, v);
  }
  return v;
}
/** Whether an idle replica of one of `types` serves a request of this size within the SLO. */
const servableSize = (types: readonly GpuType[], input: number, output: number, sloMs: number): boolean =>
  types.some((g) => aloneTpotMs(g, input, output) <= sloMs);
const servable = (r: RequestResult, types: readonly GpuType[], sloMs: number): boolean =>
  servableSize(types, r.promptTokens ?? Math.max(7, r.targetInput), r.targetOutput, sloMs);

/** The GPU type behind a pool name: ours are named by type (`h100`), the baseline's by replica (`h100-2`). */
const gpuOfPool = (pool: string): GpuType | undefined => TYPE_OF_POOL[pool.replace(/-\d+$/, '')];

/** One entry per replica of the plan, named `<type pool>-<n>` (the baseline's pool names). */
const replicaNames = (plan: Plan): { pool: string; gpu: GpuType }[] =>
  plan.replicas.flatMap(({ gpu, count }) => Array.from({ length: count }, (_, n) => ({ pool: `${POOL[gpu]}-${n}`, gpu })));

interface Plan {
  sloMs: number;
  result: SolveSuccess;
  profiles: Record<GpuType, number[][]>;
  /** Buckets with traffic that no GPU type can serve under the SLO, and their share of requests. */
  unservable: { input: number; output: number; share: number }[];
  replicas: { gpu: GpuType; count: number }[];
  /** Each GPU type's latency model, fitted to its alone probes as `melangectl profile` writes it into spec.latency. */
  latency: Record<GpuType, LatencyModel>;
}

function planFor(sloMs: number, fractions: number[][], engine: Awaited<ReturnType<typeof loadHighsEngine>>): Plan {
  const profiles = {} as Record<GpuType, number[][]>;
  for (const g of GPU_TYPES) {
    const p = cachedEmulatedProfile(g, inputEdges, outputEdges, sloMs, log);
    if (!p.cached) log(`  ${g} at ${sloMs} ms profiled in ${p.seconds.toFixed(0)} s`);
    profiles[g] = p.matrix;
  }
  const unservable: Plan['unservable'] = [];
  const bucketRates = fractions.map((row, i) => row.map((share, o) => {
    if (share > 0 && GPU_TYPES.every((g) => !(profiles[g][i]![o]! > 0))) {
      unservable.push({ input: i, output: o, share });
      return 0;
    }
    return RATE * share;
  }));
  const result = solve({
    buckets: { inputEdges: [...inputEdges], outputEdges: [...outputEdges] },
    workload: { bucketRates },
    gpus: GPU_TYPES.map((g) => ({ id: POOL[g], costPerHour: Number(GPU_MODELS[g].price), maxThroughput: profiles[g] })),
    mode: 'fractional',
    headroomPercent: HEADROOM,
  }, engine);
  if (!isSuccess(result)) throw new Error(`solve at ${sloMs} ms failed: ${result.status} ${result.reason}: ${result.message}`);
  const replicas = result.allocation.filter((a) => a.replicas > 0).map((a) => ({ gpu: TYPE_OF_POOL[a.id]!, count: a.replicas }));
  return { sloMs, result, profiles, unservable, replicas, latency: fittedLatency() };
}

/**
 * What the profiler's alone probes measure (one request on an idle emulator at each bucket's upper edges) and the
 * model it fits to them (spec.latency), per GPU type; the fit's error is printed.
 */
let latencyModels: Record<GpuType, LatencyModel> | undefined;
function fittedLatency(): Record<GpuType, LatencyModel> {
  if (latencyModels) return latencyModels;
  const out = {} as Record<GpuType, LatencyModel>;
  for (const g of GPU_TYPES) {
    const points = inputEdges.flatMap((i) => outputEdges.flatMap((o) => {
      const tpot = aloneTpotMs(g, i, o);
      return Number.isFinite(tpot) ? [{ input: i, output: o, latencyMillis: tpot * o }] : [];
    }));
    const m = fitLatencyModel(points);
    if (!m) throw new Error(`${g}: no latency model could be fitted to ${points.length} alone points`);
    out[g] = roundLatencyModel(m);
    log(`  latency model of ${g}: ${formatLatencyFit(out[g], points)}`);
  }
  return (latencyModels = out);
}

/** Our router: the solved split, a pool per GPU type with its latency model, and the SLO guard (BENCH_GUARD=0: off). */
function oursConfig(plan: Plan, backends: Record<string, string[]>): RouterConfigInput {
  return {
    service: { namespace: 'bench', name: `slo-${plan.sloMs}ms` },
    buckets: { inputEdges: [...inputEdges], outputEdges: [...outputEdges] },
    split: plan.result.split.map((s) => ({ input: s.input, output: s.output, weights: s.weights })),
    pools: plan.replicas.map((r) => ({ name: POOL[r.gpu], gpuType: r.gpu, backends: backends[POOL[r.gpu]] ?? [], latency: plan.latency[r.gpu] })),
    routing: { strategy: 'smooth', ...(GUARD ? { sloGuard: { tpotMillis: plan.sloMs, ...(GUARD_THRESHOLD !== undefined ? { threshold: GUARD_THRESHOLD } : {}) } } : {}) },
  };
}

/** The paper's balancer as a router configuration: a pool per replica, weights = its type's throughput per bucket. */
function baselineConfig(plan: Plan, replicas: { pool: string; gpu: GpuType; url: string }[]): RouterConfigInput {
  const split: NonNullable<RouterConfigInput['split']> = [];
  inputEdges.forEach((_, i) => outputEdges.forEach((_, o) => {
    const weights: Record<string, number> = {};
    for (const r of replicas) {
      const t = plan.profiles[r.gpu][i]![o]!;
      if (t > 0) weights[r.pool] = t;
    }
    if (Object.keys(weights).length > 0) split.push({ input: i, output: o, weights });
  }));
  return {
    service: { namespace: 'bench', name: `slo-${plan.sloMs}ms-baseline` },
    buckets: { inputEdges: [...inputEdges], outputEdges: [...outputEdges] },
    split,
    pools: replicas.map((r) => ({ name: r.pool, gpuType: r.gpu, backends: [r.url] })),
    routing: { strategy: 'random' },
  };
}

/**
 * Warm-up before measuring (JIT of a freshly started process): GET /v1/models and `n` tiny streamed chat
 * requests (10 prompt tokens, 2 output tokens), one after the other. Not part of any result.
 */
async function warmUp(url: string, n: number): Promise<void> {
  const get = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(10_000) });
  await get.arrayBuffer();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(requestBody('chat', 10, 2, { stream: true, variant: 1_000_000 + i })),
      signal: AbortSignal.timeout(60_000),
    });
    await res.text();
    if (!res.ok) throw new Error(`warm-up request to ${url} failed: HTTP ${res.status}`);
  }
}

/** Per GPU type that served requests: how many, how many met the SLO, and how many could not have met it there even alone. */
interface TypeStat { requests: number; meeting: number; hopeless: number }

interface Run {
  balancer: 'ours' | 'paper';
  /** Attainment of the simulated twin (exact engine model, no host), % of sent requests. */
  twin: number;
  /** Requests the SLO guard moved to another pool: in the twin, and as the router counted them. */
  twinRedirects: number;
  redirects: number | undefined;
  /** The twin's attainment with the same config minus the SLO guard (ours only): what the guard adds. */
  twinNoGuard: number | undefined;
  report: LoadReport;
  perType: Record<string, TypeStat>;
  attainment: number;
  servableAttainment: number;
  servableCount: number;
  routerCpuS: number;
  emulatorCpuS: number;
  loadBefore: string;
  loadAfter: string;
}

async function runOnce(balancer: Run['balancer'], plan: Plan, config: RouterConfigInput, dir: string, emulators: BenchProcess[], requests: readonly TwinRequest[]): Promise<Run> {
  const gpuOf = (pool: string) => gpuOfPool(pool)!;
  const attained = (rs: readonly TwinResult[]) => (100 * rs.filter((r) => r.tpotMs !== undefined && r.tpotMs <= plan.sloMs).length) / requests.length;
  const twinResults = simulateRun(config, gpuOf, requests, SEED);
  const twin = attained(twinResults);
  const twinRedirects = twinResults.filter((r) => r.redirectedFrom !== undefined).length;
  const { sloGuard, ...unguarded } = config.routing ?? {};
  const twinNoGuard = sloGuard ? attained(simulateRun({ ...config, routing: unguarded }, gpuOf, requests, SEED)) : undefined;
  const file = join(dir, `router-${plan.sloMs}ms-${balancer}.yaml`);
  writeFileSync(file, stringify(config));
  const router = await startRouterProcess({ name: `router-${plan.sloMs}ms-${balancer}`, configFile: file, logDir: dir, seed: SEED });
  await warmUp(router.url, 0);
  const loadBefore = load();
  const r0 = cpuSeconds(router.pid) ?? 0;
  const e0 = emulators.reduce((s, e) => s + (cpuSeconds(e.pid) ?? 0), 0);
  const wallS = REQUESTS / RATE / SPEED;
  let next = 500;
  // Which pool served each request (the router's X-Melange-Pool header). runLoad issues its POSTs in request
  // order, synchronously as each request is sent, so the n-th POST is request n.
  const pools: (string | null)[] = [];
  let posts = 0;
  const capture: typeof fetch = (input, init) => {
    const n = init?.method === 'POST' ? posts++ : -1;
    return fetch(input, init).then((res) => {
      if (n >= 0) pools[n] = res.headers.get('x-melange-pool');
      return res;
    });
  };
  try {
    const report = await runLoad({
      url: router.url,
      rate: RATE,
      requests: REQUESTS,
      durationS: wallS * 1.5 + 60,
      distribution: await loadDistribution(DISTRIBUTION),
      sloTpotMs: plan.sloMs,
      timeScale: SPEED,
      seed: SEED,
      maxInFlight: 1024,
      requestTimeoutS: 1800 / SPEED + 60,
      drainS: 900 / SPEED + 60,
      onResult: (_r, done) => {
        if (done >= next) {
          log(`    ${balancer}: ${done}/${REQUESTS} done (load ${load()})`);
          next += 500;
        }
      },
    }, { fetch: capture });
    const redirects = await guardRedirects(router.url);
    const routerCpuS = (cpuSeconds(router.pid) ?? r0) - r0;
    const emulatorCpuS = emulators.reduce((s, e) => s + (cpuSeconds(e.pid) ?? 0), 0) - e0;
    const types = plan.replicas.map((r) => r.gpu);
    const mismatch = report.results.filter((r) => Math.max(7, r.targetInput) !== requests[r.index]?.promptTokens || r.targetOutput !== requests[r.index]?.outputTokens);
    if (mismatch.length > 0) throw new Error(`the load generator sent other sizes than the simulated twin's (${mismatch.length} of ${report.sent} differ)`);
    if (report.sent !== requests.length) log(`    WARNING: ${balancer}: only ${report.sent} of ${requests.length} requests were sent (the duration bound hit)`);
    const sv = report.results.filter((r) => servable(r, types, plan.sloMs));
    const perType: Record<string, TypeStat> = {};
    for (const r of report.results) {
      const pool = pools[r.index];
      const gpu = pool ? gpuOfPool(pool) : undefined;
      const st = (perType[gpu ?? 'none'] ??= { requests: 0, meeting: 0, hopeless: 0 });
      st.requests++;
      if (r.meetsSlo) st.meeting++;
      if (gpu && !servable(r, [gpu], plan.sloMs)) st.hopeless++;
    }
    return {
      balancer,
      twin,
      twinRedirects,
      redirects,
      twinNoGuard,
      report,
      perType,
      attainment: report.slo?.attainmentPercent ?? 0,
      servableAttainment: sv.length > 0 ? (100 * sv.filter((r) => r.meetsSlo).length) / sv.length : 0,
      servableCount: sv.length,
      routerCpuS,
      emulatorCpuS,
      loadBefore,
      loadAfter: load(),
    };
  } finally {
    await stopBenchProcess(router);
  }
}

/**
 * BENCH_TWIN_ONLY=1: the simulated twin of both balancers on the plan, no processes (seconds instead of ~35 min):
 * for trying a routing policy before measuring it. Misses among servable requests are listed by where they went.
 */
function twinOnly(plan: Plan, requests: readonly TwinRequest[]): void {
  const gpuOf = (pool: string) => gpuOfPool(pool)!;
  // The twin never dials a backend; the URLs only name the replicas.
  const replicaList = replicaNames(plan).map((r) => ({ ...r, url: `http://twin.invalid/${r.pool}` }));
  const byPool: Record<string, string[]> = {};
  for (const r of replicaList) (byPool[POOL[r.gpu]] ??= []).push(r.url);
  const types = plan.replicas.map((r) => r.gpu);
  const isServable = (q: TwinRequest) => servableSize(types, q.promptTokens, q.outputTokens, plan.sloMs);
  for (const [balancer, config] of [['ours', oursConfig(plan, byPool)], ['paper', baselineConfig(plan, replicaList)]] as const) {
    const rs = simulateRun(config, gpuOf, requests, SEED);
    const met = (r: TwinResult) => r.tpotMs !== undefined && r.tpotMs <= plan.sloMs;
    const sv = rs.filter((r) => isServable(requests[r.index]!));
    const misses = sv.filter((r) => !met(r));
    log(`  twin ${balancer.padEnd(5)}: ${pct((100 * rs.filter(met).length) / rs.length)} of all, ${pct((100 * (sv.length - misses.length)) / sv.length)} of ${sv.length} servable; ` +
      `guard moved ${rs.filter((r) => r.redirectedFrom !== undefined).length}`);
    for (const m of misses) {
      const q = requests[m.index]!;
      const gpu = m.pool === undefined ? undefined : gpuOf(m.pool);
      log(`    miss #${q.index} ${q.promptTokens} in / ${q.outputTokens} out on ${m.pool ?? 'none'}${m.redirectedFrom ? ` (from ${m.redirectedFrom})` : ''}: ` +
        `${ms(m.tpotMs)} ms, alone there ${gpu ? ms(aloneTpotMs(gpu, q.promptTokens, q.outputTokens)) : '-'} ms, best alone ${ms(Math.min(...types.map((g) => aloneTpotMs(g, q.promptTokens, q.outputTokens))))} ms`);
    }
  }
}

/** The router's melange_router_slo_guard_redirects_total, summed; undefined if /metrics could not be read. */
async function guardRedirects(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return undefined;
    let sum = 0;
    for (const line of (await res.text()).split('\n')) {
      if (line.startsWith('melange_router_slo_guard_redirects_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  } catch {
    return undefined;
  }
}

function runRow(r: Run): string {
  const rep = r.report;
  const errs = Object.entries(rep.errorKinds).map(([k, v]) => `${k}:${v}`).join(' ') || '-';
  return [
    r.balancer.padEnd(6),
    String(rep.sent).padStart(5),
    String(rep.completed).padStart(5),
    errs.padStart(12),
    pct(r.attainment).padStart(8),
    pct(r.servableAttainment).padStart(9),
    pct(r.twin).padStart(8),
    ms(rep.tpotMs.mean).padStart(7),
    ms(rep.tpotMs.p50).padStart(7),
    ms(rep.tpotMs.p99).padStart(8),
    ms(rep.ttftMs.p99).padStart(8),
    `${r.routerCpuS.toFixed(1)}`.padStart(6),
    `${r.emulatorCpuS.toFixed(1)}`.padStart(6),
    `${r.loadBefore} → ${r.loadAfter}`,
  ].join('  ');
}

async function main(): Promise<number> {
  log(`Mélange SLO attainment benchmark — node ${process.version}, ${availableParallelism()} cores, load average ${load()}`);
  log(`scenario: ${REQUESTS} Poisson requests at ${RATE} req/s, ${DISTRIBUTION.replace(repoPath(''), '')}, headroom ${HEADROOM}%, seed ${SEED}, SLOs ${SLOS.join(', ')} ms mean TPOT`);
  if (SPEED !== 1) {
    log(`TIME SCALED: emulators at --speed ${SPEED} and the load generator at time scale ${SPEED} (arrivals and service both x${SPEED});`);
    log(`  real overheads (HTTP, router) are not scaled: 1 real ms = ${SPEED} emulated ms, pessimistic for both balancers`);
  } else {
    log('real time (emulators at --speed 1); expect ~' + Math.round(REQUESTS / RATE) + ' s per run');
  }
  stopAllOnSignal();
  const dist = await loadDistribution(DISTRIBUTION);
  const fractions = bucketFractions(dist);
  const requests = seededRequests(dist);
  const engine = await loadHighsEngine();
  const dir = benchDir('slo');
  log(`logs and configs: ${dir}${process.env['BENCH_KEEP'] === '1' ? '' : ' (removed at the end; BENCH_KEEP=1 keeps them)'}`);
  const results: { plan: Plan; ours: Run; paper: Run }[] = [];
  let broken = false;
  try {
    for (const [k, sloMs] of SLOS.entries()) {
      log('');
      log(`== SLO ${sloMs} ms mean TPOT ==`);
      const plan = planFor(sloMs, fractions, engine);
      const r = plan.result;
      log(`plan (our solver, ${r.stats.mode}, ${r.status}, ${r.stats.ms.toFixed(0)} ms): ${plan.replicas.map((x) => `${x.count} x ${x.gpu}`).join(' + ')} = $${r.costPerHour.toFixed(2)}/h` +
        (r.bestBaseline ? ` (best single type ${r.bestBaseline.id} $${r.bestBaseline.costPerHour.toFixed(2)}/h, saves ${r.savingsPercent?.toFixed(0)}%)` : ''));
      log(`  utilisation: ${r.allocation.filter((a) => a.replicas > 0).map((a) => `${a.id} ${(a.utilisation * 100).toFixed(0)}%`).join(', ')}`);
      if (plan.unservable.length > 0) {
        const share = plan.unservable.reduce((s, u) => s + u.share, 0);
        log(`  not planned: ${plan.unservable.map((u) => `(<=${inputEdges[u.input]} in, <=${outputEdges[u.output]} out)`).join(', ')} — no GPU type meets ${sloMs} ms there even alone (${(share * 100).toFixed(2)}% of requests)`);
      }
      const total = plan.replicas.reduce((s, x) => s + x.count, 0);
      if (total > 16) throw new Error(`${total} replicas: the baseline needs one router pool per replica and the router allows at most 16`);

      if (TWIN_ONLY) {
        twinOnly(plan, requests);
        continue;
      }
      const emulators: BenchProcess[] = [];
      const replicaList: { pool: string; gpu: GpuType; url: string }[] = [];
      const byPool: Record<string, string[]> = {};
      try {
        for (const { pool, gpu } of replicaNames(plan)) {
          const e = await startEmulatorProcess({ name: `emu-${sloMs}ms-${pool}`, gpu, speed: SPEED, logDir: dir });
          emulators.push(e);
          replicaList.push({ pool, gpu, url: e.url });
          (byPool[POOL[gpu]] ??= []).push(e.url);
        }
        for (const e of emulators) await warmUp(e.url, 2);
        log(`  ${emulators.length} emulator processes up (${emulators.map((e) => e.url.replace('http://127.0.0.1', '')).join(' ')})`);
        const order: Run['balancer'][] = k % 2 === 0 ? ['ours', 'paper'] : ['paper', 'ours'];
        const runs: Partial<Record<Run['balancer'], Run>> = {};
        for (const b of order) {
          log(`  run: ${b === 'ours' ? 'our router (solved split)' : "the paper's balancer (throughput-weighted random)"}, load ${load()}`);
          runs[b] = await runOnce(b, plan, b === 'ours' ? oursConfig(plan, byPool) : baselineConfig(plan, replicaList), dir, emulators, requests);
        }
        results.push({ plan, ours: runs.ours!, paper: runs.paper! });
      } finally {
        for (const e of emulators.reverse()) await stopBenchProcess(e);
      }
    }
  } catch (err) {
    broken = true;
    log(`ERROR: ${(err as Error).stack ?? String(err)}`);
  } finally {
    const errors = await cleanup(dir);
    for (const e of errors) { broken = true; log(`ERROR stopping a process: ${e}`); }
  }

  log('');
  log('== results (attainment = % of sent requests with TPOT <= SLO; "servable" = among requests an idle replica of the allocation could serve within the SLO) ==');
  log('"twin" = the same plan, requests and balancing decisions in exact simulated time (bench/support/twin.ts): what the policy alone yields; TPOT/TTFT in emulated ms');
  log('balancer   sent   done        errors  attain.  servable     twin  TPOT mean  p50   TPOT p99  TTFT p99  rtrCPU  emuCPU  load avg');
  for (const { plan, ours, paper } of results) {
    const n = ours.report.sent;
    log(`-- ${plan.sloMs} ms: ceiling ${pct((100 * ours.servableCount) / Math.max(1, n))} of the requests are servable within ${plan.sloMs} ms on ${plan.replicas.map((r) => r.gpu).join('/')} even alone`);
    log(runRow(ours));
    log(runRow(paper));
    for (const r of [ours, paper]) {
      const parts = Object.entries(r.perType).sort(([a], [b]) => a.localeCompare(b)).map(([t, st]) =>
        `${t} ${st.requests} (${((100 * st.meeting) / st.requests).toFixed(1)}% met, ${st.hopeless} could not even alone there)`);
      log(`   ${r.balancer.padEnd(6)} served by: ${parts.join('; ')}`);
      if (r.twinNoGuard !== undefined) {
        log(`   ${r.balancer.padEnd(6)} SLO guard: moved ${r.redirects ?? '?'} requests (twin: ${r.twinRedirects}); the twin without the guard: ${pct(r.twinNoGuard)}`);
      }
    }
  }
  log('');
  for (const { plan, ours, paper } of results) {
    const target = TARGET[plan.sloMs];
    const ratio = paper.attainment > 0 ? ours.attainment / paper.attainment : Infinity;
    log(`${plan.sloMs} ms: ours ${pct(ours.attainment)} vs paper's balancer ${pct(paper.attainment)} (ratio ${ratio.toFixed(4)}); among servable requests ${pct(ours.servableAttainment)} vs ${pct(paper.servableAttainment)}`);
    if (target !== undefined) {
      log(`${verdict(ours.attainment >= target)}  ${plan.sloMs} ms: attainment ${pct(ours.attainment)} >= ${target}% (all sent requests)`);
      log(`${verdict(ours.servableAttainment >= target)}  ${plan.sloMs} ms: attainment among servable requests ${pct(ours.servableAttainment)} >= ${target}%`);
    }
    log(`${verdict(ours.attainment >= paper.attainment)}  ${plan.sloMs} ms: ours >= the paper's balancer (${pct(ours.attainment)} vs ${pct(paper.attainment)})`);
  }
  if (SPEED !== 1) log(`(time scaled x${SPEED}: see the header)`);
  return broken ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => { console.error(err); process.exitCode = 1; });
