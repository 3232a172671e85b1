/**
 * Bucket lookup over upper edges (pure).
 *
 * Range i of `edges` covers (edges[i-1], edges[i]] tokens; the first range starts at 0 (inclusive). A value
 * equal to an upper edge belongs to that range; a value beyond the last edge counts in the last range (the
 * same convention as the LLMService's `buckets` and the solver's profiles).
 */
export function bucketIndex(edges: readonly number[], tokens: number): number {
  if (edges.length === 0) throw new Error('bucketIndex: edges must not be empty');
  const v = Number.isFinite(tokens) ? tokens : tokens > 0 ? Infinity : 0;
  let lo = 0;
  let hi = edges.length - 1;
  if (v > (edges[hi] ?? Infinity)) return hi;
  // First i with v <= edges[i].
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (v <= (edges[mid] ?? Infinity)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The metric label of range `index`: its upper edge as a decimal string ("25", "100", …). */
export function bucketLabel(edges: readonly number[], index: number): string {
  const e = edges[index];
  if (e === undefined) throw new Error(`bucketLabel: no range ${index} (have ${edges.length})`);
  return String(e);
}

/** Index and label of the range `tokens` falls in. */
export function bucketOf(edges: readonly number[], tokens: number): { index: number; le: string } {
  const index = bucketIndex(edges, tokens);
  return { index, le: bucketLabel(edges, index) };
}
