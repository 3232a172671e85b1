export * from './types.js';
export type { MilpEngine, MilpModel, MilpSolution } from './engine.js';
export { solve, type SolveOptions } from './solve.js';
export { loadHighsEngine } from './highs-engine.js';
export { SolverWorker, type SolverWorkerOptions } from './worker.js';
