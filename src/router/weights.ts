/**
 * Per-bucket pool weights (the solved split), the fallback for buckets the split does not cover, and the
 * weighted pool pick (pure, apart from the pickers' own state).
 */
import type { SplitEntry } from './config.js';

/** Pool → share of a bucket's traffic. Only positive shares; they sum to 1 (or the map is empty). */
export type PoolWeights = ReadonlyMap<string, number>;

export type WeightSource = 'split' | 'nearest' | 'capacity';

export interface ResolvedWeights {
  weights: PoolWeights;
  source: WeightSource;
}

/** Keeps positive finite weights and scales them to sum to 1 (sorted by pool name for determinism). */
export function normaliseWeights(w: Readonly<Record<string, number>> | ReadonlyMap<string, number>): Map<string, number> {
  const entries = (w instanceof Map ? [...w.entries()] : Object.entries(w)).filter(([, v]) => Number.isFinite(v) && v > 0);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const total = entries.reduce((a, [, v]) => a + v, 0);
  return new Map(total > 0 ? entries.map(([k, v]) => [k, v / total]) : []);
}

/**
 * The weights of every bucket of an nIn × nOut grid, from the split entries:
 *  - a bucket with an entry that has a positive weight uses it ('split');
 *  - any other bucket uses the nearest buckets that have one — distance |Δinput index| + |Δoutput index| —
 *    averaging the normalised weights when several are equally near ('nearest');
 *  - if no entry has a positive weight at all, the cell is undefined: the caller uses the capacity share
 *    (ready backends per pool) at request time ('capacity').
 */
export function resolveSplitTable(split: readonly SplitEntry[], nIn: number, nOut: number): (ResolvedWeights | undefined)[][] {
  const known: { i: number; o: number; w: Map<string, number> }[] = [];
  for (const s of split) {
    const w = normaliseWeights(s.weights);
    if (w.size > 0 && s.input < nIn && s.output < nOut) known.push({ i: s.input, o: s.output, w });
  }
  const table: (ResolvedWeights | undefined)[][] = [];
  for (let i = 0; i < nIn; i++) {
    const row: (ResolvedWeights | undefined)[] = [];
    for (let o = 0; o < nOut; o++) row.push(resolveCell(known, i, o));
    table.push(row);
  }
  return table;
}

function resolveCell(known: readonly { i: number; o: number; w: Map<string, number> }[], i: number, o: number): ResolvedWeights | undefined {
  if (known.length === 0) return undefined;
  let best = Infinity;
  let nearest: Map<string, number>[] = [];
  for (const k of known) {
    const d = Math.abs(k.i - i) + Math.abs(k.o - o);
    if (d < best) {
      best = d;
      nearest = [k.w];
    } else if (d === best) nearest.push(k.w);
  }
  if (best === 0) return { weights: nearest[0] ?? new Map(), source: 'split' };
  const sum = new Map<string, number>();
  for (const w of nearest) for (const [p, v] of w) sum.set(p, (sum.get(p) ?? 0) + v);
  return { weights: normaliseWeights(sum), source: 'nearest' };
}

/** Capacity share: weights proportional to the number of ready backends per pool. */
export function capacityWeights(readyCount: ReadonlyMap<string, number>): ResolvedWeights {
  return { weights: normaliseWeights(readyCount), source: 'capacity' };
}

/** Picks a pool among `eligible` ones by weight; undefined when no eligible pool has weight. */
export interface PoolPicker {
  pick(bucketKey: string, weights: PoolWeights, eligible: (pool: string) => boolean): string | undefined;
  /** Forgets the state of these buckets (all when omitted), e.g. after their weights changed. */
  reset(bucketKeys?: Iterable<string>): void;
}

/**
 * Smooth weighted round-robin (nginx's algorithm), one state per bucket: each pick adds every eligible
 * pool's weight to its running score, takes the highest score and subtracts the eligible total from it.
 * Over any window of picks each pool's count stays within one pick of weight × picks; it spreads picks
 * evenly (3:1 gives a a b a, not a a a b). Deterministic: no RNG.
 */
export function smoothPick(state: Map<string, number>, weights: PoolWeights, eligible: (pool: string) => boolean): string | undefined {
  let total = 0;
  let best: string | undefined;
  let bestScore = -Infinity;
  for (const [pool, w] of weights) {
    if (!(w > 0) || !eligible(pool)) continue;
    const score = (state.get(pool) ?? 0) + w;
    state.set(pool, score);
    total += w;
    if (score > bestScore) {
      bestScore = score;
      best = pool;
    }
  }
  if (best !== undefined) state.set(best, bestScore - total);
  return best;
}

/** Weighted random pick with a uniform draw `u` in [0, 1). */
export function randomPick(weights: PoolWeights, eligible: (pool: string) => boolean, u: number): string | undefined {
  let total = 0;
  for (const [pool, w] of weights) if (w > 0 && eligible(pool)) total += w;
  if (total <= 0) return undefined;
  let x = u * total;
  let last: string | undefined;
  for (const [pool, w] of weights) {
    if (!(w > 0) || !eligible(pool)) continue;
    last = pool;
    if (x < w) return pool;
    x -= w;
  }
  return last; // rounding at the top end
}

export class SmoothPicker implements PoolPicker {
  private readonly state = new Map<string, Map<string, number>>();
  pick(bucketKey: string, weights: PoolWeights, eligible: (pool: string) => boolean): string | undefined {
    let s = this.state.get(bucketKey);
    if (!s) {
      s = new Map();
      this.state.set(bucketKey, s);
    }
    return smoothPick(s, weights, eligible);
  }
  reset(bucketKeys?: Iterable<string>): void {
    if (bucketKeys === undefined) this.state.clear();
    else for (const k of bucketKeys) this.state.delete(k);
  }
}

export class RandomPicker implements PoolPicker {
  constructor(private readonly rng: () => number) {}
  pick(_bucketKey: string, weights: PoolWeights, eligible: (pool: string) => boolean): string | undefined {
    return randomPick(weights, eligible, this.rng());
  }
  reset(): void {}
}

export const bucketKey = (input: number, output: number) => `${input}/${output}`;
