import highsModule, { type Highs, type VariableType } from 'highs';
import type { MilpEngine, MilpModel, MilpSolution, MilpSolveOptions } from './engine.js';

// Settings decided by measurement (see README "Solver"): presolve in HiGHS 1.15 returned a wrong "optimal"
// on small low-rate models, so it stays off; a zero relative gap makes "optimal" mean proven optimal.
const HIGHS_OPTIONS = {
  output_flag: false,
  presolve: 'off',
  mip_rel_gap: 0,
  mip_abs_gap: 1e-9,
} as const;

const MODEL_STATUS = { optimal: 7, infeasible: 8, unboundedOrInfeasible: 9 } as const;
const LIMIT_STATUSES = new Set([11, 12, 13, 14, 16, 17]);

let loading: Promise<MilpEngine> | undefined;

// The package's typings describe its CommonJS build, but Node resolves its ESM build, whose default export is
// the loader itself; accept either shape.
type Loader = () => Promise<Highs>;
const highsLoader: Loader =
  ((highsModule as unknown as { default?: Loader }).default ?? (highsModule as unknown as Loader));

/** Loads the WASM runtime once per process (or worker) and returns the engine. */
export function loadHighsEngine(): Promise<MilpEngine> {
  loading ??= highsLoader().then((highs): MilpEngine => new HighsEngine(highs));
  return loading;
}

class HighsEngine implements MilpEngine {
  readonly name: string;
  constructor(private readonly highs: Highs) {
    this.name = `highs-${highs.version.string}`;
  }

  solve(m: MilpModel, options: MilpSolveOptions): MilpSolution {
    const h = this.highs;
    let model: ReturnType<Highs['createModel']> | undefined;
    try {
      model = h.createModel({
        numCols: m.numCols,
        numRows: m.numRows,
        sense: h.constants.objectiveSense.minimize,
        colCost: m.colCost,
        colLower: m.colLower,
        colUpper: m.colUpper,
        rowLower: m.rowLower,
        rowUpper: m.rowUpper,
        matrix: { format: 'csr', numRows: m.numRows, numCols: m.numCols, starts: m.rowStarts, indices: m.colIndex, values: m.values },
        integrality: Int32Array.from(m.integer) as unknown as readonly VariableType[],
      });
      model.options.set({ ...HIGHS_OPTIONS, time_limit: Math.max(0.001, options.timeLimitMs / 1000) });
      const { modelStatus } = model.run();
      const hasPrimal = Number(model.info.get('primal_solution_status')) === 2;
      const isMip = m.integer.some((v) => v === 1);
      const dualBound = isMip ? Number(model.info.get('mip_dual_bound')) : undefined;
      const withPoint = () => ({ x: model!.getSolution().colValue, objective: model!.getObjectiveValue(), dualBound });
      if (modelStatus === MODEL_STATUS.optimal && hasPrimal) {
        const sol = withPoint();
        return { outcome: 'optimal', ...sol, dualBound: dualBound ?? sol.objective };
      }
      if (modelStatus === MODEL_STATUS.infeasible || modelStatus === MODEL_STATUS.unboundedOrInfeasible) {
        return { outcome: 'infeasible' };
      }
      if (LIMIT_STATUSES.has(modelStatus)) {
        return hasPrimal ? { outcome: 'limit-with-incumbent', ...withPoint() } : { outcome: 'limit-no-incumbent' };
      }
      return { outcome: 'error', message: `HiGHS model status ${modelStatus}` };
    } catch (err) {
      return { outcome: 'error', message: `HiGHS failed: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      model?.dispose();
    }
  }
}
