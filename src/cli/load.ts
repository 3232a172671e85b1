import { parseArgs } from 'node:util';
import { DistributionError, loadDistribution, type SizeDistribution } from '../loadgen/distribution.js';
import { renderLoadTable } from '../loadgen/report.js';
import { LoadOptionsError, runLoad, type LoadOptions } from '../loadgen/run.js';
import { EXIT, UsageError, type Io } from './io.js';

export const LOAD_USAGE = `Usage: melangectl load --url http://127.0.0.1:PORT --rate R (--distribution FILE | --input N --output N)
                       [--requests N] [--duration S] [--slo-tpot-ms MS] [-o table|json]

Sends Poisson traffic to an OpenAI-compatible server (vLLM, the router or the emulator) and reports TTFT,
TPOT and latency percentiles, throughput, errors and SLO attainment.
  --url URL               server base URL; only loopback hosts unless --allow-remote
  --rate R                mean arrival rate, requests per second of target time (default 1)
  --distribution FILE     request sizes (YAML/JSON; see examples/workloads/ and docs/load-generator.md)
  --input N --output N    instead of a distribution: every request N prompt tokens, N output tokens
  --requests N            most requests sent (default 20)
  --duration S            most wall-clock seconds of arrivals (default 30); both bounds always apply
  --slo-tpot-ms MS        SLO on the paper's TPOT = latency / output tokens; reports attainment
  --api chat|completions  endpoint (default chat)
  --model NAME            model to request (default: the first of GET /v1/models)
  --no-stream             non-streaming requests (no TTFT)
  --time-scale auto|X     target seconds per wall-clock second (default auto: the emulator's --speed from
                          its x-melange-emulator-speed header, else 1); rates and reported times use it
  --seed N                seed for arrivals and sizes (default 1)
  --max-in-flight N       most concurrent requests (default 512)
  --timeout S             wall-clock seconds per request (default 600)
  --drain S               wall-clock seconds to wait for in-flight requests after the last arrival (default 120)
  --allow-remote          allow a non-loopback --url
  --per-request           with -o json, include every request's result
  -o, --format FORMAT     table (default) or json (--output is the output token count)
Exit codes: 0 ran (see the report for errors), 1 no request completed, 2 bad arguments.`;

function num(name: string, raw: string | undefined, def: number, opts: { int?: boolean; min?: number; exclusiveMin?: number } = {}): number {
  if (raw === undefined) return def;
  const v = Number(raw);
  const bad =
    raw.trim() === '' ||
    !Number.isFinite(v) ||
    (opts.int === true && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min) ||
    (opts.exclusiveMin !== undefined && v <= opts.exclusiveMin);
  if (bad) {
    const range = opts.min !== undefined ? `>= ${opts.min}` : opts.exclusiveMin !== undefined ? `> ${opts.exclusiveMin}` : 'finite';
    throw new UsageError(`--${name}: must be ${opts.int ? 'an integer' : 'a number'} ${range}, not "${raw}"`);
  }
  return v;
}

export async function loadCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      rate: { type: 'string' },
      distribution: { type: 'string' },
      input: { type: 'string' },
      output: { type: 'string' },
      requests: { type: 'string' },
      duration: { type: 'string' },
      'slo-tpot-ms': { type: 'string' },
      api: { type: 'string' },
      model: { type: 'string' },
      'no-stream': { type: 'boolean' },
      'time-scale': { type: 'string' },
      seed: { type: 'string' },
      'max-in-flight': { type: 'string' },
      timeout: { type: 'string' },
      drain: { type: 'string' },
      'allow-remote': { type: 'boolean' },
      'per-request': { type: 'boolean' },
      format: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) { io.out(LOAD_USAGE); return EXIT.ok; }
  if (!values.url) throw new UsageError('--url is required');
  const format = values.format;
  if (format !== 'table' && format !== 'json') throw new UsageError(`-o: must be table or json, not "${format}"`);
  const api = values.api ?? 'chat';
  if (api !== 'chat' && api !== 'completions') throw new UsageError(`--api: must be chat or completions, not "${api}"`);

  let distribution: SizeDistribution;
  const fixed = values.input !== undefined || values.output !== undefined;
  if (fixed && values.distribution) throw new UsageError('give --distribution or --input/--output, not both');
  if (fixed) {
    if (values.input === undefined || values.output === undefined) throw new UsageError('--input and --output go together');
    const input = num('input', values.input, 0, { int: true, min: 1 });
    const output = num('output', values.output, 0, { int: true, min: 1 });
    distribution = { name: `fixed ${input} in / ${output} out`, ranges: [{ probability: 1, inputMin: input, inputMax: input, outputMin: output, outputMax: output }] };
  } else if (values.distribution) {
    try {
      distribution = await loadDistribution(values.distribution);
    } catch (err) {
      if (err instanceof DistributionError) throw new UsageError(`--distribution: ${err.message}`);
      throw err;
    }
  } else {
    throw new UsageError('--distribution FILE (or --input N --output N) is required');
  }

  let timeScale: LoadOptions['timeScale'] = 'auto';
  const ts = values['time-scale'];
  if (ts !== undefined && ts !== 'auto') timeScale = num('time-scale', ts, 1, { exclusiveMin: 0 });

  const options: LoadOptions = {
    url: values.url,
    rate: num('rate', values.rate, 1, { exclusiveMin: 0 }),
    requests: num('requests', values.requests, 20, { int: true, min: 1 }),
    durationS: num('duration', values.duration, 30, { exclusiveMin: 0 }),
    distribution,
    api,
    stream: !values['no-stream'],
    timeScale,
    seed: num('seed', values.seed, 1, { int: true, min: 0 }),
    maxInFlight: num('max-in-flight', values['max-in-flight'], 512, { int: true, min: 1 }),
    requestTimeoutS: num('timeout', values.timeout, 600, { exclusiveMin: 0 }),
    drainS: num('drain', values.drain, 120, { min: 0 }),
    allowRemote: values['allow-remote'] ?? false,
    ...(values.model !== undefined ? { model: values.model } : {}),
    ...(values['slo-tpot-ms'] !== undefined ? { sloTpotMs: num('slo-tpot-ms', values['slo-tpot-ms'], 0, { exclusiveMin: 0 }) } : {}),
  };

  let report;
  try {
    report = await runLoad(options);
  } catch (err) {
    if (err instanceof LoadOptionsError) throw new UsageError(err.message);
    throw err;
  }
  if (format === 'json') {
    const { results, ...summary } = report;
    io.out(JSON.stringify(values['per-request'] ? report : summary, null, 2));
    void results;
  } else {
    io.out(renderLoadTable(report));
  }
  return report.completed > 0 ? EXIT.ok : EXIT.noPlan;
}
