import { rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { parseGPUProfile, formatFieldErrors } from '../api/index.js';
import {
  DEFAULT_SEARCH,
  DEFAULT_SIZING,
  EndpointError,
  meanFieldModel,
  optionErrors,
  planSummary,
  ProfileOptionsError,
  ProgressReporter,
  readState,
  runProfile,
  searchConfig,
  sizingConfig,
  StateError,
  formatDuration,
  type ProfileOptions,
  type ProgressStream,
} from '../profiler/index.js';
import { formatLatencyFit } from '../profiler/latency-fit.js';
import { alonePoints } from '../profiler/output.js';
import { EXIT, processIo, UsageError, type Io } from './io.js';
import { numericFlag, parseDuration, resolveBuckets } from './profile-args.js';

export const PROFILE_USAGE = `Usage: melangectl profile --url http://127.0.0.1:PORT --gpu-type TYPE --buckets SPEC --slo-tpot-ms MS
                          [--model NAME] [--state FILE] [--max-duration 10m] [--dry-run] [-o FILE]

Measures one GPU type into a GPUProfile: drives an OpenAI-compatible endpoint (vLLM, or the emulator) with fixed-size
requests at each bucket's upper edges, raising a Poisson rate until the mean TPOT (latency / output tokens) misses the
SLO, then bisecting. Keeps every raw point in spec.measurements so plans can use another SLO later. docs/profiling.md.
  --url URL                 the endpoint; only loopback hosts unless --allow-remote
  --gpu-type TYPE           GPU type being measured (spec.gpuType), e.g. A10G
  --buckets SPEC            "IN1,IN2,.../OUT1,OUT2,..." upper edges (e.g. 100,250,12000/25,50), "paper" (the paper's
                            10 x 6), or a YAML/JSON file holding an LLMService or GPUProfile (its spec.buckets; an
                            LLMService also supplies defaults for --slo-tpot-ms and --model)
  --slo-tpot-ms MS          the SLO searched for (integer ms); profile at the loosest SLO you will plan with
  --model NAME              model to request (default: the LLMService's, else the first of GET /v1/models)
  --state FILE              checkpoint after every probe; an existing FILE is resumed (same settings required)
  --max-duration D          wall-clock budget of this run: 90s, 10m, 2h (default 1h); then it stops, state kept
  --dry-run                 print the plan (buckets, probe and time bounds, expected duration) and exit
  -o, --output FILE         write the GPUProfile YAML there (default: stdout)
  --name NAME               metadata.name (default: <model>-<gpu-type>);  --namespace NS
  --timing auto|server|client   latencies from the server's vLLM histograms (auto: when /metrics has them) or
                            the client's clock; server timing is exact against a time-dilated emulator
  --time-scale auto|X       target seconds per wall second (default auto: the emulator's --speed, else 1)
  --api chat|completions    endpoint to drive (default chat);  --seed N (default 1)
  search:  --tolerance F (${DEFAULT_SEARCH.tolerance}) --max-probes N (${DEFAULT_SEARCH.maxProbes}) --ramp-factor F (${DEFAULT_SEARCH.rampFactor}) --split interpolate|midpoint
  probes:  --probe-lifetimes N (${DEFAULT_SIZING.lifetimes}) --probe-min-requests N (${DEFAULT_SIZING.minRequests}) --probe-ramp-min-requests N (${DEFAULT_SIZING.rampMinRequests})
           --probe-max-requests N (${DEFAULT_SIZING.maxRequests}) --probe-max-seconds S (${DEFAULT_SIZING.maxProbeSeconds})
  --allow-remote            allow a non-loopback --url;  --no-progress  no progress on stderr
Exit codes: 0 profile written (or dry run), 1 stopped early (time budget or endpoint failure; state kept),
2 bad arguments.`;

export interface ProfileDepsCli {
  /** Progress output (default: process.stderr for the real process, else lines through io.err). */
  progress?: ProgressStream;
  fetch?: typeof fetch;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await writeFile(tmp, text, 'utf8');
  await rename(tmp, path);
}

export async function profileCommand(argv: string[], io: Io, deps: ProfileDepsCli = {}): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      'gpu-type': { type: 'string' },
      model: { type: 'string' },
      buckets: { type: 'string' },
      'slo-tpot-ms': { type: 'string' },
      state: { type: 'string' },
      'max-duration': { type: 'string' },
      'dry-run': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      name: { type: 'string' },
      namespace: { type: 'string' },
      timing: { type: 'string' },
      'time-scale': { type: 'string' },
      api: { type: 'string' },
      seed: { type: 'string' },
      tolerance: { type: 'string' },
      'max-probes': { type: 'string' },
      'ramp-factor': { type: 'string' },
      split: { type: 'string' },
      'probe-lifetimes': { type: 'string' },
      'probe-min-requests': { type: 'string' },
      'probe-ramp-min-requests': { type: 'string' },
      'probe-max-requests': { type: 'string' },
      'probe-max-seconds': { type: 'string' },
      'allow-remote': { type: 'boolean' },
      'no-progress': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) { io.out(PROFILE_USAGE); return EXIT.ok; }
  if (!values['gpu-type']) throw new UsageError('--gpu-type is required (e.g. A10G)');
  if (!values.buckets) throw new UsageError('--buckets is required ("IN,.../OUT,...", "paper", or an LLMService file)');
  const source = await resolveBuckets(values.buckets);
  const slo = numericFlag('slo-tpot-ms', values['slo-tpot-ms'], { int: true, min: 1 }) ?? source.slo;
  if (slo === undefined) throw new UsageError('--slo-tpot-ms is required (or give an LLMService file as --buckets)');
  if (slo > 60_000) throw new UsageError('--slo-tpot-ms: at most 60000');
  const timing = values.timing ?? 'auto';
  if (timing !== 'auto' && timing !== 'server' && timing !== 'client') throw new UsageError(`--timing: must be auto, server or client, not "${timing}"`);
  const api = values.api ?? 'chat';
  if (api !== 'chat' && api !== 'completions') throw new UsageError(`--api: must be chat or completions, not "${api}"`);
  const split = values.split ?? DEFAULT_SEARCH.split;
  if (split !== 'interpolate' && split !== 'midpoint') throw new UsageError(`--split: must be interpolate or midpoint, not "${split}"`);
  let timeScale: 'auto' | number = 'auto';
  if (values['time-scale'] !== undefined && values['time-scale'] !== 'auto') timeScale = numericFlag('time-scale', values['time-scale'], { exclusiveMin: 0 })!;
  const maxDurationS = values['max-duration'] !== undefined ? parseDuration(values['max-duration']) : 3600;
  if (!(maxDurationS > 0)) throw new UsageError('--max-duration: must be > 0');

  const search: NonNullable<ProfileOptions['search']> = { split };
  const t = numericFlag('tolerance', values.tolerance, { exclusiveMin: 0 });
  if (t !== undefined) search.tolerance = t;
  const mp = numericFlag('max-probes', values['max-probes'], { int: true, min: 1 });
  if (mp !== undefined) search.maxProbes = mp;
  const rf = numericFlag('ramp-factor', values['ramp-factor'], { exclusiveMin: 1 });
  if (rf !== undefined) search.rampFactor = rf;
  const sizing: NonNullable<ProfileOptions['sizing']> = {};
  const lt = numericFlag('probe-lifetimes', values['probe-lifetimes'], { exclusiveMin: 0 });
  if (lt !== undefined) sizing.lifetimes = lt;
  const mn = numericFlag('probe-min-requests', values['probe-min-requests'], { int: true, min: 1 });
  if (mn !== undefined) sizing.minRequests = mn;
  const rmn = numericFlag('probe-ramp-min-requests', values['probe-ramp-min-requests'], { int: true, min: 1 });
  if (rmn !== undefined) sizing.rampMinRequests = rmn;
  const mx = numericFlag('probe-max-requests', values['probe-max-requests'], { int: true, min: 1 });
  if (mx !== undefined) sizing.maxRequests = mx;
  const ms = numericFlag('probe-max-seconds', values['probe-max-seconds'], { exclusiveMin: 0 });
  if (ms !== undefined) sizing.maxProbeSeconds = ms;
  const seed = numericFlag('seed', values.seed, { int: true, min: 0 });

  const model = values.model ?? source.model;
  const options: ProfileOptions = {
    url: values.url ?? '',
    gpuType: values['gpu-type'],
    buckets: source.buckets,
    sloTpotMillis: slo,
    api,
    timing,
    timeScale,
    maxDurationS,
    search,
    sizing,
    ...(model !== undefined ? { model } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(values.state ? { statePath: values.state } : {}),
    ...(values['allow-remote'] ? { allowRemote: true } : {}),
    meta: { ...(values.name ? { name: values.name } : {}), ...(values.namespace ? { namespace: values.namespace } : {}) },
  };

  if (values['dry-run']) return dryRun(options, io, values.state);
  if (!values.url) throw new UsageError('--url is required');

  const stream: ProgressStream | undefined = values['no-progress']
    ? undefined
    : deps.progress ?? (io === processIo ? process.stderr : { write: (text: string) => { const s = text.replace(/^\r\x1b\[2K/, '').replace(/\n$/, ''); if (s) io.err(s); }, isTTY: false });
  const progress = stream ? new ProgressReporter(stream) : undefined;
  let result;
  try {
    result = await runProfile(options, { ...(deps.fetch ? { fetch: deps.fetch } : {}), ...(progress ? { onEvent: progress.onEvent } : {}) });
  } catch (err) {
    progress?.close();
    if (err instanceof ProfileOptionsError) return optionsFailed(err.message.split('\n'), io);
    if (err instanceof StateError) { io.err(`melangectl profile: ${err.message}`); return EXIT.usage; }
    if (err instanceof EndpointError) { io.err(`melangectl profile: endpoint: ${err.message}`); return EXIT.noPlan; }
    throw err;
  }
  progress?.close();
  if (result.status !== 'complete' || !result.profile) {
    io.err(`melangectl profile: stopped (${result.status}): ${result.message ?? ''}`);
    if (!values.state) io.err('melangectl profile: no --state file was given, so this run cannot be resumed');
    return EXIT.noPlan;
  }
  const check = parseGPUProfile(result.profile);
  if (!check.ok) throw new Error(`internal: the profile does not validate: ${formatFieldErrors(check.errors).join('; ')}`);
  const yaml = stringify(result.profile, { lineWidth: 0 });
  if (values.output) {
    await writeAtomic(values.output, yaml);
    io.err(`melangectl profile: wrote ${values.output} (${result.summary.length} buckets, ${result.profile.spec.measurements?.length ?? 0} measurements, ${result.probesRun} probes in ${formatDuration(result.wallSeconds)})`);
  } else {
    io.out(yaml.trimEnd());
  }
  const latency = result.profile.spec.latency;
  if (latency) io.err(`melangectl profile: ${formatLatencyFit(latency, alonePoints(result.state))}`);
  return EXIT.ok;
}

/** One `melangectl profile: field: problem` line per problem, exit 2. */
function optionsFailed(lines: string[], io: Io): number {
  for (const line of lines) io.err(`melangectl profile: ${line}`);
  return EXIT.usage;
}

async function dryRun(o: ProfileOptions, io: Io, statePath: string | undefined): Promise<number> {
  // The run would refuse these before its first probe; so does its plan (the URL aside: nothing is contacted).
  const problems = optionErrors({ ...o, url: 'http://127.0.0.1' });
  if (problems.length > 0) return optionsFailed(problems, io);
  const search = searchConfig(o);
  const sizing = sizingConfig(o);
  const state = statePath ? await readState(statePath).catch((err: unknown) => { throw err instanceof StateError ? new UsageError(err.message) : err; }) : undefined;
  const probesDone = new Map(Object.entries(state?.buckets ?? {}).map(([k, b]) => [k, b.probes] as const));
  const timeScale = typeof o.timeScale === 'number' ? o.timeScale : 1;
  const model = meanFieldModel(o.gpuType);
  const plan = planSummary({ buckets: o.buckets, sloTpotMillis: o.sloTpotMillis, search, sizing, timeScale, maxDurationS: o.maxDurationS, probesDone, ...(model ? { model } : {}) });
  const lines: string[] = [];
  lines.push(`Plan: profile ${o.gpuType}${o.model ? ` (${o.model})` : ''} at mean TPOT <= ${o.sloTpotMillis} ms over ${plan.buckets.length} buckets (${o.buckets.inputEdges.length} input x ${o.buckets.outputEdges.length} output ranges), each at its upper edges`);
  if (state) lines.push(`State ${statePath}: ${plan.done} buckets done, ${Object.values(state.buckets).reduce((s, b) => s + b.probes.length, 0)} probes recorded (run ${state.runs + 1} would resume)`);
  lines.push(`Search: one request alone, ramp x${search.rampFactor} (x${search.idleRampFactor} while idle) from ${search.startConcurrency} request(s) in flight, ${search.split} bisection to ${Math.round(search.tolerance * 100)}%, at most ${search.maxProbes} load probes per bucket`);
  lines.push(`Probes: ${sizing.lifetimes} request lifetimes (output x SLO) each, ${sizing.minRequests}-${sizing.maxRequests} requests (ramp >= ${sizing.rampMinRequests}), <= ${sizing.maxProbeSeconds} s of arrivals`);
  lines.push('');
  lines.push(`${'bucket'.padEnd(16)}${'input'.padStart(7)}${'output'.padStart(8)}  ${model ? 'expected probes, time, req/s (model)' : 'status'}`);
  for (const [k, b] of plan.buckets.entries()) {
    const e = plan.expected?.perBucket[k];
    const done = state && probesDone.get(b.key) ? `${probesDone.get(b.key)!.length} probes recorded` : '';
    const what = e ? `${String(e.probes).padStart(3)}  ${formatDuration(e.wallS).padStart(7)}  ${e.maxThroughput > 0 ? e.maxThroughput.toPrecision(3) : 'cannot serve'}` : '';
    lines.push(`${`[${b.i}][${b.j}]`.padEnd(16)}${String(b.input).padStart(7)}${String(b.output).padStart(8)}  ${what}${done ? `  (${done})` : ''}`);
  }
  lines.push('');
  lines.push(`Upper bound: ${plan.probesUpperBound} probes, ${formatDuration(plan.wallUpperBoundS)} (capped by --max-duration ${formatDuration(o.maxDurationS)})`);
  if (plan.expected) {
    lines.push(`Expected: ${plan.expected.probes} probes, about ${formatDuration(plan.expected.wallS)} at time scale ${timeScale}${typeof o.timeScale === 'number' ? '' : ' (pass --time-scale X for a time-dilated emulator)'}`);
    lines.push(`          from the ${plan.expected.model}: an estimate, not a measurement`);
    if (plan.expected.wallS > o.maxDurationS) lines.push(`          more than --max-duration ${formatDuration(o.maxDurationS)}: plan on resuming with --state`);
  } else {
    lines.push(`Expected duration: unknown for GPU type "${o.gpuType}" (no built-in model); it depends on the endpoint's capacity`);
  }
  io.out(lines.join('\n'));
  return EXIT.ok;
}
