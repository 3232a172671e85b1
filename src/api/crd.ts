import type { z } from 'zod';
import { GPUPOOL_KIND, GPUPoolSpecSchema, GPUPoolStatusSchema, POOL_NAME_RULE } from './gpupool.js';
import { GPUPROFILE_KIND, GPUProfileSpecSchema, GPUProfileStatusSchema } from './gpuprofile.js';
import { LLMSERVICE_KIND, LLMServiceSpecSchema, LLMServiceStatusSchema } from './llmservice.js';
import { GROUP, VERSION } from './meta.js';
import { celOf, type CelValidation, type CrossRule } from './rules.js';
import { toStructural, type JsonSchema } from './structural.js';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 1 = only with `-o wide`. */
  priority?: number;
}

export interface CrdDefinition {
  kind: string;
  plural: string;
  singular: string;
  scope: 'Namespaced' | 'Cluster';
  shortNames: string[];
  categories: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
  /** Rules on the whole object; only these may read `self.metadata.name`. */
  rootRules?: ReadonlyArray<CrossRule<never>>;
}

/** The apiextensions.k8s.io/v1 object, typed just enough for what we generate. */
export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JsonSchema };
    }>;
  };
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export function openApiSchemaOf(def: CrdDefinition): JsonSchema {
  const root: JsonSchema = {
    description: def.description,
    type: 'object',
    properties: {
      apiVersion: { description: 'Versioned schema of this representation of an object.', type: 'string' },
      kind: { description: 'REST resource this object represents.', type: 'string' },
      metadata: { type: 'object' },
      spec: { description: `Desired state of the ${def.kind}.`, ...toStructural(def.spec) },
      status: { description: `Observed state of the ${def.kind}, written by the operator.`, ...toStructural(def.status) },
    },
    required: ['spec'],
  };
  const rules: CelValidation[] = (def.rootRules ?? []).map((r) => celOf(r));
  if (rules.length > 0) root['x-kubernetes-validations'] = rules;
  return root;
}

export function buildCrd(def: CrdDefinition): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: def.categories,
      },
      scope: def.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...def.printerColumns, AGE],
          schema: { openAPIV3Schema: openApiSchemaOf(def) },
        },
      ],
    },
  };
}

const READY: PrinterColumn = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };

export const LLMSERVICE_CRD: CrdDefinition = {
  kind: LLMSERVICE_KIND,
  plural: 'llmservices',
  singular: 'llmservice',
  scope: 'Namespaced',
  shortNames: ['llms'],
  categories: ['all', 'melange'],
  description: 'An LLM served on the cheapest mix of GPU types that meets its latency SLO.',
  spec: LLMServiceSpecSchema,
  status: LLMServiceStatusSchema,
  printerColumns: [
    { name: 'Model', type: 'string', jsonPath: '.spec.model' },
    { name: 'Mix', type: 'string', jsonPath: '.status.mix' },
    { name: 'Cost/h', type: 'string', jsonPath: '.status.costPerHour' },
    { name: 'Savings', type: 'string', jsonPath: '.status.savingsPercent', description: 'Percent saved against the best single GPU type.' },
    READY,
    { name: 'Solve', type: 'string', jsonPath: '.status.lastSolve.status', priority: 1 },
  ],
};

export const GPUPROFILE_CRD: CrdDefinition = {
  kind: GPUPROFILE_KIND,
  plural: 'gpuprofiles',
  singular: 'gpuprofile',
  scope: 'Namespaced',
  shortNames: ['gpuprof'],
  categories: ['melange'],
  description: 'Measured serving capacity of one model on one GPU type under a TPOT SLO.',
  spec: GPUProfileSpecSchema,
  status: GPUProfileStatusSchema,
  printerColumns: [
    { name: 'Model', type: 'string', jsonPath: '.spec.model' },
    { name: 'GPU', type: 'string', jsonPath: '.spec.gpuType' },
    { name: 'TPOT SLO', type: 'integer', jsonPath: '.spec.slo.tpotMillis', description: 'Milliseconds per output token.' },
  ],
};

export const GPUPOOL_CRD: CrdDefinition = {
  kind: GPUPOOL_KIND,
  plural: 'gpupools',
  singular: 'gpupool',
  scope: 'Cluster',
  shortNames: ['gpupool'],
  categories: ['melange'],
  description: 'Capacity and price of one GPU type in the cluster, and how its nodes are scaled.',
  spec: GPUPoolSpecSchema,
  status: GPUPoolStatusSchema,
  rootRules: [POOL_NAME_RULE],
  printerColumns: [
    { name: 'GPU', type: 'string', jsonPath: '.spec.gpuType' },
    { name: '$/GPU-h', type: 'string', jsonPath: '.spec.costPerGPUHour' },
    { name: 'Desired', type: 'integer', jsonPath: '.status.desiredNodes' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyNodes' },
    { name: 'Demanded GPUs', type: 'integer', jsonPath: '.status.demandedGPUs', priority: 1 },
  ],
};

export const CRD_DEFINITIONS: readonly CrdDefinition[] = [LLMSERVICE_CRD, GPUPROFILE_CRD, GPUPOOL_CRD];

export const melangeCrds = (): CustomResourceDefinition[] => CRD_DEFINITIONS.map(buildCrd);
