/**
 * From a finished state to the GPUProfile resource: spec.measurements = every load probe's point (so any SLO can
 * be derived later), spec.maxThroughput = the conservative derivation at the profiled SLO, 0 for buckets the GPU
 * cannot serve — and the reason for each of those in the `melange.dev/cannot-serve` annotation, so a 0 is never
 * mistaken for a measured zero throughput. spec.latency = the latency model fitted to the buckets' alone probes
 * (latency-fit.ts), when they determine one.
 */
import { API_VERSION, GPUPROFILE_KIND, LatencyModelSchema, MAX_MEASUREMENTS, type GPUProfile, type LatencyModel, type Measurement } from '../api/index.js';
import { deriveMatrix } from '../solver/capacity-from-measurements.js';
import { fitLatencyModel, roundLatencyModel, type LatencyPoint } from './latency-fit.js';
import { bucketTargets } from './plan.js';
import { loadMeasurements, nextStep, type BucketResult } from './search.js';
import type { ProfilerState } from './state.js';

export const CANNOT_SERVE_ANNOTATION = 'melange.dev/cannot-serve';
export const LOWER_BOUND_ANNOTATION = 'melange.dev/lower-bound-buckets';
export const MEASURED_ON_ANNOTATION = 'melange.dev/measured-on';
export const PROFILER_ANNOTATION = 'melange.dev/profiler';

export interface BucketSummary {
  key: string;
  input: number;
  output: number;
  probes: number;
  result: BucketResult | undefined;
  maxThroughput: number;
}

/** Each bucket's search result (undefined while unfinished) and derived capacity. */
export function summarize(state: ProfilerState): BucketSummary[] {
  const sig = state.signature;
  const search = sig.search;
  const all: Measurement[] = [];
  const results = new Map<string, BucketResult | undefined>();
  for (const t of bucketTargets(sig.buckets)) {
    const probes = state.buckets[t.key]?.probes ?? [];
    all.push(...loadMeasurements(probes));
    const step = nextStep(probes, search);
    results.set(t.key, step.action === 'done' ? step.result : undefined);
  }
  const matrix = deriveMatrix(all, sig.buckets, sig.sloTpotMillis);
  return bucketTargets(sig.buckets).map((t) => {
    const result = results.get(t.key);
    return {
      key: t.key,
      input: t.input,
      output: t.output,
      probes: state.buckets[t.key]?.probes.length ?? 0,
      result,
      maxThroughput: result?.status === 'measured' ? matrix[t.i]![t.j]!.rate : 0,
    };
  });
}

/** A DNS-1123 name from free text: 'meta-llama/Llama-2-7b-hf' + 'A10G' -> 'llama-2-7b-hf-a10g'. */
export function profileName(model: string, gpuType: string): string {
  const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  const m = slug(model.split('/').pop() ?? model) || 'model';
  const g = slug(gpuType) || 'gpu';
  const name = `${m.slice(0, 62 - g.length)}-${g}`.replace(/-+/g, '-').replace(/^-+|-+$/g, '');
  return name.slice(0, 63).replace(/-+$/, '');
}

/** One point per bucket whose alone probe was served: its size and the mean latency of one request alone. */
export function alonePoints(state: ProfilerState): LatencyPoint[] {
  const out: LatencyPoint[] = [];
  for (const t of bucketTargets(state.signature.buckets)) {
    const alone = state.buckets[t.key]?.probes.find((p) => p.kind === 'alone');
    const y = alone?.meanLatencyMillis;
    if (alone?.outcome === 'measured' && y !== undefined && y > 0) out.push({ input: t.input, output: t.output, latencyMillis: y });
  }
  return out;
}

/** The fitted latency model at 4 significant digits; undefined when the points do not determine one or it is out of the API's range. */
export function fittedLatency(state: ProfilerState): LatencyModel | undefined {
  const fit = fitLatencyModel(alonePoints(state));
  if (!fit) return undefined;
  const parsed = LatencyModelSchema.safeParse(roundLatencyModel(fit));
  return parsed.success ? parsed.data : undefined;
}

export interface ProfileMeta {
  name?: string;
  namespace?: string;
}

/** The GPUProfile for a finished state (throws if a bucket is unfinished). */
export function buildProfile(state: ProfilerState, meta: ProfileMeta = {}): GPUProfile {
  const sig = state.signature;
  const summary = summarize(state);
  const unfinished = summary.filter((b) => !b.result).map((b) => b.key);
  if (unfinished.length > 0) throw new Error(`buckets not profiled yet: ${unfinished.join(', ')}`);
  const measurements: Measurement[] = [];
  for (const t of bucketTargets(sig.buckets)) measurements.push(...loadMeasurements(state.buckets[t.key]?.probes ?? []));
  if (measurements.length > MAX_MEASUREMENTS) throw new Error(`${measurements.length} measurements, more than a GPUProfile holds (${MAX_MEASUREMENTS})`);
  const maxThroughput = sig.buckets.inputEdges.map(() => sig.buckets.outputEdges.map(() => 0));
  const cannot: Record<string, string> = {};
  const lowerBound: string[] = [];
  for (const [k, b] of summary.entries()) {
    const t = bucketTargets(sig.buckets)[k]!;
    if (b.result?.status === 'cannot-serve') cannot[b.key] = b.result.reason;
    else {
      maxThroughput[t.i]![t.j] = b.maxThroughput;
      if (b.result?.status === 'measured' && !b.result.bracketed) lowerBound.push(b.key);
    }
  }
  const annotations: Record<string, string> = {
    [PROFILER_ANNOTATION]: `melangectl profile; ${summary.reduce((s, b) => s + b.probes, 0)} probes; state created ${state.createdAt}`,
  };
  if (Object.keys(cannot).length > 0) annotations[CANNOT_SERVE_ANNOTATION] = JSON.stringify(cannot);
  if (lowerBound.length > 0) annotations[LOWER_BOUND_ANNOTATION] = lowerBound.join(',');
  if (state.endpoint?.emulator) {
    annotations[MEASURED_ON_ANNOTATION] = `EMULATOR (${state.endpoint.emulator}, time x${state.endpoint.timeScale}): timings from a performance model, not a GPU`;
  }
  const latency = fittedLatency(state);
  return {
    apiVersion: API_VERSION,
    kind: GPUPROFILE_KIND,
    metadata: {
      name: meta.name ?? profileName(sig.model, sig.gpuType),
      ...(meta.namespace ? { namespace: meta.namespace } : {}),
      labels: { 'app.kubernetes.io/part-of': 'melange' },
      annotations,
    },
    spec: {
      model: sig.model,
      gpuType: sig.gpuType,
      slo: { tpotMillis: sig.sloTpotMillis },
      buckets: { inputEdges: [...sig.buckets.inputEdges], outputEdges: [...sig.buckets.outputEdges] },
      maxThroughput,
      measurements,
      ...(latency ? { latency } : {}),
    },
  };
}
