// The api layer: zod schemas (the single source of TS types, runtime validation and CRD YAML),
// condition helpers, CRD generation and the built-in illustrative catalog.
export * from './meta.js';
export * from './rules.js';
export * from './buckets.js';
export * from './llmservice.js';
export * from './latency.js';
export * from './gpuprofile.js';
export * from './gpupool.js';
export * from './conditions.js';
export * from './structural.js';
export * from './lint.js';
export * from './crd.js';
export * from './validate.js';
export * from './catalog.js';
export * from './generate.js';
