import highsModule, { type Highs, type VariableType } from 'highs';
import { branchAndBound, type LpSession } from './branch-and-bound.js';
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
/** Up to this many integer columns our LP branch and bound beats HiGHS's MIP machinery (measured; README). */
export const BNB_MAX_INTEGER_COLUMNS = 48;
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
    const integers = m.integer.reduce((n, v) => n + v, 0);
    if (integers <= BNB_MAX_INTEGER_COLUMNS) {
      return this.withModel(m, false, (model) => {
        const session = lpSession(this.highs, model);
        const sol = integers === 0 ? lpOnly(session, options.timeLimitMs) : branchAndBound(m, session, options.timeLimitMs);
        return { ...sol, method: integers === 0 ? 'lp' : 'lp-branch-and-bound' };
      });
    }
    return this.withModel(m, true, (model) => ({ ...this.runMip(model, options), method: 'mip' }));
  }

  private withModel(m: MilpModel, integral: boolean, body: (model: HighsModel) => MilpSolution): MilpSolution {
    const h = this.highs;
    let model: HighsModel | undefined;
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
        ...(integral ? { integrality: Int32Array.from(m.integer) as unknown as readonly VariableType[] } : {}),
      });
      model.options.set(HIGHS_OPTIONS);
      return body(model);
    } catch (err) {
      return { outcome: 'error', message: `HiGHS failed: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      model?.dispose();
    }
  }

  private runMip(model: HighsModel, options: MilpSolveOptions): MilpSolution {
    model.options.set({ time_limit: Math.max(0.001, options.timeLimitMs / 1000) });
    if (options.start) model.setSolution({ colValue: options.start });
    const { modelStatus } = model.run();
    const hasPrimal = Number(model.info.get('primal_solution_status')) === 2;
    const dualBound = Number(model.info.get('mip_dual_bound'));
    const point = () => ({ x: model.getSolution().colValue, objective: model.getObjectiveValue(), dualBound });
    if (modelStatus === MODEL_STATUS.optimal && hasPrimal) return { outcome: 'optimal', ...point() };
    if (modelStatus === MODEL_STATUS.infeasible || modelStatus === MODEL_STATUS.unboundedOrInfeasible) return { outcome: 'infeasible' };
    if (LIMIT_STATUSES.has(modelStatus)) return hasPrimal ? { outcome: 'limit-with-incumbent', ...point() } : { outcome: 'limit-no-incumbent' };
    return { outcome: 'error', message: `HiGHS model status ${modelStatus}` };
  }
}

type HighsModel = ReturnType<Highs['createModel']>;

function lpSession(h: Highs, model: HighsModel): LpSession {
  return {
    setColBounds: (col, lower, upper) => { model.changeColBounds(col, lower, upper); },
    solve: (timeLimitMs) => {
      model.zeroAllClocks(); // time_limit is cumulative over run() calls on one model; each re-solve gets its own budget
      model.options.set({ time_limit: Math.max(0.001, timeLimitMs / 1000) });
      const { modelStatus } = model.run();
      if (modelStatus === MODEL_STATUS.optimal) {
        return { status: 'optimal', x: model.getSolution().colValue, objective: model.getObjectiveValue() };
      }
      if (modelStatus === MODEL_STATUS.infeasible || modelStatus === MODEL_STATUS.unboundedOrInfeasible) return { status: 'infeasible' };
      if (LIMIT_STATUSES.has(modelStatus)) return { status: 'limit' };
      return { status: 'error', message: `HiGHS LP status ${modelStatus} (${h.version.string})` };
    },
  };
}

function lpOnly(session: LpSession, timeLimitMs: number): MilpSolution {
  const r = session.solve(timeLimitMs);
  if (r.status === 'optimal') return { outcome: 'optimal', x: r.x!, objective: r.objective!, dualBound: r.objective! };
  if (r.status === 'infeasible') return { outcome: 'infeasible' };
  if (r.status === 'limit') return { outcome: 'limit-no-incumbent' };
  return { outcome: 'error', message: r.message ?? 'LP failed' };
}
