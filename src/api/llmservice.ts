import { z } from 'zod';
import { BucketsSchema, bucketMatrix, matrixShapeRules, MAX_EDGES } from './buckets.js';
import {
  API_VERSION,
  ConditionListSchema,
  DnsLabelSchema,
  DnsSubdomainSchema,
  DurationSchema,
  MoneySchema,
  ObjectMetaSchema,
  ObservedGenerationSchema,
  SecretKeySelectorSchema,
  StringMapSchema,
  TimestampSchema,
} from './meta.js';
import { isRecord, listMap, withRules } from './rules.js';

export const LLMSERVICE_KIND = 'LLMService';
export const MAX_GPU_OPTIONS = 16;

export const SloSchema = z
  .object({
    tpotMillis: z.int().min(1).max(60_000).describe('Target mean time per output token (ms), prefill included.'),
    ttftMillis: z.int().min(1).max(600_000).optional().describe('Target time to first token (ms); informational for now.'),
  })
  .describe('The latency objective every GPU type must meet.');

export const GpuOptionSchema = withRules(
  z
    .object({
      pool: DnsLabelSchema.describe('Name of a GPUPool (cluster-scoped).'),
      profile: DnsSubdomainSchema.describe('Name of a GPUProfile in this namespace measured on that pool\'s GPU type.'),
      gpusPerReplica: z.int().min(1).max(64).default(1).describe('GPUs each model-server replica requests.'),
      minReplicas: z.int().min(0).max(10_000).default(0).describe('Replicas of this type kept even when not needed.'),
      maxReplicas: z.int().min(0).max(10_000).optional().describe('Cap on replicas of this type (availability).'),
    })
    .describe('A GPU type the service may run on.'),
  [
    {
      rule: '!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas',
      message: 'maxReplicas must be greater than or equal to minReplicas',
      fieldPath: '.maxReplicas',
      holds: (g) => g.maxReplicas === undefined || g.minReplicas <= g.maxReplicas,
    },
  ],
);
export type GpuOption = z.output<typeof GpuOptionSchema>;

export const StaticWorkloadSchema = withRules(
  z
    .object({
      requestsPerSecond: z.number().min(0).max(1_000_000).describe('Total request rate (req/s).'),
      distribution: bucketMatrix(
        'Relative request weights per [input range][output range]; normalised by the operator.',
      ),
    })
    .describe('A fixed workload.'),
  [
    {
      rule: 'self.distribution.exists(row, row.exists(w, w > 0.0))',
      message: 'distribution must contain at least one positive weight',
      fieldPath: '.distribution',
      holds: (s) => s.distribution.some((row) => row.some((w) => w > 0)),
    },
  ],
);

export const PrometheusWorkloadSchema = z
  .object({
    url: z
      .string()
      .max(2048)
      .regex(/^https?:\/\/\S+$/, 'must be an http(s) URL')
      .optional()
      .describe('Prometheus base URL; defaults to the operator\'s --prometheus-url.'),
    window: DurationSchema.default('5m').describe('Range over which rates and the size histogram are averaged.'),
    bearerTokenSecretRef: SecretKeySelectorSchema.optional().describe('Bearer token for Prometheus.'),
    caSecretRef: SecretKeySelectorSchema.optional().describe('PEM CA bundle to verify Prometheus\' TLS certificate.'),
  })
  .describe('Measure rate and size distribution from Prometheus (the router\'s or vLLM\'s metrics).');

export const WorkloadSchema = withRules(
  z
    .object({
      source: z.enum(['Static', 'Prometheus']).default('Static').describe('Where the workload comes from.'),
      static: StaticWorkloadSchema.optional(),
      prometheus: PrometheusWorkloadSchema.optional(),
    })
    .describe('The request rate and size distribution to plan for.'),
  [
    {
      rule: "self.source != 'Static' || has(self.static)",
      message: 'source Static requires static',
      fieldPath: '.static',
      reason: 'FieldValueRequired',
      holds: (w) => w.source !== 'Static' || w.static !== undefined,
    },
  ],
);
export type Workload = z.output<typeof WorkloadSchema>;

