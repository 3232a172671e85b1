/**
 * The options of a profiling run and their validation. Everything is checked BEFORE the first probe, including
 * that the GPUProfile the run will write passes the API schema: a run can take hours, and a bad name or a gpuType
 * longer than the schema allows must not surface only at the end. Errors name the field (`search.tolerance: must
 * be > 0, not 0`; `spec.gpuType: ...` for what the profile would carry).
 */
import { API_VERSION, formatFieldErrors, GPUPROFILE_KIND, MAX_MEASUREMENTS, parseGPUProfile } from '../api/index.js';
import { isLoopbackHost } from '../loadgen/run.js';
import { profileName, type ProfileMeta } from './output.js';
import { DEFAULT_SIZING, type BucketGrid, type ProbeSizing } from './plan.js';
import { DEFAULT_SEARCH, type SearchConfig } from './search.js';

export interface ProfileOptions {
  url: string;
  gpuType: string;
  /** Model to request; default: the first of GET /v1/models. */
  model?: string;
  buckets: BucketGrid;
  sloTpotMillis: number;
  api?: 'chat' | 'completions';
  /** 'auto' (default): server-side vLLM histograms when /metrics has them, else the client's clock. */
  timing?: 'auto' | 'server' | 'client';
  /** Target seconds per wall second; 'auto' (default): the emulator's speed header, else 1. */
  timeScale?: 'auto' | number;
  /** Wall-clock budget of this invocation (seconds). */
  maxDurationS: number;
  seed?: number;
  search?: Partial<Omit<SearchConfig, 'sloTpotMillis'>>;
  sizing?: Partial<ProbeSizing>;
  /** Checkpoint file; without it the run is not resumable. */
  statePath?: string;
  allowRemote?: boolean;
  meta?: ProfileMeta;
}

export class ProfileOptionsError extends Error {}

export function searchConfig(o: Pick<ProfileOptions, 'search' | 'sloTpotMillis'>): SearchConfig {
  return { ...DEFAULT_SEARCH, ...o.search, sloTpotMillis: o.sloTpotMillis };
}

export function sizingConfig(o: Pick<ProfileOptions, 'sizing'>): ProbeSizing {
  return { ...DEFAULT_SIZING, ...o.sizing };
}

type Rule = 'int>=0' | 'int>=1' | '>0' | '>1' | '>=1' | '0|>=1' | '0..1';
const RULES: Record<Rule, [string, (v: number) => boolean]> = {
  'int>=0': ['an integer >= 0', (v) => Number.isInteger(v) && v >= 0],
  'int>=1': ['an integer >= 1', (v) => Number.isInteger(v) && v >= 1],
  '>0': ['> 0', (v) => v > 0],
  '>1': ['> 1', (v) => v > 1],
  '>=1': ['>= 1', (v) => v >= 1],
  '0|>=1': ['0 (off) or >= 1', (v) => v === 0 || v >= 1],
  '0..1': ['between 0 and 1', (v) => v >= 0 && v <= 1],
};
const SEARCH_RULES: Record<Exclude<keyof SearchConfig, 'sloTpotMillis' | 'split'>, Rule> = {
  rampFactor: '>1', idleRampFactor: '>=1', idleShare: '0..1', tolerance: '>0', maxProbes: 'int>=1', maxDescents: 'int>=0',
  startConcurrency: '>0', aloneRequests: 'int>=1', confirmNearMiss: '0|>=1',
};
const SIZING_RULES: Record<keyof ProbeSizing, Rule> = {
  lifetimes: '>0', minRequests: 'int>=1', rampMinRequests: 'int>=1', maxRequests: 'int>=1', maxProbeSeconds: '>0', drainLifetimes: '>0',
};

function check(field: string, v: unknown, rule: Rule): string | undefined {
  const [what, ok] = RULES[rule];
  return typeof v === 'number' && Number.isFinite(v) && ok(v) ? undefined : `${field}: must be ${what}, not ${JSON.stringify(v)}`;
}

