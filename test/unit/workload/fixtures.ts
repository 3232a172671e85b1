/** Test fixtures for the workload layer (shared by the unit and the integration tests). */
import { parseLLMService, type LLMService } from '../../../src/api/index.js';

export interface ServiceFixture {
  name?: string;
  namespace?: string;
  model?: string;
  inputEdges?: number[];
  outputEdges?: number[];
  /** spec.workload as written in a manifest. */
  workload?: Record<string, unknown>;
  routerEnabled?: boolean;
}

/** A validated LLMService (defaults applied) with a Prometheus workload unless `workload` says otherwise. */
export function makeService(f: ServiceFixture = {}): LLMService {
  const inputEdges = f.inputEdges ?? [100, 1000, 4000];
  const outputEdges = f.outputEdges ?? [100, 500];
  const manifest = {
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'LLMService',
    metadata: { name: f.name ?? 'chat', namespace: f.namespace ?? 'team-a' },
    spec: {
      model: f.model ?? 'meta-llama/Llama-2-7b-hf',
      slo: { tpotMillis: 120 },
      buckets: { inputEdges, outputEdges },
      gpus: [{ pool: 'a10g', profile: 'llama2-7b-a10g' }],
      workload: f.workload ?? { source: 'Prometheus', prometheus: { url: 'http://127.0.0.1:9', window: '5m' } },
      template: { spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai:v0.8.5' }] } },
      router: { enabled: f.routerEnabled ?? true },
    },
  };
  const r = parseLLMService(manifest);
  if (!r.ok) throw new Error(`bad fixture: ${r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  return r.value;
}

/** Sum of all entries of a matrix. */
export const matrixSum = (m: readonly (readonly number[])[]): number => m.reduce((a, r) => a + r.reduce((b, v) => b + v, 0), 0);
