import { z } from 'zod';
import {
  API_VERSION,
  ConditionListSchema,
  DNS_LABEL_RE,
  DnsLabelSchema,
  DnsSubdomainSchema,
  MoneySchema,
  ObjectMetaSchema,
  ObservedGenerationSchema,
  StringMapSchema,
} from './meta.js';
import { isRecord, withRules, type CrossRule } from './rules.js';

export const GPUPOOL_KIND = 'GPUPool';

// Extended resources must be domain-prefixed (nvidia.com/gpu, amd.com/gpu).
const EXTENDED_RESOURCE_RE =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export const TolerationSchema = z
  .looseObject({
    key: z.string().max(316).optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().max(63).optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.int().optional(),
  })
  .describe('A core/v1 Toleration.');

const PROVIDER_TYPES = ['None', 'ClusterAPI', 'Karpenter', 'Scale'] as const;
type ProviderBlock = 'clusterAPI' | 'karpenter' | 'scale';

const requiresBlock = (type: string, block: ProviderBlock): CrossRule<{ type?: unknown } & Record<string, unknown>> => ({
  rule: `self.type != '${type}' || has(self.${block})`,
  message: `type ${type} requires ${block}`,
  fieldPath: `.${block}`,
  reason: 'FieldValueRequired',
  holds: (p) => p.type !== type || p[block] !== undefined,
});

export const ProviderSchema = withRules(
  z
    .object({
      type: z
        .enum(PROVIDER_TYPES)
        .default('None')
        .describe('None: nodes come from the cluster autoscaler or are static; the others are scaled by the operator.'),
      clusterAPI: z
        .object({ namespace: DnsLabelSchema, name: DnsSubdomainSchema })
        .optional()
        .describe('A Cluster API MachineDeployment to scale.'),
      karpenter: z.object({ nodePool: DnsSubdomainSchema }).optional().describe('A Karpenter NodePool to cap.'),
      scale: z
        .object({
          apiVersion: z.string().min(1).max(253),
          kind: z.string().min(1).max(63),
          namespace: DnsLabelSchema.optional(),
          name: DnsSubdomainSchema,
        })
        .optional()
        .describe('Any object with a /scale subresource whose replicas are nodes.'),
    })
    .describe('How nodes of this pool are added and removed.'),
  [requiresBlock('ClusterAPI', 'clusterAPI'), requiresBlock('Karpenter', 'karpenter'), requiresBlock('Scale', 'scale')],
);
export type Provider = z.output<typeof ProviderSchema>;

export const GPUPoolSpecSchema = withRules(
  z.object({
    gpuType: z.string().min(1).max(63).describe('GPU type, matching GPUProfile.spec.gpuType, e.g. A10G.'),
    costPerGPUHour: MoneySchema.describe('Price of one GPU for one hour, e.g. "1.01".'),
    gpusPerNode: z.int().min(1).max(64).describe('GPUs on each node of the pool.'),
    resourceName: z
      .string()
      .max(253)
      .regex(EXTENDED_RESOURCE_RE)
      .default('nvidia.com/gpu')
      .describe('Extended resource the model server requests.'),
    nodeSelector: StringMapSchema.optional().describe('Labels that select this pool\'s nodes.'),
    tolerations: z.array(TolerationSchema).max(32).optional().describe('Tolerations for this pool\'s taints.'),
    minNodes: z.int().min(0).max(10_000).default(0),
    maxNodes: z.int().min(0).max(10_000).optional().describe('Availability cap; unset means unbounded.'),
    provider: ProviderSchema.prefault({ type: 'None' }),
  }),
  [
    {
      rule: '!has(self.maxNodes) || self.minNodes <= self.maxNodes',
      message: 'maxNodes must be greater than or equal to minNodes',
      fieldPath: '.maxNodes',
      holds: (s) => s.maxNodes === undefined || s.minNodes <= s.maxNodes,
    },
  ],
);
export type GPUPoolSpec = z.output<typeof GPUPoolSpecSchema>;

export const GPUPoolStatusSchema = z.object({
  observedGeneration: ObservedGenerationSchema.optional(),
  conditions: ConditionListSchema.optional(),
  desiredNodes: z.int().min(0).optional().describe('Nodes the operator wants in this pool.'),
  readyNodes: z.int().min(0).optional().describe('Ready nodes that match the pool.'),
  demandedGPUs: z.int().min(0).optional().describe('GPUs requested by the services placed on this pool.'),
  allocatableGPUs: z.int().min(0).optional().describe('Allocatable GPUs on the ready nodes.'),
});
export type GPUPoolStatus = z.output<typeof GPUPoolStatusSchema>;

/** Pool names appear in Deployment names and label values, so they must be DNS labels, not just subdomains. */
export const POOL_NAME_RULE: CrossRule<{ metadata?: unknown }> = {
  rule: "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
  message: 'GPUPool names must be DNS labels (lowercase alphanumerics and dashes, at most 63 characters)',
  // No fieldPath: it must name a property declared in the CRD schema, and metadata's are not.
  offlinePath: ['metadata', 'name'],
  holds: (o) => {
    const name = isRecord(o.metadata) ? o.metadata.name : undefined;
    return typeof name !== 'string' || (name.length <= 63 && DNS_LABEL_RE.test(name));
  },
};

export const GPUPoolSchema = withRules(
  z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(GPUPOOL_KIND),
    metadata: ObjectMetaSchema,
    spec: GPUPoolSpecSchema,
    status: GPUPoolStatusSchema.optional(),
  }),
  [POOL_NAME_RULE],
);
export type GPUPool = z.output<typeof GPUPoolSchema>;
export type GPUPoolInput = z.input<typeof GPUPoolSchema>;

export const GPUPoolConditionTypes = {
  Ready: 'Ready',
  CapacityProvisioned: 'CapacityProvisioned',
} as const;
