import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { builtinCatalog, formatFieldErrors } from '../api/index.js';
import { instanceFromService } from '../solver/from-api.js';
import { isSuccess, loadHighsEngine, solve } from '../solver/index.js';
import { loadManifests, ManifestError } from './manifests.js';
import { buildPlanReport, type PlanReport } from './plan-report.js';
import { renderPlanTable } from './plan-table.js';
import { EXIT, UsageError, type Io } from './io.js';

export const PLAN_USAGE = `Usage: melangectl plan -f <LLMService manifest> [--rate R] [--profiles FILE ...] [-o table|json|yaml]

Solves the cheapest mix of GPU types for an LLMService, offline (no cluster needed).
  -f, --file FILE       manifest with one LLMService (it may also hold GPUPools and GPUProfiles)
      --rate R          total request rate in req/s, overriding spec.workload.static.requestsPerSecond
      --profiles FILE   GPUProfile/GPUPool manifests (repeatable); without them, a built-in illustrative
                        catalog (L4, A10G, A100-80GB, H100; Llama-2-7B) is used and the output says so
  -o, --output FORMAT   table (default), json or yaml; json/yaml are the stable shape in docs/plan-output.md
Exit codes: 0 planned, 1 no feasible plan, 2 bad arguments or manifests.`;

export async function planCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string', short: 'f' },
      rate: { type: 'string' },
      profiles: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) { io.out(PLAN_USAGE); return EXIT.ok; }
  if (!values.file) throw new UsageError('plan: -f <LLMService manifest> is required');
  const format = values.output;
  if (format !== 'table' && format !== 'json' && format !== 'yaml') throw new UsageError(`--output: must be table, json or yaml, not "${format}"`);
  let rate: number | undefined;
  if (values.rate !== undefined) {
    rate = Number(values.rate);
    if (values.rate.trim() === '' || !Number.isFinite(rate) || rate < 0) throw new UsageError(`--rate: must be a number >= 0, not "${values.rate}"`);
  }

  const main = await loadManifests([values.file]);
  const extra = values.profiles ? await loadManifests(values.profiles) : { services: [], profiles: [], pools: [] };
  if (main.services.length !== 1) {
    throw new ManifestError([`${values.file}: expected exactly one LLMService, found ${main.services.length}`]);
  }
  const { value: service, file } = main.services[0]!;
  const catalog = builtinCatalog();
  const givenProfiles = [...main.profiles, ...extra.profiles];
  const givenPools = [...main.pools, ...extra.pools];
  const usesCatalog = givenProfiles.length === 0 || givenPools.length === 0;
  const refs = {
    profiles: givenProfiles.length > 0 ? givenProfiles : catalog.profiles,
    pools: givenPools.length > 0 ? givenPools : catalog.pools,
  };

  const built = instanceFromService(service, refs, rate === undefined ? {} : { requestsPerSecond: rate });
  if (!built.ok) throw new ManifestError(formatFieldErrors(built.errors, file));

  const engine = await loadHighsEngine();
  const result = solve(built.value.input, engine);
  const report: PlanReport = buildPlanReport({
    result,
    instance: built.value,
    service: {
      name: service.metadata.name ?? '(unnamed)',
      ...(service.metadata.namespace ? { namespace: service.metadata.namespace } : {}),
      model: service.spec.model,
      sloTpotMillis: service.spec.slo.tpotMillis,
    },
    profiles: usesCatalog
      ? { source: 'builtin-catalog', illustrative: true, note: `built-in catalog: ${catalog.note}` }
      : { source: 'files', illustrative: false },
  });
  if (format === 'json') io.out(JSON.stringify(report, null, 2));
  else if (format === 'yaml') io.out(stringify(report).trimEnd());
  else io.out(renderPlanTable(report));
  return isSuccess(result) ? EXIT.ok : EXIT.noPlan;
}
