// Solver benchmark: `npm run bench:solver` (tsx bench/solver.bench.ts). Not a test.
//
// Paper scale: the evaluation's 10 x 6 buckets, L4/A10G/A100/H100 at list prices, 3 workload mixes x 8 rates,
// solved by our solver in `fractional` and `sliced` (S = 8) mode and by the independent PuLP + CBC
// implementation of the paper's binary-slice ILP (test/reference/melange_pulp.py, S = 8).
// Large scale: 16 GPU types x 20 x 10 buckets, seeded random, same three solvers; our solver gets a 1 s time
// limit (what a control loop would give it) and its answers are judged against their own proven lower bound.
//
// Exits non-zero if an answer of ours fails the independent capacity check, or if its cost disagrees with the
// reference (both proven optimal and different; reference better than our proven optimum; reference below our
// proven lower bound). Missed performance targets are printed as FAIL but do not change the exit status.
//
// Knobs (environment): BENCH_ROUNDS (timed rounds over the paper instances, default 3), BENCH_LARGE (large
// instances, default 20), BENCH_LARGE_LIMIT_MS (our time limit at large scale, default 1000),
// BENCH_REF_LIMIT_S (reference per-instance cap at paper scale, default 30), BENCH_REF_LARGE_LIMIT_S (at large
// scale, default 20), BENCH_REF_WORKERS (parallel python processes at large scale, default min(2, cores)),
// BENCH_NO_REF=1 (skip the reference).

import { availableParallelism, loadavg } from 'node:os';
import { loadHighsEngine } from '../src/solver/highs-engine.js';
import { solve } from '../src/solver/solve.js';
import { isSuccess, type SolveInput, type SolveResult } from '../src/solver/types.js';
import {
  checkAllocation,
  costsAgree,
  largeScaleInstance,
  paperScaleInstances,
  percentile,
  runReferenceParallel,
  type NamedInstance,
  type ReferenceResult,
} from '../test/reference/instances.js';

const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isFinite(n) ? n : dflt;
};
const ROUNDS = envNum('BENCH_ROUNDS', 3);
const LARGE = envNum('BENCH_LARGE', 20);
const LARGE_LIMIT_MS = envNum('BENCH_LARGE_LIMIT_MS', 1000);
const REF_LIMIT_S = envNum('BENCH_REF_LIMIT_S', 30);
const REF_LARGE_LIMIT_S = envNum('BENCH_REF_LARGE_LIMIT_S', 20);
const REF_WORKERS = envNum('BENCH_REF_WORKERS', Math.min(2, availableParallelism()));
const NO_REF = process.env['BENCH_NO_REF'] === '1';
const S = 8;

const log = (s = ''): void => { process.stdout.write(`${s}\n`); };
const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '-');
const money = (v: number | undefined): string => (v === undefined ? '-' : `$${(Math.round(v * 1e4) / 1e4).toString()}`);
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
const describe = (r: SolveResult): string => (isSuccess(r) ? `${r.status} ${money(r.costPerHour)}` : `${r.status} ${r.reason}: ${r.message}`);

interface Timed {
  name: string;
  input: SolveInput;
  result: SolveResult;
  ms: number;
}

const failures: string[] = [];

function timedSolve(engine: Awaited<ReturnType<typeof loadHighsEngine>>, name: string, input: SolveInput): Timed {
  const t0 = performance.now();
  const result = solve(input, engine);
  const ms = performance.now() - t0;
  if (isSuccess(result)) {
    for (const p of checkAllocation(input, result)) failures.push(`${name} (${input.mode}): allocation check: ${p}`);
  } else {
    failures.push(`${name} (${input.mode}): ${describe(result)}`);
  }
  return { name, input, result, ms };
}

const withMode = (i: NamedInstance, mode: 'fractional' | 'sliced', extra: Partial<SolveInput> = {}): SolveInput =>
  ({ ...i.input, mode, ...(mode === 'sliced' ? { sliceFactor: S } : {}), ...extra });

function row(cells: string[], widths: number[]): string {
  return cells.map((c, k) => (k === 0 ? c.padEnd(widths[k] ?? 10) : c.padStart(widths[k] ?? 10))).join('  ');
}
const W = [34, 5, 9, 9, 9, 11];
const header = (): void => { log(row(['solver', 'n', 'p50 ms', 'p99 ms', 'max ms', 'optimal'], W)); };
const statLine = (label: string, ms: number[], optimal: string): void => {
  log(row([label, String(ms.length), fmt(percentile(ms, 50)), fmt(percentile(ms, 99)), fmt(Math.max(...ms)), optimal], W));
};

