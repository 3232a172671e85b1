/**
 * `melangectl profile` as a library: profiles every bucket of a grid against one OpenAI-compatible endpoint,
 * checkpointing after every probe, within a wall-clock budget. The search is pure (search.ts) and the checkpoint
 * holds every probe, so `runProfile` with an existing state continues where the last run stopped.
 *
 * Stops early (status, state kept, no profile) when the time budget would be exceeded ('deadline') or when the
 * endpoint fails ('endpoint-error': network errors, 5xx, wrong model). Only loopback endpoints unless allowRemote.
 */
import type { GPUProfile } from '../api/index.js';
import { EMULATOR_HEADER, EMULATOR_SPEED_HEADER, type LoadDeps } from '../loadgen/run.js';
import { scrape } from './metrics.js';
import { buildProfile, summarize, type BucketSummary } from './output.js';
import { searchConfig, sizingConfig, validateOptions, type ProfileOptions } from './options.js';
import { bucketTargets, probeRequests, probeWallBounds, type BucketTarget } from './plan.js';
import { EndpointError, runProbe, type ProbeContext, type ProbeOutcome, type ProbeSpec } from './probe.js';
import { nextStep, probeVerdict, type ProbeRecord, type SearchStep } from './search.js';
import { newState, readState, signatureDiff, StateError, writeStateAtomic, type ProfilerState, type StateSignature } from './state.js';

// The options moved to options.ts; importers of run.js keep working.
export { ProfileOptionsError, searchConfig, sizingConfig, type ProfileOptions } from './options.js';

export type ProfileEvent =
  | { type: 'start'; buckets: BucketTarget[]; resumed: boolean; done: number; timing: 'server' | 'client'; timeScale: number; emulator: string | null; model: string }
  | { type: 'probe-start'; bucket: BucketTarget; index: number; step: Exclude<SearchStep, { action: 'done' }>; requests: number; expectedWallS: number }
  | { type: 'probe-done'; bucket: BucketTarget; index: number; record: ProbeRecord; verdict: 'pass' | 'fail' | 'rejected' | 'alone' }
  | { type: 'bucket-done'; bucket: BucketTarget; index: number; summary: BucketSummary }
  | { type: 'stopped'; reason: 'deadline' | 'endpoint-error'; message: string };

export interface ProfileDeps extends LoadDeps {
  onEvent?: (e: ProfileEvent) => void;
  /** Runs one probe (default runProbe against the endpoint; tests substitute a model). */
  probe?: (spec: ProbeSpec, ctx: ProbeContext, deps: LoadDeps) => Promise<ProbeOutcome>;
  /** Wall clock for timestamps in the state (default: new Date()). */
  date?: () => Date;
}

export interface ProfileRunResult {
  status: 'complete' | 'deadline' | 'endpoint-error';
  message?: string;
  state: ProfilerState;
  summary: BucketSummary[];
  profile?: GPUProfile;
  /** Probes run by this invocation. */
  probesRun: number;
  wallSeconds: number;
}

interface Endpoint {
  model: string;
  emulator: string | null;
  timeScale: number;
  timing: 'server' | 'client';
}

