/**
 * Model endpoints: deterministic stand-ins for a server, as pure functions of the offered rate. The dry run
 * replays the search against one to estimate how long a run takes; the unit tests drive the search with them.
 *
 * `meanFieldModel(gpu)` is the emulator's mean-field limit (docs/emulator.md): a decode step takes
 * baseStep / (1 - rate·busy), where busy = the GPU time one request steals from decoding (prefill, KV reads,
 * overhead), plus the request's own prefill spread over its output tokens; past rate·busy = 1 the server
 * cannot keep up (throughput saturates at 1/busy). The 400 for requests longer than max_model_len is modelled.
 * It is an ESTIMATE for planning, not what a measurement will find.
 */
import { enginePerf, resolveGpuType } from '../emulator/gpu-models.js';
import { toMeasurement } from './measure.js';
import type { ProbeRecord } from './search.js';

/** What a model says about one steady-state load level. */
export interface ModelPoint {
  meanTpotMillis: number;
  /** Completions per second (<= rate; lower when the server cannot keep up). */
  throughput: number;
}

export interface EndpointModel {
  name: string;
  alone(input: number, output: number): ProbeRecord;
  load(input: number, output: number, rate: number, requests: number): ProbeRecord;
}

const AT = '1970-01-01T00:00:00.000Z';

/** Builds an EndpointModel from pure functions (rate 0 = one request alone). */
export function modelEndpoint(
  name: string,
  point: (input: number, output: number, rate: number) => ModelPoint,
  rejects: (input: number, output: number) => string | undefined = () => undefined,
): EndpointModel {
  const counts = (n: number) => ({ sent: n, completed: n, errors: 0, incomplete: 0, window: n });
  return {
    name,
    alone(input, output) {
      const why = rejects(input, output);
      if (why) return { kind: 'alone', nominalRate: 0, outcome: 'rejected', error: why, requests: { sent: 1, completed: 0, errors: 1, incomplete: 0, window: 0 }, timing: 'client', wallSeconds: 0, at: AT };
      const p = point(input, output, 0);
      return {
        kind: 'alone', nominalRate: 0, outcome: 'measured', timing: 'client', wallSeconds: 0, at: AT, requests: counts(3),
        measurement: toMeasurement(input, output, { rate: 0, throughput: 0, meanTpotMillis: p.meanTpotMillis }),
        meanLatencyMillis: p.meanTpotMillis * output,
      };
    },
    load(input, output, rate, requests) {
      const why = rejects(input, output);
      if (why) return { kind: 'load', nominalRate: rate, outcome: 'rejected', error: why, requests: { sent: requests, completed: 0, errors: requests, incomplete: 0, window: 0 }, timing: 'client', wallSeconds: 0, at: AT };
      const p = point(input, output, rate);
      return {
        kind: 'load', nominalRate: rate, outcome: 'measured', timing: 'client', wallSeconds: 0, at: AT, requests: counts(requests),
        measurement: toMeasurement(input, output, { rate, throughput: p.throughput, meanTpotMillis: p.meanTpotMillis }),
      };
    },
  };
}

/** The emulator's mean-field model of a GPU type (L4, A10G, A100-80GB, H100-80GB and aliases); undefined if unknown. */
export function meanFieldModel(gpuType: string): EndpointModel | undefined {
  const gpu = resolveGpuType(gpuType);
  if (!gpu) return undefined;
  const perf = enginePerf(gpu);
  return modelEndpoint(
    `mean-field model of ${gpu} (docs/emulator.md)`,
    (input, output, rate) => {
      const own = (input * perf.prefillPerTokenS + perf.requestOverheadS) / output;
      const busy = input * perf.prefillPerTokenS + perf.perContextTokenS * output * (input + output / 2) + perf.requestOverheadS;
      const load = rate * busy;
      if (load >= 1) return { meanTpotMillis: 1e6, throughput: 1 / busy };
      return { meanTpotMillis: (perf.baseStepS / (1 - load) + own) * 1000, throughput: rate };
    },
    (input, output) =>
      input + output > perf.maxModelLen
        ? `HTTP 400: This model's maximum context length is ${perf.maxModelLen} tokens (model)`
        : undefined,
  );
}
