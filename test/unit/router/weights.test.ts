import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../src/common/random.js';
import {
  capacityWeights,
  normaliseWeights,
  RandomPicker,
  randomPick,
  resolveSplitTable,
  SmoothPicker,
  smoothPick,
} from '../../../src/router/weights.js';

const all = () => true;

function counts(picks: (string | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) if (p !== undefined) out[p] = (out[p] ?? 0) + 1;
  return out;
}

describe('normaliseWeights', () => {
  it('drops zero, negative and non-finite weights and scales to 1', () => {
    expect([...normaliseWeights({ b: 3, a: 1, c: 0, d: -1, e: NaN })]).toEqual([['a', 0.25], ['b', 0.75]]);
    expect(normaliseWeights({ a: 0 }).size).toBe(0);
  });
});

describe('smooth weighted round-robin', () => {
  it('is exact over each period and interleaves (3:1 → a a b a pattern, never a a a b)', () => {
    const state = new Map<string, number>();
    const w = normaliseWeights({ a: 3, b: 1 });
    const picks = Array.from({ length: 8 }, () => smoothPick(state, w, all));
    expect(counts(picks)).toEqual({ a: 6, b: 2 });
    // b never waits more than the period
    expect(picks.slice(0, 4)).toContain('b');
    expect(picks.slice(4, 8)).toContain('b');
  });
  it('every prefix stays within one pick of weight × n (fractional solver weights)', () => {
    const state = new Map<string, number>();
    const w = normaliseWeights({ l4: 0.62, a10g: 0.27, a100: 0.11 });
    const seen: Record<string, number> = {};
    for (let n = 1; n <= 1000; n++) {
      const p = smoothPick(state, w, all)!;
      seen[p] = (seen[p] ?? 0) + 1;
      for (const [pool, share] of w) expect(Math.abs((seen[pool] ?? 0) - share * n)).toBeLessThanOrEqual(1.0001);
    }
  });
  it('skips ineligible pools and renormalises among the rest', () => {
    const state = new Map<string, number>();
    const w = normaliseWeights({ a: 1, b: 1, c: 2 });
    const picks = Array.from({ length: 300 }, () => smoothPick(state, w, (p) => p !== 'c'));
    expect(counts(picks)).toEqual({ a: 150, b: 150 });
    expect(smoothPick(new Map(), w, () => false)).toBeUndefined();
  });
  it('SmoothPicker keeps one state per bucket and reset forgets it', () => {
    const p = new SmoothPicker();
    const w = normaliseWeights({ a: 1, b: 1 });
    expect(p.pick('0/0', w, all)).toBe('a');
    expect(p.pick('0/1', w, all)).toBe('a');
    expect(p.pick('0/0', w, all)).toBe('b');
    p.reset(['0/0']);
    expect(p.pick('0/0', w, all)).toBe('a');
    expect(p.pick('0/1', w, all)).toBe('b');
  });
});

describe('weighted random pick', () => {
  it('maps the uniform draw onto cumulative weights', () => {
    const w = normaliseWeights({ a: 1, b: 3 });
    expect(randomPick(w, all, 0)).toBe('a');
    expect(randomPick(w, all, 0.2499)).toBe('a');
    expect(randomPick(w, all, 0.25)).toBe('b');
    expect(randomPick(w, all, 0.999999)).toBe('b');
    expect(randomPick(w, (p) => p === 'a', 0.9)).toBe('a');
    expect(randomPick(w, () => false, 0.5)).toBeUndefined();
  });
  it('converges to the weights with a seeded RNG (within 4 standard deviations)', () => {
    const picker = new RandomPicker(mulberry32(42));
    const w = normaliseWeights({ l4: 0.5, a10g: 0.3, a100: 0.2 });
    const n = 20_000;
    const c = counts(Array.from({ length: n }, () => picker.pick('k', w, all)));
    for (const [pool, share] of w) {
      const sd = Math.sqrt(n * share * (1 - share));
      expect(Math.abs((c[pool] ?? 0) - n * share)).toBeLessThan(4 * sd);
    }
  });
  it('the same seed gives the same sequence', () => {
    const w = normaliseWeights({ a: 1, b: 1 });
    const run = () => { const p = new RandomPicker(mulberry32(7)); return Array.from({ length: 50 }, () => p.pick('k', w, all)); };
    expect(run()).toEqual(run());
  });
});

describe('split table and fallback for buckets the split does not cover', () => {
  it('uses the entry of the bucket itself', () => {
    const t = resolveSplitTable([{ input: 0, output: 0, weights: { a: 1, b: 3 } }], 2, 2);
    expect(t[0]![0]!.source).toBe('split');
    expect([...t[0]![0]!.weights]).toEqual([['a', 0.25], ['b', 0.75]]);
  });
  it('an unseen bucket takes the nearest bucket (|Δinput| + |Δoutput| in range indices)', () => {
    const t = resolveSplitTable(
      [
        { input: 0, output: 0, weights: { small: 1 } },
        { input: 3, output: 2, weights: { big: 1 } },
      ],
      4,
      3,
    );
    expect(t[1]![0]!).toEqual({ source: 'nearest', weights: new Map([['small', 1]]) });
    expect(t[3]![1]!).toEqual({ source: 'nearest', weights: new Map([['big', 1]]) });
    expect(t[2]![2]!.weights).toEqual(new Map([['big', 1]]));
  });
  it('equally near buckets are averaged', () => {
    const t = resolveSplitTable(
      [
        { input: 0, output: 0, weights: { a: 1 } },
        { input: 2, output: 0, weights: { a: 1, b: 1 } },
      ],
      3,
      1,
    );
    const mid = t[1]![0]!;
    expect(mid.source).toBe('nearest');
    expect(mid.weights.get('a')).toBeCloseTo(0.75);
    expect(mid.weights.get('b')).toBeCloseTo(0.25);
  });
  it('entries without a positive weight are ignored (treated as absent)', () => {
    const t = resolveSplitTable(
      [
        { input: 0, output: 0, weights: { a: 0 } },
        { input: 1, output: 0, weights: { b: 2 } },
      ],
      2,
      1,
    );
    expect(t[0]![0]).toEqual({ source: 'nearest', weights: new Map([['b', 1]]) });
  });
  it('no split at all: cells are undefined and the capacity share applies', () => {
    const t = resolveSplitTable([], 2, 2);
    expect(t.flat().every((c) => c === undefined)).toBe(true);
    const cap = capacityWeights(new Map([['a', 3], ['b', 1], ['c', 0]]));
    expect(cap.source).toBe('capacity');
    expect([...cap.weights]).toEqual([['a', 0.75], ['b', 0.25]]);
  });
});
