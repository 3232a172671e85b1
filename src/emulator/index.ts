export * from './gpu-models.js';
export * from '../common/tokens.js';
export { Engine, contextError, DEFAULT_LIMITS, type EngineLimits, type EngineStats, type FinishedRequest, type RequestSpec, type Step, type StepOutcome, type TokenEvent } from './engine.js';
export { EngineDriver, type DriverOptions, type DriverHooks, type RequestListener } from './driver.js';
export {
  simulate,
  paperTpot,
  trialAtRate,
  meanTpotAtRate,
  emulatedMaxThroughput,
  emulatedProfile,
  MAX_SPAN_RATIO,
  type CapacityOptions,
  type RateTrial,
  type SimulationResult,
} from './simulate.js';
export { mulberry32, exponential } from '../common/random.js';
export { EmulatorMetrics, buckets125 } from './metrics.js';
export {
  startEmulator,
  DEFAULT_EMULATED_MODEL,
  EMULATOR_HEADER,
  EMULATOR_OWNER,
  EMULATOR_SPEED_HEADER,
  type EmulatorOptions,
  type RunningEmulator,
} from './server.js';
