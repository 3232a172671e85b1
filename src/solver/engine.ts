// The seam between the Mélange model and a MILP engine. The solver builds a MilpModel; any engine that can
// solve one (HiGHS in WASM today) plugs in, so tests and benchmarks can swap engines without touching the model.

/** A minimisation MILP in row-wise sparse form. Bounds may be ±Infinity. */
export interface MilpModel {
  numCols: number;
  numRows: number;
  colCost: Float64Array;
  colLower: Float64Array;
  colUpper: Float64Array;
  /** 1 = integer, 0 = continuous. */
  integer: Uint8Array;
  rowLower: Float64Array;
  rowUpper: Float64Array;
  /** CSR: row r holds entries rowStarts[r] .. rowStarts[r+1]-1 of colIndex/values. */
  rowStarts: Int32Array;
  colIndex: Int32Array;
  values: Float64Array;
}

export type MilpOutcome =
  | 'optimal'               // the engine proved optimality (still verified by the caller)
  | 'limit-with-incumbent'  // a time/iteration limit stopped it with a feasible point
  | 'limit-no-incumbent'    // stopped by a limit before finding any feasible point
  | 'infeasible'
  | 'error';

export interface MilpSolution {
  outcome: MilpOutcome;
  x?: Float64Array;
  objective?: number;
  /** Proven lower bound on the optimum (MIP dual bound). */
  dualBound?: number;
  message?: string;
  /** How the engine solved it, e.g. `mip` or `lp-branch-and-bound`; reported in solve stats. */
  method?: string;
}

export interface MilpSolveOptions {
  timeLimitMs: number;
  /** A feasible point to start from (a MIP start); engines may ignore it. */
  start?: Float64Array;
}

export interface MilpEngine {
  readonly name: string;
  solve(model: MilpModel, options: MilpSolveOptions): MilpSolution;
}