/** Compares our sliced answer with the reference's; returns a mismatch description or undefined. */
function compareSliced(name: string, ours: SolveResult, ref: ReferenceResult): string | undefined {
  if (ref.status === 'timeout' || ref.status === 'error') return undefined; // nothing to compare with
  if (ref.status === 'infeasible') return isSuccess(ours) ? `${name}: reference infeasible, ours ${describe(ours)}` : undefined;
  const refCost = ref.cost as number;
  if (!isSuccess(ours)) return `${name}: reference ${ref.status} ${money(refCost)}, ours ${describe(ours)}`;
  const lb = ours.stats.lowerBound;
  if (lb !== undefined && refCost < lb - 1e-6) return `${name}: reference ${money(refCost)} is below our proven lower bound ${money(lb)}`;
  if (ref.status === 'optimal' && ours.status === 'optimal' && !costsAgree(ours.costPerHour, refCost)) {
    return `${name}: both optimal but ours ${money(ours.costPerHour)} vs reference ${money(refCost)}`;
  }
  if (ours.status === 'optimal' && refCost < ours.costPerHour - 1e-6) {
    return `${name}: reference found ${money(refCost)} below our "optimal" ${money(ours.costPerHour)}`;
  }
  return undefined;
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');
  log(`Mélange solver benchmark — node ${process.version}, ${cores} cores, load average ${load()}`);
  const tLoad = performance.now();
  const engine = await loadHighsEngine();
  log(`engine ${engine.name} loaded in ${fmt(performance.now() - tLoad)} ms`);

  const paper = paperScaleInstances();
  const large = Array.from({ length: LARGE }, (_, k) => largeScaleInstance(1000 + k));

  // ---- warm-up (JIT of the WASM engine and of our code): every paper instance in both modes, two large ones.
  const tWarm = performance.now();
  for (const i of paper) { solve(withMode(i, 'fractional'), engine); solve(withMode(i, 'sliced'), engine); }
  for (const i of [largeScaleInstance(1), largeScaleInstance(2)]) {
    solve(withMode(i, 'fractional', { timeLimitMs: LARGE_LIMIT_MS }), engine);
    solve(withMode(i, 'sliced', { timeLimitMs: LARGE_LIMIT_MS }), engine);
  }
  log(`warm-up: ${fmt((performance.now() - tWarm) / 1000, 1)} s`);

  // ---- ours, paper scale.
  const paperFrac: Timed[] = [];
  const paperSliced: Timed[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const i of paper) {
      paperFrac.push(timedSolve(engine, i.name, withMode(i, 'fractional')));
      paperSliced.push(timedSolve(engine, i.name, withMode(i, 'sliced')));
    }
  }
  // ---- ours, large scale.
  const largeFrac: Timed[] = [];
  const largeSliced: Timed[] = [];
  for (const i of large) {
    largeFrac.push(timedSolve(engine, i.name, withMode(i, 'fractional', { timeLimitMs: LARGE_LIMIT_MS })));
    largeSliced.push(timedSolve(engine, i.name, withMode(i, 'sliced', { timeLimitMs: LARGE_LIMIT_MS })));
  }

  // ---- reference (after ours, so it never competes with our timings).
  let refPaper: ReferenceResult[] | undefined;
  let refLarge: ReferenceResult[] | undefined;
  if (!NO_REF) {
    const t0 = performance.now();
    // Paper scale runs in one python process, one solve at a time like ours, because its median is the
    // speed-ratio target; large scale (no ratio target, mostly time-capped) is spread over REF_WORKERS.
    log(`reference: PuLP + CBC, ${paper.length} paper-scale instances (cap ${REF_LIMIT_S} s, 1 python process) and ` +
      `${large.length} large (cap ${REF_LARGE_LIMIT_S} s, ${REF_WORKERS} python processes) ...`);
    refPaper = await runReferenceParallel(paper.map((i) => withMode(i, 'sliced')), { timeLimitSec: REF_LIMIT_S, workers: 1 });
    refLarge = await runReferenceParallel(large.map((i) => withMode(i, 'sliced')), { timeLimitSec: REF_LARGE_LIMIT_S, workers: REF_WORKERS });
    log(`reference done in ${fmt((performance.now() - t0) / 1000, 1)} s`);
  }

  const optimalCount = (t: Timed[]): string => `${t.filter((x) => x.result.status === 'optimal').length}/${t.length}`;
  const methods = (t: Timed[]): string => {
    const c = new Map<string, number>();
    for (const x of t) c.set(x.result.stats.method ?? '?', (c.get(x.result.stats.method ?? '?') ?? 0) + 1);
    return [...c].map(([m, n]) => `${m} x${n}`).join(', ');
  };
  const refOptimal = (r: ReferenceResult[]): string => {
    const c = (s: string): number => r.filter((x) => x.status === s).length;
    return `${c('optimal')}/${r.length}`;
  };

  // ---- paper-scale table.
  log();
  log(`== Paper scale: 10x6 buckets, 4 GPU types (L4, A10G, A100, H100), ${paper.length} instances ` +
    `(3 mixes x ${paper.length / 3} rates), ours ${ROUNDS} timed rounds after warm-up ==`);
  header();
  statLine('ours fractional', paperFrac.map((t) => t.ms), optimalCount(paperFrac));
  statLine(`ours sliced S=${S}`, paperSliced.map((t) => t.ms), optimalCount(paperSliced));
  log(`  our solver's methods: fractional ${methods(paperFrac)}; sliced ${methods(paperSliced)}`);
  if (refPaper) {
    statLine(`reference PuLP+CBC S=${S} (solve)`, refPaper.map((r) => r.ms), refOptimal(refPaper));
    statLine(`reference PuLP+CBC S=${S} (build)`, refPaper.map((r) => r.buildMs ?? 0), '');
    const capped = refPaper.filter((r) => r.status !== 'optimal');
    if (capped.length > 0) {
      log(`  reference hit its ${REF_LIMIT_S} s cap without proving optimality on ${capped.length} instance(s): ` +
        paper.filter((_, k) => refPaper![k]!.status !== 'optimal').map((i) => i.name).join(', ') +
        ' (their solve times above are the cap, so the reference percentiles are understated)');
    }
  }

  // Cost agreement (sliced S=8): every round of ours against the single reference answer.
  let paperMismatches: string[] = [];
  if (refPaper) {
    paperMismatches = paperSliced
      .map((t, n) => compareSliced(t.name, t.result, refPaper![n % paper.length]!))
      .filter((m): m is string => m !== undefined);
    const compared = refPaper.filter((r) => r.status === 'optimal' || r.status === 'feasible').length;
    log(`cost agreement, sliced S=${S} vs reference: ${paperMismatches.length === 0 ? 'all agree' : `${paperMismatches.length} MISMATCH(ES)`} ` +
      `(${compared}/${paper.length} reference answers to compare; ${refPaper.filter((r) => r.status === 'optimal').length} proven optimal)`);
    for (const m of paperMismatches) log(`  MISMATCH ${m}`);
  }

  // Costs per instance, for the record.
  log();
  log(row(['instance', 'frac $/h', 'sliced $/h', 'ref $/h', 'ref ms', 'save vs 1 type'], [16, 10, 11, 10, 9, 15]));
  paper.forEach((i, k) => {
    const f = paperFrac[k]!.result;
    const s = paperSliced[k]!.result;
    const r = refPaper?.[k];
    log(row([
      i.name,
      isSuccess(f) ? money(f.costPerHour) : f.status,
      isSuccess(s) ? money(s.costPerHour) : s.status,
      r ? (r.cost !== undefined ? money(r.cost) + (r.status === 'optimal' ? '' : '*') : r.status) : '-',
      r ? fmt(r.ms, 0) : '-',
      isSuccess(f) && f.savingsPercent !== null ? `${fmt(f.savingsPercent)}%` : '-',
    ], [16, 10, 11, 10, 9, 15]));
  });
  if (refPaper?.some((r) => r.status === 'feasible')) log('  * reference stopped at its time cap with this incumbent (not proven optimal)');

  // ---- large-scale table.
  log();
  log(`== Large scale: 16 GPU types x 20x10 buckets, ${large.length} seeded instances, our time limit ${LARGE_LIMIT_MS} ms ==`);
  header();
  statLine('ours fractional', largeFrac.map((t) => t.ms), optimalCount(largeFrac));
  statLine(`ours sliced S=${S}`, largeSliced.map((t) => t.ms), optimalCount(largeSliced));
  log(`  our solver's methods: fractional ${methods(largeFrac)}; sliced ${methods(largeSliced)}`);
  if (refLarge) {
    statLine(`reference PuLP+CBC S=${S} (solve)`, refLarge.map((r) => r.ms), refOptimal(refLarge));
    const byStatus = (s: string): number => refLarge!.filter((r) => r.status === s).length;
    log(`  reference: ${byStatus('optimal')} proven optimal, ${byStatus('feasible')} stopped at the ${REF_LARGE_LIMIT_S} s cap ` +
      `with an incumbent, ${byStatus('timeout')} stopped with none, ${byStatus('error')} errors`);
  }
  const gapOk = (t: Timed): boolean => isSuccess(t.result) && (t.result.status === 'optimal' || (t.result.stats.gap ?? Infinity) <= 0.005);
  log();
  log(row(['instance', 'vars', 'frac ms', 'frac gap', 'sliced ms', 'sliced $/h', 'sliced gap', 'ref $/h', 'ref ms'], [12, 6, 8, 9, 9, 11, 10, 10, 8]));
  const gapStr = (r: SolveResult): string => (isSuccess(r) ? (r.status === 'optimal' ? 'opt' : `${fmt((r.stats.gap ?? NaN) * 100, 2)}%`) : r.status);
  large.forEach((i, k) => {
    const f = largeFrac[k]!;
    const s = largeSliced[k]!;
    const r = refLarge?.[k];
    log(row([
      i.name, String(s.result.stats.variables), fmt(f.ms, 0), gapStr(f.result), fmt(s.ms, 0),
      isSuccess(s.result) ? money(s.result.costPerHour) : s.result.status, gapStr(s.result),
      r ? (r.cost !== undefined ? money(r.cost) + (r.status === 'optimal' ? '' : '*') : r.status) : '-',
      r ? fmt(r.ms, 0) : '-',
    ], [12, 6, 8, 9, 9, 11, 10, 10, 8]));
  });
  let largeMismatches: string[] = [];
  if (refLarge) {
    largeMismatches = largeSliced
      .map((t, k) => compareSliced(t.name, t.result, refLarge![k]!))
      .filter((m): m is string => m !== undefined);
    const ours = largeSliced.filter((t) => isSuccess(t.result)).map((t) => t.result as Extract<SolveResult, { costPerHour: number }>);
    const better = refLarge.filter((r, k) => r.cost !== undefined && isSuccess(largeSliced[k]!.result) &&
      (largeSliced[k]!.result as { costPerHour: number }).costPerHour < r.cost - 1e-6).length;
    log(`cost agreement, sliced S=${S} vs reference: ${largeMismatches.length === 0 ? 'no contradiction' : `${largeMismatches.length} MISMATCH(ES)`}` +
      ` (${ours.length} ours; ours strictly cheaper than the capped reference on ${better})`);
    for (const m of largeMismatches) log(`  MISMATCH ${m}`);
  }

  // ---- targets.
  const pFrac = paperFrac.map((t) => t.ms);
  const pSliced = paperSliced.map((t) => t.ms);
  const p50Frac = percentile(pFrac, 50);
  const p99Frac = percentile(pFrac, 99);
  const p50Sliced = percentile(pSliced, 50);
  log();
  log('== Targets ==');
  log(`${verdict(p50Frac <= 20)}  paper scale fractional p50 ≤ 20 ms: ${fmt(p50Frac)} ms`);
  log(`${verdict(p99Frac <= 100)}  paper scale fractional p99 ≤ 100 ms: ${fmt(p99Frac)} ms`);
  log(`${verdict(p50Sliced <= 100)}  paper scale sliced S=${S} p50 ≤ 100 ms: ${fmt(p50Sliced)} ms`);
  if (refPaper) {
    const refMedian = percentile(refPaper.map((r) => r.ms), 50);
    const ratioSliced = refMedian / p50Sliced;
    const ratioFrac = refMedian / p50Frac;
    log(`${verdict(ratioSliced >= 10)}  ≥ 10x faster than the reference median (same model, sliced S=${S}): ` +
      `reference p50 ${fmt(refMedian)} ms / ours ${fmt(p50Sliced)} ms = ${fmt(ratioSliced)}x ` +
      `(fractional: ${fmt(ratioFrac)}x)`);
  } else {
    log('SKIP  ≥ 10x faster than the reference median (BENCH_NO_REF=1)');
  }
  for (const [label, set] of [['fractional', largeFrac], [`sliced S=${S}`, largeSliced]] as const) {
    const p99 = percentile(set.map((t) => t.ms), 99);
    const within = set.filter(gapOk).length;
    log(`${verdict(p99 <= 1000 || within === set.length)}  large scale ${label}: p99 ≤ 1 s or within 0.5% of lower bound: ` +
      `p99 ${fmt(p99)} ms (${verdict(p99 <= 1000)}); proven optimal or gap ≤ 0.5%: ${within}/${set.length} (${verdict(within === set.length)})`);
  }

  const disagreements = [...paperMismatches, ...largeMismatches];
  log();
  log(`load average at the end: ${load()} (timings are wall-clock: a load above ${cores} inflates them)`);
  if (failures.length > 0) {
    log(`SOLVER FAILURES (${failures.length}):`);
    for (const f of failures.slice(0, 20)) log(`  ${f}`);
  }
  if (disagreements.length > 0 || failures.length > 0) {
    log(`exit 1: ${disagreements.length} cost disagreement(s), ${failures.length} failed or unsound answer(s)`);
    process.exitCode = 1;
  } else {
    log('costs agree with the reference wherever both have an answer; every answer of ours passed the independent capacity check');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 2;
});