/** Every problem with the options, one `field: problem` line each (model: the one the endpoint will be asked for). */
export function optionErrors(o: ProfileOptions, model = o.model ?? 'model'): string[] {
  const errors: string[] = [];
  let url: URL | undefined;
  try {
    url = new URL(o.url);
  } catch {
    errors.push(`url: not a URL: ${JSON.stringify(o.url)}`);
  }
  if (url && url.protocol !== 'http:' && url.protocol !== 'https:') errors.push(`url: must be http(s), not ${url.protocol}`);
  if (url && !o.allowRemote && !isLoopbackHost(url.hostname)) errors.push(`url: ${url.hostname} is not a loopback address (pass allowRemote / --allow-remote)`);
  const s = searchConfig(o);
  const z = sizingConfig(o);
  for (const [k, rule] of Object.entries(SEARCH_RULES)) errors.push(check(`search.${k}`, s[k as keyof typeof SEARCH_RULES], rule) ?? '');
  if (s.split !== 'interpolate' && s.split !== 'midpoint') errors.push(`search.split: must be interpolate or midpoint, not ${JSON.stringify(s.split)}`);
  for (const [k, rule] of Object.entries(SIZING_RULES)) errors.push(check(`sizing.${k}`, z[k as keyof ProbeSizing], rule) ?? '');
  errors.push(check('maxDurationS', o.maxDurationS, '>0') ?? '');
  if (o.seed !== undefined) errors.push(check('seed', o.seed, 'int>=0') ?? '');
  if (o.timeScale !== undefined && o.timeScale !== 'auto') errors.push(check('timeScale', o.timeScale, '>0') ?? '');
  if (o.timing !== undefined && !['auto', 'server', 'client'].includes(o.timing)) errors.push(`timing: must be auto, server or client, not ${JSON.stringify(o.timing)}`);
  if (o.api !== undefined && o.api !== 'chat' && o.api !== 'completions') errors.push(`api: must be chat or completions, not ${JSON.stringify(o.api)}`);

  // What the profile will carry: the schema is the judge (buckets, SLO, gpuType, model, name, namespace).
  const buckets = o.buckets ?? { inputEdges: [], outputEdges: [] };
  const rows = Array.isArray(buckets.inputEdges) ? buckets.inputEdges.length : 0;
  const cols = Array.isArray(buckets.outputEdges) ? buckets.outputEdges.length : 0;
  const draft = {
    apiVersion: API_VERSION,
    kind: GPUPROFILE_KIND,
    metadata: { name: o.meta?.name ?? profileName(model, String(o.gpuType ?? '')), ...(o.meta?.namespace !== undefined ? { namespace: o.meta.namespace } : {}) },
    spec: { model, gpuType: o.gpuType, slo: { tpotMillis: o.sloTpotMillis }, buckets, maxThroughput: Array.from({ length: rows }, () => Array<number>(cols).fill(0)) },
  };
  const v = parseGPUProfile(draft);
  if (!v.ok) errors.push(...formatFieldErrors(v.errors));
  // Each load probe is one measurement; a grid that could outgrow the resource fails now, not after hours.
  if (Number.isInteger(s.maxProbes) && rows * cols * s.maxProbes > MAX_MEASUREMENTS) {
    errors.push(`buckets: ${rows * cols} buckets x up to ${s.maxProbes} probes (search.maxProbes) could exceed the ${MAX_MEASUREMENTS} measurements a GPUProfile holds; use fewer buckets or a lower search.maxProbes`);
  }
  return errors.filter((e) => e !== '');
}

/** Throws ProfileOptionsError listing every problem. */
export function validateOptions(o: ProfileOptions, model?: string): void {
  const errors = optionErrors(o, model);
  if (errors.length > 0) throw new ProfileOptionsError(errors.join('\n'));
}
