// `melangectl profile` as a library: measure a GPU type into a GPUProfile (docs/profiling.md).
export {
  MAX_SPAN_RATIO,
  judge,
  passes,
  deriveRate,
  deriveMaxThroughput,
  deriveMatrix,
  groupByBucket,
  rangeIndex,
  type BucketEdges,
  type DerivedCell,
  type Point,
  type RateDerivation,
  type Verdict,
} from '../solver/capacity-from-measurements.js';
export {
  DEFAULT_SEARCH,
  nextStep,
  startRate,
  probeVerdict,
  loadMeasurements,
  effectiveLoadProbes,
  splitPoint,
  type BucketResult,
  type SearchPhase,
  type ProbeKind,
  type ProbeRecord,
  type SearchConfig,
  type SearchStep,
} from './search.js';
export { clientWindow, middleRange, spanRates, toMeasurement, DEFAULT_TRIM, SPAN_QUANTILE, type ProbeRequest, type WindowStats } from './measure.js';
export { parseHistogram, parseSnapshot, histogramDelta, histogramQuantile, scrape, type HistogramSnapshot, type MetricsSnapshot } from './metrics.js';
export { runProbe, EndpointError, type ProbeContext, type ProbeOutcome, type ProbeSpec } from './probe.js';
export {
  bucketTargets,
  probeRequests,
  probeWallBounds,
  planSummary,
  simulateSearch,
  lifetimeS,
  DEFAULT_SIZING,
  type BucketGrid,
  type BucketTarget,
  type PlanSummary,
  type ProbeSizing,
} from './plan.js';
export { modelEndpoint, meanFieldModel, type EndpointModel, type ModelPoint } from './model.js';
export { newState, readState, writeStateAtomic, signatureDiff, StateError, STATE_KIND, STATE_VERSION, type BucketState, type ProfilerState, type StateSignature } from './state.js';
export {
  buildProfile,
  summarize,
  profileName,
  CANNOT_SERVE_ANNOTATION,
  LOWER_BOUND_ANNOTATION,
  MEASURED_ON_ANNOTATION,
  PROFILER_ANNOTATION,
  type BucketSummary,
  type ProfileMeta,
} from './output.js';
export { runProfile, discoverEndpoint, type ProfileDeps, type ProfileEvent, type ProfileRunResult } from './run.js';
export { optionErrors, validateOptions, searchConfig, sizingConfig, ProfileOptionsError, type ProfileOptions } from './options.js';
export { simulatedEndpoint, simulatedProbe, poissonArrivals, SIMULATED_TIME_SCALE, type SimulatedEndpoint } from './simulated.js';
export { ProgressReporter, formatDuration, type ProgressStream } from './progress.js';
