/**
 * A "simulated twin" of one SLO-attainment run: the same requests, the same router configuration and the same
 * replicas, with every replica's engine (src/emulator/engine.ts, the emulator's own state machine) advanced in
 * exact simulated time — no HTTP, no timers, no host. It uses the router's own pure decision code
 * (resolveSplitTable, SmoothPicker / RandomPicker with the same seed, the SLO guard of slo-guard.ts, the backend
 * choice of select.ts with a rotating tie-break), so it predicts what the plan and the balancing policy alone
 * produce; the gap to the measured run is what the real processes and the shared machine add. (In the real run a
 * backend's in-flight count drops when its response has been relayed and its pending prefill when the first
 * event has; here when the engine finishes the request and produces its first token — the same instants up to
 * the network.)
 */
import { bucketIndex } from '../../src/router/buckets.js';
import { validateConfig, type RouterConfigInput } from '../../src/router/config.js';
import { mulberry32 } from '../../src/common/random.js';
import { leastLoaded, type BackendView } from '../../src/router/select.js';
import { guardPool, poolLatencyModels } from '../../src/router/slo-guard.js';
import { capacityWeights, RandomPicker, resolveSplitTable, SmoothPicker, bucketKey, type PoolPicker } from '../../src/router/weights.js';
import { Engine, contextError, enginePerf, paperTpot, type FinishedRequest, type GpuType, type Step } from '../../src/emulator/index.js';

export interface TwinRequest {
  index: number;
  /** Emulated seconds from the start. */
  arrival: number;
  /** Prompt tokens as the emulator and the router count them. */
  promptTokens: number;
  outputTokens: number;
}

export interface TwinResult {
  index: number;
  pool: string | undefined;
  /** Set when the SLO guard moved the request off the pool the split picked (that pool). */
  redirectedFrom?: string;
  /** The paper's TPOT (ms), undefined when the request was refused (context too long) or had no backend. */
  tpotMs: number | undefined;
}

class Replica implements BackendView {
  readonly engine: Engine;
  step: Step | undefined;
  vt = 0;
  inflight = 0;
  pendingPrefillTokens = 0;
  readonly ejectedUntil = 0;
  /** Prompt tokens of the requests without a first token yet, by id. */
  private readonly prefilling = new Map<string, number>();
  constructor(readonly id: string, readonly pool: string, gpu: GpuType) {
    this.engine = new Engine(enginePerf(gpu));
  }

  /** Runs the engine up to emulated time `t` exactly as the emulator's driver does (steps back to back). */
  advance(t: number, onFinished: (f: FinishedRequest) => void): void {
    for (;;) {
      if (!this.step) {
        this.step = this.engine.schedule(this.vt);
        if (!this.step) {
          const next = this.engine.nextArrival();
          if (next === undefined || next > t) return;
          this.vt = Math.max(this.vt, next);
          continue;
        }
      }
      if (this.step.end > t) return;
      const out = this.engine.complete(this.step);
      this.vt = this.step.end;
      this.step = undefined;
      for (const tok of out.tokens) {
        if (!tok.first) continue;
        this.pendingPrefillTokens -= this.prefilling.get(tok.id) ?? 0;
        this.prefilling.delete(tok.id);
      }
      for (const f of out.finished) {
        this.inflight--;
        onFinished(f);
      }
    }
  }

  add(req: TwinRequest): void {
    this.inflight++;
    this.pendingPrefillTokens += req.promptTokens;
    this.prefilling.set(String(req.index), req.promptTokens);
    this.engine.add({ id: String(req.index), inputTokens: req.promptTokens, outputTokens: req.outputTokens, arrival: req.arrival });
  }
}

export function simulateRun(
  configInput: RouterConfigInput,
  gpuOfPool: (pool: string) => GpuType,
  requests: readonly TwinRequest[],
  seed: number,
): TwinResult[] {
  const v = validateConfig(configInput);
  if (!v.ok) throw new Error(`twin: invalid router config: ${v.errors.join('; ')}`);
  const config = v.config;
  const { inputEdges, outputEdges } = config.buckets;
  const table = resolveSplitTable(config.split, inputEdges.length, outputEdges.length);
  const picker: PoolPicker = config.routing.strategy === 'random' ? new RandomPicker(mulberry32(seed)) : new SmoothPicker();
  const byPool = new Map<string, Replica[]>();
  const all: Replica[] = [];
  for (const p of config.pools) {
    const reps = (p.backends ?? []).map((u) => new Replica(u, p.name, gpuOfPool(p.name)));
    byPool.set(p.name, reps);
    all.push(...reps);
  }
  const models = poolLatencyModels(config.pools);
  const ties = new Map<string, number>();
  const results = new Map<number, TwinResult>();
  const onFinished = (f: FinishedRequest) => {
    const r = results.get(Number(f.id));
    if (r) r.tpotMs = paperTpot(f) * 1000;
  };
  for (const req of [...requests].sort((a, b) => a.arrival - b.arrival)) {
    for (const rep of all) rep.advance(req.arrival, onFinished);
    const bi = bucketIndex(inputEdges, req.promptTokens);
    const bo = bucketIndex(outputEdges, req.outputTokens);
    const ready = new Map([...byPool].map(([p, reps]) => [p, reps.length]));
    const weights = (table[bi]?.[bo] ?? capacityWeights(ready)).weights;
    const eligible = (p: string) => (byPool.get(p)?.length ?? 0) > 0;
    const picked = picker.pick(bucketKey(bi, bo), weights, eligible);
    // The router's own guard on the same estimate it would use (the request's max_tokens = its output).
    const guard = config.routing.sloGuard;
    const decision = picked !== undefined && guard ? guardPool({ picked, input: req.promptTokens, output: req.outputTokens, models, eligible, guard }) : undefined;
    const pool = decision?.pool ?? picked;
    const result: TwinResult = { index: req.index, pool, tpotMs: undefined, ...(decision?.redirectedFrom !== undefined ? { redirectedFrom: decision.redirectedFrom } : {}) };
    results.set(req.index, result);
    if (pool === undefined) continue;
    const t = ties.get(pool) ?? 0;
    ties.set(pool, t + 1);
    const rep = leastLoaded(byPool.get(pool)!, { now: 0, tieBreak: t })!;
    if (contextError(rep.engine.perf, req.promptTokens, req.outputTokens)) continue; // the emulator's 400
    rep.add(req);
  }
  for (const rep of all) rep.advance(Infinity, onFinished);
  return [...results.values()].sort((a, b) => a.index - b.index);
}
