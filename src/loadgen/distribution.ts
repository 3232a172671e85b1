/**
 * Request-size distributions for the load generator, from a YAML or JSON file in one of three forms:
 *
 *   buckets:                         # the LLMService's shape: upper edges + a weight matrix [input][output]
 *     inputEdges: [25, 100, ...]
 *     outputEdges: [25, 100, ...]
 *     weights: [[...], ...]
 *     sample: uniform                # uniform within each bucket (default), or `upper` (the upper edges,
 *                                    # as the paper's profiler does)
 *   points:                          # explicit sizes
 *     - {input: 100, output: 200, weight: 3}
 *   mix:                             # a mixture of other distributions (files relative to this one)
 *     - {weight: 0.8, file: short-chat.yaml}
 *     - {weight: 0.2, file: long-docs.yaml}
 *
 * plus optional `name` and `description`. Weights are relative (normalised here).
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

const Weight = z.number().min(0).finite();
const Tokens = z.int().min(1).max(10_000_000);
const Edges = z
  .array(Tokens)
  .min(1)
  .refine((e) => e.every((v, i) => i === 0 || e[i - 1]! < v), 'edges must be strictly increasing');

const BucketsSchema = z
  .object({
    inputEdges: Edges,
    outputEdges: Edges,
    weights: z.array(z.array(Weight)),
    sample: z.enum(['uniform', 'upper']).default('uniform'),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.weights.length !== b.inputEdges.length) ctx.addIssue({ code: 'custom', path: ['weights'], message: `needs one row per input edge (${b.inputEdges.length}), has ${b.weights.length}` });
    b.weights.forEach((row, i) => {
      if (row.length !== b.outputEdges.length) ctx.addIssue({ code: 'custom', path: ['weights', i], message: `needs one entry per output edge (${b.outputEdges.length}), has ${row.length}` });
    });
  });

const PointSchema = z.object({ input: Tokens, output: Tokens, weight: Weight.default(1) }).strict();
const MixEntrySchema = z.object({ weight: Weight, file: z.string().min(1) }).strict();

export const DistributionFileSchema = z
  .object({
    name: z.string().optional(),
    description: z.string().optional(),
    buckets: BucketsSchema.optional(),
    points: z.array(PointSchema).min(1).optional(),
    mix: z.array(MixEntrySchema).min(1).optional(),
  })
  .strict()
  .refine((d) => [d.buckets, d.points, d.mix].filter((x) => x !== undefined).length === 1, 'give exactly one of buckets, points or mix');
export type DistributionFile = z.input<typeof DistributionFileSchema>;

/** A box of sizes (inclusive ranges) with a probability; a point is a box of one size. */
export interface SizeRange {
  probability: number;
  inputMin: number;
  inputMax: number;
  outputMin: number;
  outputMax: number;
}

export interface SizeDistribution {
  name: string;
  ranges: SizeRange[];
}

export interface RequestSize {
  input: number;
  output: number;
}

export class DistributionError extends Error {}

function normalise(ranges: Array<Omit<SizeRange, 'probability'> & { weight: number }>, name: string): SizeDistribution {
  const total = ranges.reduce((s, r) => s + r.weight, 0);
  if (!(total > 0)) throw new DistributionError(`${name}: no positive weight`);
  return {
    name,
    ranges: ranges
      .filter((r) => r.weight > 0)
      .map(({ weight, ...r }) => ({ ...r, probability: weight / total })),
  };
}

/** Builds a distribution from the already-parsed object; `mix` entries are resolved with `load`. */
export async function distributionFrom(
  raw: unknown,
  name: string,
  load: (file: string) => Promise<SizeDistribution> = () => Promise.reject(new DistributionError('mix needs files')),
): Promise<SizeDistribution> {
  const r = DistributionFileSchema.safeParse(raw);
  if (!r.success) {
    throw new DistributionError(`${name}: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  }
  const d = r.data;
  const label = d.name ?? name;
  if (d.points) return normalise(d.points.map((p) => ({ inputMin: p.input, inputMax: p.input, outputMin: p.output, outputMax: p.output, weight: p.weight })), label);
  if (d.buckets) {
    const b = d.buckets;
    const out: Array<Omit<SizeRange, 'probability'> & { weight: number }> = [];
    b.inputEdges.forEach((inUp, i) => {
      const inLo = i === 0 ? 1 : b.inputEdges[i - 1]! + 1;
      b.outputEdges.forEach((outUp, j) => {
        const outLo = j === 0 ? 1 : b.outputEdges[j - 1]! + 1;
        const weight = b.weights[i]?.[j] ?? 0;
        if (b.sample === 'upper') out.push({ inputMin: inUp, inputMax: inUp, outputMin: outUp, outputMax: outUp, weight });
        else out.push({ inputMin: inLo, inputMax: inUp, outputMin: outLo, outputMax: outUp, weight });
      });
    });
    return normalise(out, label);
  }
  const parts: Array<Omit<SizeRange, 'probability'> & { weight: number }> = [];
  const mixTotal = d.mix!.reduce((s, m) => s + m.weight, 0);
  if (!(mixTotal > 0)) throw new DistributionError(`${label}: mix has no positive weight`);
  for (const m of d.mix!) {
    if (m.weight === 0) continue;
    const sub = await load(m.file);
    for (const r of sub.ranges) parts.push({ ...r, weight: (m.weight / mixTotal) * r.probability });
  }
  return normalise(parts, label);
}

/** Reads a distribution file (YAML or JSON; `mix` files resolve relative to it, at most 4 levels deep). */
export async function loadDistribution(file: string, depth = 0): Promise<SizeDistribution> {
  if (depth > 4) throw new DistributionError(`${file}: mix nested more than 4 levels`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DistributionError(`${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new DistributionError(`${file}: not YAML/JSON: ${(err as Error).message}`);
  }
  return distributionFrom(raw, file, (f) => loadDistribution(resolve(dirname(file), f), depth + 1));
}

/** A sampler: picks a range by probability (binary search on the CDF), then a size uniformly inside it. */
export function sizeSampler(dist: SizeDistribution, random: () => number): () => RequestSize {
  const cdf: number[] = [];
  let acc = 0;
  for (const r of dist.ranges) cdf.push((acc += r.probability));
  const uniformInt = (lo: number, hi: number) => lo + Math.min(hi - lo, Math.floor(random() * (hi - lo + 1)));
  return () => {
    const u = random() * acc;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    const r = dist.ranges[lo]!;
    return { input: uniformInt(r.inputMin, r.inputMax), output: uniformInt(r.outputMin, r.outputMax) };
  };
}

/** Mean input and output length of a distribution (exact, from the ranges). */
export function meanSize(dist: SizeDistribution): RequestSize {
  let input = 0;
  let output = 0;
  for (const r of dist.ranges) {
    input += r.probability * (r.inputMin + r.inputMax) / 2;
    output += r.probability * (r.outputMin + r.outputMax) / 2;
  }
  return { input, output };
}
