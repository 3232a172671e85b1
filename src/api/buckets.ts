import { z } from 'zod';
import { isRecord, withRules, type CrossRule } from './rules.js';

/** Bucket lists are small by design; the bound also keeps the CEL cost estimates of the rules below tiny. */
export const MAX_EDGES = 32;
export const MAX_TOKENS = 10_000_000;

const STRICTLY_INCREASING: CrossRule<number[]> = {
  // isSorted/indexOf/lastIndexOf come from the Kubernetes CEL list library (available since 1.24).
  // Sorted + no duplicates == strictly increasing; CEL has no index-aware `all`.
  rule: 'self.isSorted() && self.all(e, self.indexOf(e) == self.lastIndexOf(e))',
  message: 'must be strictly increasing',
  holds: (edges) => edges.every((e, i) => i === 0 || (edges[i - 1] ?? Infinity) < e),
};

const edges = (what: string) =>
  withRules(
    z
      .array(z.int().min(1).max(MAX_TOKENS))
      .min(1)
      .max(MAX_EDGES)
      .describe(
        `Upper edges of the ${what}-length ranges in tokens, strictly increasing. The lower edge of a range is ` +
          'the previous upper edge (0 for the first); longer requests count in the last range.',
      ),
    [STRICTLY_INCREASING],
  );

export const BucketsSchema = z
  .object({
    inputEdges: edges('input'),
    outputEdges: edges('output'),
  })
  .describe('How requests are binned by size: one bucket per (input range, output range) pair.');
export type Buckets = z.output<typeof BucketsSchema>;

/** A [input bucket][output bucket] matrix of non-negative numbers. */
export const bucketMatrix = (description: string) =>
  z
    .array(z.array(z.number().min(0)).max(MAX_EDGES))
    .min(1)
    .max(MAX_EDGES)
    .describe(description);

/**
 * Shape rules for a matrix at `matrixPath` (relative to the object holding `buckets`): one row per input
 * range, one column per output range. They live on the common parent because CEL rules only see `self`.
 */
export function matrixShapeRules<T>(
  matrixPath: string,
  get: (self: T) => unknown,
  buckets: (self: T) => unknown,
  guard?: string,
): CrossRule<T>[] {
  const cel = `self${matrixPath}`;
  const pre = guard ? `!${guard} || ` : '';
  const name = matrixPath.slice(matrixPath.lastIndexOf('.') + 1);
  const sizes = (self: T) => {
    const b = buckets(self);
    const m = get(self);
    if (!isRecord(b) || !Array.isArray(b.inputEdges) || !Array.isArray(b.outputEdges) || !Array.isArray(m)) return undefined;
    return { rows: b.inputEdges.length, cols: b.outputEdges.length, m: m as unknown[] };
  };
  return [
    {
      rule: `${pre}${cel}.size() == self.buckets.inputEdges.size()`,
      message: `${name} must have one row per input range (as many rows as buckets.inputEdges has entries)`,
      fieldPath: matrixPath,
      holds: (self) => {
        const s = sizes(self);
        return !s || s.m.length === s.rows;
      },
    },
    {
      rule: `${pre}${cel}.all(row, row.size() == self.buckets.outputEdges.size())`,
      message: `every row of ${name} must have one entry per output range (as many as buckets.outputEdges has)`,
      fieldPath: matrixPath,
      holds: (self) => {
        const s = sizes(self);
        return !s || s.m.every((row) => !Array.isArray(row) || row.length === s.cols);
      },
    },
  ];
}
