export { startRouter, RouterConfigError, DEFAULT_MAX_BODY_BYTES, DEFAULT_SHUTDOWN_GRACE_MS, type StartRouterOptions, type RouterHandle } from './server.js';
export {
  RouterConfigSchema, PoolSchema, SplitEntrySchema, RoutingSchema, PoolDiscoverySchema, PoolDnsSchema, POOL_SOURCE_KINDS, DEFAULT_DNS_REFRESH_MS, validateConfig, parseConfigText, diffConfig,
  type RouterConfig, type RouterConfigInput, type PoolConfig, type PoolDnsConfig, type SplitEntry, type RoutingConfig, type ConfigDiff, type ConfigResult,
} from './config.js';
export { METRIC, NO_POOL, TTFT_BUCKETS, TPOT_BUCKETS } from './metrics.js';
export { bucketIndex, bucketLabel, bucketOf } from './buckets.js';
export { inspectRequest, classify, upstreamBodyFor, type InspectedRequest, type Classification } from './classify.js';
export { OutputLengthEstimator } from './output-estimate.js';
export { resolveSplitTable, capacityWeights, normaliseWeights, smoothPick, randomPick, SmoothPicker, RandomPicker, type PoolWeights, type PoolPicker } from './weights.js';
export { leastLoaded, planAttempt, shouldRetry, type BackendView, type AttemptPlan } from './select.js';
export { StaticSource, makeSourceFactory, type BackendSource, type SourceFactory, type SourceKinds } from './discovery.js';
export { DnsSource, parseResolvConf, candidateNames, backendUrls, DEFAULT_DNS_MAX_BACKENDS, type DnsSourceOptions, type ResolvConf } from './dns.js';
export { EndpointSliceSource, readyBackendsFromSlices, slicePort, SERVICE_NAME_LABEL } from './endpointslices.js';
export { mulberry32 } from '../common/random.js';
