import { z } from 'zod';
import { BucketsSchema, bucketMatrix, matrixShapeRules } from './buckets.js';
import { LatencyModelSchema } from './latency.js';
import { API_VERSION, ConditionListSchema, ObjectMetaSchema, ObservedGenerationSchema } from './meta.js';
import { withRules } from './rules.js';

export const GPUPROFILE_KIND = 'GPUProfile';
export const MAX_MEASUREMENTS = 4096;

export const MeasurementSchema = z
  .object({
    input: z.int().min(1).describe('Input tokens per request.'),
    output: z.int().min(1).describe('Output tokens per request.'),
    rate: z.number().min(0).describe('Offered request rate (req/s).'),
    meanTpotMillis: z.number().min(0),
    p99TpotMillis: z.number().min(0).optional(),
    meanTtftMillis: z.number().min(0).optional(),
    throughput: z.number().min(0).describe('Completed requests per second.'),
  })
  .describe('One load-test point.');
export type Measurement = z.output<typeof MeasurementSchema>;

export const GPUProfileSpecSchema = withRules(
  z.object({
    model: z.string().min(1).max(512).describe('Model that was measured.'),
    gpuType: z.string().min(1).max(63).describe('GPU type that was measured, e.g. A10G.'),
    slo: z
      .object({ tpotMillis: z.int().min(1).max(60_000).describe('TPOT target (ms) maxThroughput was measured against.') })
      .describe('The SLO the throughput numbers hold under.'),
    buckets: BucketsSchema,
    maxThroughput: bucketMatrix(
      'Highest request rate (req/s) one replica sustains within the SLO, per [input range][output range]. ' +
        '0 means this GPU type cannot serve the bucket.',
    ),
    measurements: z
      .array(MeasurementSchema)
      .max(MAX_MEASUREMENTS)
      .optional()
      .describe('Raw measurements, so maxThroughput can be re-derived for another SLO.'),
    latency: LatencyModelSchema.optional().describe(
      "A request's latency on an idle replica by its size, fitted to the profiler's alone probes; the router's SLO guard " +
        'keeps requests off this GPU type when even an idle replica would miss the SLO for them.',
    ),
  }),
  matrixShapeRules<{ maxThroughput?: unknown; buckets?: unknown }>('.maxThroughput', (s) => s.maxThroughput, (s) => s.buckets),
);
export type GPUProfileSpec = z.output<typeof GPUProfileSpecSchema>;

// A profile is data; the status only lets the operator say whether it is usable (e.g. its buckets do
// not match a service that references it) without a breaking change later.
export const GPUProfileStatusSchema = z.object({
  observedGeneration: ObservedGenerationSchema.optional(),
  conditions: ConditionListSchema.optional(),
});
export type GPUProfileStatus = z.output<typeof GPUProfileStatusSchema>;

export const GPUProfileSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(GPUPROFILE_KIND),
  metadata: ObjectMetaSchema,
  spec: GPUProfileSpecSchema,
  status: GPUProfileStatusSchema.optional(),
});
export type GPUProfile = z.output<typeof GPUProfileSchema>;
export type GPUProfileInput = z.input<typeof GPUProfileSchema>;