/** GET /v1/models (model name, emulator speed) and /metrics (server timing available?). */
export async function discoverEndpoint(o: ProfileOptions, doFetch: typeof fetch): Promise<Endpoint> {
  const base = o.url.endsWith('/') ? o.url : `${o.url}/`;
  let res: Response;
  try {
    res = await doFetch(new URL('v1/models', base).href, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new EndpointError(`GET /v1/models: ${(err as Error).message}`);
  }
  const emulator = res.headers.get(EMULATOR_HEADER);
  const speedHeader = res.headers.get(EMULATOR_SPEED_HEADER);
  let served: string[] = [];
  if (res.ok) {
    const body = (await res.json().catch(() => ({}))) as { data?: Array<{ id?: unknown }> };
    served = (body.data ?? []).map((d) => d.id).filter((id): id is string => typeof id === 'string');
  } else {
    await res.body?.cancel();
  }
  const model = o.model ?? served[0];
  if (model === undefined) throw new EndpointError('no --model given and GET /v1/models lists none');
  if (served.length > 0 && !served.includes(model)) throw new EndpointError(`model "${model}" is not served here (it serves ${served.join(', ')})`);
  let timeScale = 1;
  if (typeof o.timeScale === 'number') timeScale = o.timeScale;
  else if (speedHeader !== null && Number(speedHeader) > 0) timeScale = Number(speedHeader);
  let timing: 'server' | 'client' = 'client';
  if (o.timing !== 'client') {
    const snap = await scrape(o.url, doFetch).catch(() => undefined);
    if (snap) timing = 'server';
    else if (o.timing === 'server') throw new EndpointError('timing "server": GET /metrics has no vllm:e2e_request_latency_seconds histogram');
  }
  return { model, emulator, timeScale, timing };
}

export async function runProfile(o: ProfileOptions, deps: ProfileDeps = {}): Promise<ProfileRunResult> {
  validateOptions(o);
  const doFetch = deps.fetch ?? fetch;
  const now = deps.now ?? (() => performance.now());
  const date = deps.date ?? (() => new Date());
  const emit = deps.onEvent ?? (() => undefined);
  const started = now();
  const deadline = started + o.maxDurationS * 1000;
  const search = searchConfig(o);
  const sizing = sizingConfig(o);
  const targets = bucketTargets(o.buckets);

  let endpoint: Endpoint;
  let state: ProfilerState;
  const existing = o.statePath ? await readState(o.statePath) : undefined;
  try {
    endpoint = await discoverEndpoint(o, doFetch);
  } catch (err) {
    if (!(err instanceof EndpointError) || !existing) throw err;
    // Keep the checkpoint untouched and report, like a failure during a probe.
    return { status: 'endpoint-error', message: err.message, state: existing, summary: summarize(existing), probesRun: 0, wallSeconds: (now() - started) / 1000 };
  }
  if (o.model === undefined) validateOptions(o, endpoint.model); // the served name ends up in spec.model
  const signature: StateSignature = {
    model: endpoint.model,
    gpuType: o.gpuType,
    buckets: { inputEdges: [...o.buckets.inputEdges], outputEdges: [...o.buckets.outputEdges] },
    sloTpotMillis: o.sloTpotMillis,
    api: o.api ?? 'chat',
    seed: o.seed ?? 1,
    search,
    sizing,
  };
  if (existing) {
    const diff = signatureDiff(existing.signature, signature);
    if (diff.length > 0) throw new StateError(`${o.statePath}: this checkpoint was made with other settings; use another --state file or the same settings:\n  ${diff.join('\n  ')}`);
    state = existing;
  } else {
    state = newState(signature, date());
  }
  state.runs++;
  state.endpoint = { url: o.url, emulator: endpoint.emulator, timeScale: endpoint.timeScale, timing: endpoint.timing };
  const save = async () => {
    state.updatedAt = date().toISOString();
    if (o.statePath) await writeStateAtomic(o.statePath, state);
  };
  await save();

  const probesOf = (t: BucketTarget): ProbeRecord[] => (state.buckets[t.key] ??= { input: t.input, output: t.output, probes: [] }).probes;
  const isDone = (t: BucketTarget) => nextStep(state.buckets[t.key]?.probes ?? [], search).action === 'done';
  emit({ type: 'start', buckets: targets, resumed: existing !== undefined, done: targets.filter(isDone).length, timing: endpoint.timing, timeScale: endpoint.timeScale, emulator: endpoint.emulator, model: endpoint.model });

  let probesRun = 0;
  const finish = (status: ProfileRunResult['status'], message?: string): ProfileRunResult => {
    const summary = summarize(state);
    const res: ProfileRunResult = { status, state, summary, probesRun, wallSeconds: (now() - started) / 1000, ...(message ? { message } : {}) };
    if (status === 'complete') res.profile = buildProfile(state, o.meta);
    else emit({ type: 'stopped', reason: status === 'deadline' ? 'deadline' : 'endpoint-error', message: message ?? status });
    return res;
  };

  for (const [index, t] of targets.entries()) {
    const probes = probesOf(t);
    const bucketSeed = (signature.seed * 1_000_003 + index * 7919) >>> 0;
    for (;;) {
      const step = nextStep(probes, search);
      if (step.action === 'done') break;
      const alone = step.action === 'alone';
      const rate = alone ? 0 : step.rate;
      const requests = alone ? search.aloneRequests : probeRequests(rate, t.output, search.sloTpotMillis, sizing, endpoint.timeScale, step.phase);
      const bounds = probeWallBounds(alone ? 'alone' : 'load', rate, requests, t.output, search.sloTpotMillis, sizing, endpoint.timeScale);
      const remainingS = (deadline - now()) / 1000;
      if (bounds.expectedWallS > remainingS) {
        await save();
        if (probesRun === 0 && bounds.expectedWallS > o.maxDurationS) {
          return finish('deadline', `the next probe (${t.key}) needs about ${bounds.expectedWallS.toFixed(0)} s, more than --max-duration allows (${o.maxDurationS} s); raise it`);
        }
        return finish('deadline', `--max-duration reached before ${t.key} probe ${probes.length + 1} (expected ${bounds.expectedWallS.toFixed(0)} s, ${Math.max(0, remainingS).toFixed(0)} s left); run again with the same --state to continue`);
      }
      emit({ type: 'probe-start', bucket: t, index, step, requests, expectedWallS: bounds.expectedWallS });
      const arrivalWallS = Math.min(bounds.arrivalWallS, remainingS);
      const ctx: ProbeContext = {
        url: o.url,
        model: endpoint.model,
        api: signature.api,
        timeScale: endpoint.timeScale,
        timing: endpoint.timing,
        seed: bucketSeed,
        arrivalWallS,
        drainWallS: Math.max(1, Math.min(bounds.drainWallS, remainingS - arrivalWallS)),
        ...(o.allowRemote ? { allowRemote: true } : {}),
      };
      let outcome;
      try {
        outcome = await (deps.probe ?? runProbe)({ kind: alone ? 'alone' : 'load', input: t.input, output: t.output, rate, requests }, ctx, deps);
      } catch (err) {
        if (err instanceof EndpointError) {
          await save();
          return finish('endpoint-error', `${t.key}: ${err.message}; restart the endpoint and run again with the same --state to continue`);
        }
        throw err;
      }
      if (outcome.truncated && arrivalWallS < bounds.arrivalWallS) {
        await save();
        return finish('deadline', `--max-duration reached during ${t.key} probe ${probes.length + 1} (discarded); run again with the same --state to continue`);
      }
      if (!alone) outcome.record.phase = step.phase;
      probes.push(outcome.record);
      probesRun++;
      state.probeWallSeconds += outcome.record.wallSeconds;
      await save();
      const verdict = outcome.record.outcome === 'rejected' ? 'rejected' : alone ? 'alone' : probeVerdict(outcome.record, search.sloTpotMillis) === 'pass' ? 'pass' : 'fail';
      emit({ type: 'probe-done', bucket: t, index, record: outcome.record, verdict });
    }
    const summary = summarize(state).find((s) => s.key === t.key)!;
    emit({ type: 'bucket-done', bucket: t, index, summary });
  }
  await save();
  return finish('complete');
}