export const ScaleDownSchema = z
  .object({
    stabilization: DurationSchema.default('60s').describe(
      'How long every GPU type of a new allocation must have been continuously Ready before surplus replicas are removed.',
    ),
    maxStep: z
      .int()
      .min(1)
      .max(10_000)
      .default(2)
      .describe('Most replicas removed from one GPU type per step while draining surplus.'),
    stepInterval: DurationSchema.default('10s').describe(
      'Least time between two drain steps; a step also waits until the previous one is observed by the Deployment controller.',
    ),
  })
  .describe('How surplus capacity is removed after a change of allocation (new capacity first, then a bounded drain).');

export const PolicySchema = z
  .object({
    solveInterval: DurationSchema.default('60s').describe('How often the allocation is re-solved.'),
    headroomPercent: z.int().min(0).max(100).default(10).describe('Extra capacity on top of the measured rate (%).'),
    mode: z
      .enum(['fractional', 'sliced'])
      .default('fractional')
      .describe('fractional: continuous split of each bucket; sliced: the paper\'s equal slices.'),
    sliceFactor: z.int().min(1).max(64).default(8).describe('Slices per bucket in sliced mode.'),
    minSavingsPercent: z
      .int()
      .min(0)
      .max(100)
      .default(5)
      .describe('Only move to a new allocation if it is at least this much cheaper (%).'),
    changePenaltyPerReplica: MoneySchema.optional().describe('$/h charged per replica added or removed, to damp churn.'),
    minTotalReplicas: z.int().min(0).max(10_000).default(1).describe('Never run fewer replicas in total.'),
    scaleDown: ScaleDownSchema.prefault({}),
    provisioningTimeout: DurationSchema.default('10m').describe(
      'How long a GPU type\'s replicas may take to become ready (progressDeadlineSeconds of its Deployment). A GPU type whose Deployment makes no progress for this long (pods unschedulable, no nodes) is capped at its ready replicas in the next solve, so the load moves to other GPU types; it is tried again once it progresses, its template changes, or after 30 minutes.',
    ),
  })
  .describe('How and how often the allocation is chosen.');

export const PodTemplateSchema = z
  .object({
    metadata: z
      .object({ labels: StringMapSchema.optional(), annotations: StringMapSchema.optional() })
      .optional(),
    spec: z
      .looseObject({
        containers: z
          .array(z.looseObject({ name: DnsLabelSchema, image: z.string().min(1).optional() }))
          .min(1)
          .max(32),
      })
      .describe('A core/v1 PodSpec; the operator adds GPU requests, node selector and tolerations per pool.'),
  })
  .describe('Pod template of the OpenAI-compatible model server (e.g. vLLM).');

export const RouterSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Run the size-aware router in front of the model servers.'),
    replicas: z.int().min(0).max(100).default(2),
    image: z.string().min(1).max(512).optional().describe('Router image; defaults to the operator\'s own image.'),
  })
  .describe('The size-aware router.');

export const LLMServiceSpecSchema = withRules(
  z.object({
    model: z.string().min(1).max(512).describe('Model served, e.g. meta-llama/Llama-2-7b-hf.'),
    slo: SloSchema,
    buckets: BucketsSchema,
    gpus: listMap(z.array(GpuOptionSchema).min(1).max(MAX_GPU_OPTIONS), 'pool').describe(
      'Candidate GPU types, one per GPUPool.',
    ),
    workload: WorkloadSchema,
    policy: PolicySchema.prefault({}),
    template: PodTemplateSchema,
    router: RouterSchema.prefault({}),
    priority: z
      .int()
      .min(-1000)
      .max(1000)
      .default(0)
      .describe(
        'Contention for a capped GPUPool shared with other services: when the cap cannot carry every sharer, higher priorities are served first; among equal-cost splits, the higher priority gets the pool.',
      ),
  }),
  matrixShapeRules<{ workload?: unknown; buckets?: unknown }>(
    '.workload.static.distribution',
    (s) => (isRecord(s.workload) && isRecord(s.workload.static) ? s.workload.static.distribution : undefined),
    (s) => s.buckets,
    'has(self.workload.static)',
  ),
);
export type LLMServiceSpec = z.output<typeof LLMServiceSpecSchema>;

