/**
 * `melangectl profile`'s argument parsing: durations, numeric flags, and --buckets (edges inline, "paper", or a
 * manifest file). Every problem is a UsageError naming the flag.
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { PAPER_BUCKETS, validateManifest, formatFieldErrors } from '../api/index.js';
import type { BucketGrid } from '../profiler/index.js';
import { UsageError } from './io.js';

/** '90s', '10m', '2h', '1h30m' or plain seconds -> seconds. */
export function parseDuration(raw: string): number {
  const s = raw.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(h|m|s)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
    matched = re.lastIndex;
  }
  if (matched !== s.length || s.length === 0) throw new UsageError(`--max-duration: not a duration (90s, 10m, 2h): "${raw}"`);
  return total;
}

/** A numeric flag's value (undefined when absent); a UsageError naming the flag when out of range. */
export function numericFlag(name: string, raw: string | undefined, opts: { int?: boolean; min?: number; exclusiveMin?: number } = {}): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const bad =
    raw.trim() === '' || !Number.isFinite(v) || (opts.int === true && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min) || (opts.exclusiveMin !== undefined && v <= opts.exclusiveMin);
  if (bad) {
    const range = opts.min !== undefined ? `>= ${opts.min}` : opts.exclusiveMin !== undefined ? `> ${opts.exclusiveMin}` : 'finite';
    throw new UsageError(`--${name}: must be ${opts.int ? 'an integer' : 'a number'} ${range}, not "${raw}"`);
  }
  return v;
}

function edgesOf(text: string, what: string): number[] {
  const edges = text.split(',').map((e) => e.trim()).filter((e) => e !== '').map(Number);
  if (edges.length === 0 || edges.some((e) => !Number.isInteger(e) || e < 1) || edges.some((e, i) => i > 0 && e <= edges[i - 1]!)) {
    throw new UsageError(`--buckets: ${what} edges must be strictly increasing integers >= 1, not "${text}"`);
  }
  return edges;
}

export interface BucketSource {
  buckets: BucketGrid;
  slo?: number;
  model?: string;
}

/** --buckets: 'paper', 'IN,.../OUT,...', or a manifest file (LLMService or GPUProfile). */
export async function resolveBuckets(spec: string): Promise<BucketSource> {
  if (spec === 'paper') return { buckets: { inputEdges: [...PAPER_BUCKETS.inputEdges], outputEdges: [...PAPER_BUCKETS.outputEdges] } };
  if (/^[\d,\s]+\/[\d,\s]+$/.test(spec)) {
    const [i, o] = spec.split('/') as [string, string];
    return { buckets: { inputEdges: edgesOf(i, 'input'), outputEdges: edgesOf(o, 'output') } };
  }
  let text: string;
  try {
    text = await readFile(spec, 'utf8');
  } catch (err) {
    throw new UsageError(`--buckets: not "paper", not "IN,.../OUT,...", and cannot read file "${spec}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  for (const doc of parseAllDocuments(text)) {
    if ('errors' in doc && doc.errors.length > 0) throw new UsageError(`--buckets: ${spec}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    const obj: unknown = doc.toJS();
    if (!obj || typeof obj !== 'object') continue;
    const kind = (obj as { kind?: unknown }).kind;
    if (kind !== 'LLMService' && kind !== 'GPUProfile') continue;
    const v = validateManifest(obj);
    if (!v.ok) throw new UsageError(`--buckets: ${formatFieldErrors(v.errors, spec).join('; ')}`);
    const r = v.value;
    if (r.kind === 'LLMService') return { buckets: r.spec.buckets, slo: r.spec.slo.tpotMillis, model: r.spec.model };
    if (r.kind === 'GPUProfile') return { buckets: r.spec.buckets };
  }
  throw new UsageError(`--buckets: ${spec} holds no LLMService or GPUProfile`);
}
