// The workload layer: Prometheus HTTP API client, safe PromQL, estimation (pure) and workload sources.
// Secret resolution (Kubernetes) lives in ./secrets.js and is imported by the controller directly, so
// nothing here depends on the Kubernetes client.
export * from './promql.js';
export * from './prometheus-client.js';
export * from './queries.js';
export * from './estimate.js';
export * from './backoff.js';
export * from './source.js';