const AllocationSchema = z.object({
  pool: DnsLabelSchema,
  gpuType: z.string().max(63).optional(),
  replicas: z.int().min(0),
  readyReplicas: z.int().min(0),
  costPerHour: MoneySchema,
});

/** `status.mix`: "2xA10G+1xA100", in the given order, GPU types with no replicas left out. */
export function formatMix(items: ReadonlyArray<{ pool: string; gpuType?: string | undefined; replicas: number }>): string {
  return items
    .filter((a) => a.replicas > 0)
    .map((a) => `${a.replicas}x${a.gpuType ?? a.pool}`)
    .join('+');
}

export const SolveStatusEnum = z.enum(['optimal', 'feasible-with-gap', 'infeasible', 'error']);

export const LLMServiceStatusSchema = z.object({
  observedGeneration: ObservedGenerationSchema.optional(),
  conditions: ConditionListSchema.optional(),
  allocation: listMap(z.array(AllocationSchema).max(MAX_GPU_OPTIONS), 'pool')
    .optional()
    .describe('Replicas per GPU type, planned and ready.'),
  mix: z.string().max(1024).optional().describe('The allocation in short form, e.g. 2xA10G+1xA100.'),
  costPerHour: MoneySchema.optional().describe('$/h of the allocation.'),
  bestSingleType: z
    .object({ pool: DnsLabelSchema, costPerHour: MoneySchema })
    .optional()
    .describe('The cheapest single GPU type that could serve the workload alone.'),
  savingsPercent: z
    .string()
    .max(16)
    .regex(/^-?[0-9]{1,6}(\.[0-9]{1,2})?$/)
    .optional()
    .describe('Savings of the allocation against bestSingleType, e.g. "24.1".'),
  split: z
    .array(
      z.object({
        input: z.int().min(0).max(MAX_EDGES - 1).describe('Input range index.'),
        output: z.int().min(0).max(MAX_EDGES - 1).describe('Output range index.'),
        weights: z.record(z.string(), z.number().min(0)).describe('Share of the bucket\'s traffic per pool.'),
      }),
    )
    .max(MAX_EDGES * MAX_EDGES)
    .optional()
    .describe('How the router splits each bucket between GPU types.'),
  workload: z
    .object({
      requestsPerSecond: z.number().min(0),
      source: z.enum(['Static', 'Prometheus']),
      window: DurationSchema.optional(),
    })
    .optional()
    .describe('The workload the last solve planned for (before headroom).'),
  lastSolve: z
    .object({
      time: TimestampSchema,
      durationMillis: z.int().min(0),
      status: SolveStatusEnum,
      gap: z.string().max(32).optional().describe('Relative optimality gap, e.g. "0.01".'),
      engine: z.string().max(64).optional(),
    })
    .optional(),
});
export type LLMServiceStatus = z.output<typeof LLMServiceStatusSchema>;

export const LLMServiceSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(LLMSERVICE_KIND),
  metadata: ObjectMetaSchema,
  spec: LLMServiceSpecSchema,
  status: LLMServiceStatusSchema.optional(),
});
export type LLMService = z.output<typeof LLMServiceSchema>;
/** What a manifest may omit (defaults not yet applied). */
export type LLMServiceInput = z.input<typeof LLMServiceSchema>;

export const LLMServiceConditionTypes = {
  Ready: 'Ready',
  MetricsAvailable: 'MetricsAvailable',
  Solved: 'Solved',
  CapacityProvisioned: 'CapacityProvisioned',
  Degraded: 'Degraded',
} as const;
