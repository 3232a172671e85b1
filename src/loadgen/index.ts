export {
  runLoad,
  requestBody,
  isLoopbackHost,
  LoadOptionsError,
  type LoadDeps,
  type LoadOptions,
  type LoadReport,
  type RequestResult,
  type RequestStatus,
} from './run.js';
export {
  loadDistribution,
  distributionFrom,
  sizeSampler,
  meanSize,
  DistributionError,
  DistributionFileSchema,
  type DistributionFile,
  type RequestSize,
  type SizeDistribution,
  type SizeRange,
} from './distribution.js';
export { percentile, summarize, type Summary } from './stats.js';
export { SseParser } from './sse.js';
export { renderLoadTable } from './report.js';
export { mulberry32, exponential } from '../common/random.js';
