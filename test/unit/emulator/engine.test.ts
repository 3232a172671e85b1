import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contextError, Engine, type RequestSpec } from '../../../src/emulator/engine.js';
import type { EnginePerf } from '../../../src/emulator/gpu-models.js';
import { mulberry32, exponential } from '../../../src/common/random.js';
import { paperTpot, simulate } from '../../../src/emulator/simulate.js';

/** A toy GPU with round numbers, so step durations can be checked by hand. */
const toy: EnginePerf = {
  gpuType: 'toy',
  baseStepS: 0.01,
  perContextTokenS: 0.0001,
  prefillPerTokenS: 0.001,
  requestOverheadS: 0.002,
  kvCapacityTokens: 100,
  maxModelLen: 100,
};

const req = (id: string, inputTokens: number, outputTokens: number, arrival = 0): RequestSpec => ({ id, inputTokens, outputTokens, arrival });

describe('Engine: continuous batching', () => {
  it('admits waiting requests up to the KV budget; the rest wait (FIFO)', () => {
    const e = new Engine(toy);
    for (const id of ['a', 'b', 'c', 'd']) e.add(req(id, 30, 5));
    const step = e.schedule(0)!;
    // 30 + 30 + 30 = 90 tokens fit in 100; the fourth prompt (30 more) does not.
    expect(e.stats()).toMatchObject({ running: 3, waiting: 1, kvUsedTokens: 90 });
    expect(step.prefillTokens).toBe(90);
    expect(step.decodeRequests).toBe(0);
    // base + 90 prompt tokens + 3 first-time request overheads
    expect(step.duration).toBeCloseTo(0.01 + 90 * 0.001 + 3 * 0.002, 12);
    const out = e.complete(step);
    expect(out.tokens.map((t) => [t.id, t.index, t.first])).toEqual([
      ['a', 0, true],
      ['b', 0, true],
      ['c', 0, true],
    ]);
  });

  it('shares each decode step among all running requests, costing base + KV reads', () => {
    const e = new Engine(toy);
    e.add(req('a', 10, 3));
    e.add(req('b', 20, 3));
    e.complete(e.schedule(0)!); // prefill both → first tokens
    const step = e.schedule(1)!;
    expect(step.decodeRequests).toBe(2);
    expect(step.prefillTokens).toBe(0);
    // contexts read: a has 10 prompt + 1 generated, b 20 + 1
    expect(step.duration).toBeCloseTo(0.01 + 0.0001 * (11 + 21), 12);
    const out = e.complete(step);
    expect(out.tokens.map((t) => t.id)).toEqual(['a', 'b']);
    expect(out.tokens.every((t) => t.index === 1 && !t.first)).toBe(true);
  });

  it('a queued request waits until KV frees, then is admitted; every request gets exactly its tokens', () => {
    const r = simulate(toy, [req('a', 40, 10), req('b', 40, 10), req('c', 40, 10)]);
    const by = new Map(r.finished.map((f) => [f.id, f]));
    expect(r.finished).toHaveLength(3);
    // a and b fit (80 + growth ≤ 100); c needs 40 more: it waits for a or b to finish.
    const c = by.get('c')!;
    expect(c.firstScheduled).toBeGreaterThan(0);
    expect(c.firstScheduled).toBeGreaterThanOrEqual(Math.min(by.get('a')!.finish, by.get('b')!.finish));
    expect(r.maxWaiting).toBeGreaterThanOrEqual(1);
    expect(r.preemptions).toBe(0);
  });

  it('respects max_num_seqs', () => {
    const e = new Engine({ ...toy, kvCapacityTokens: 10_000, maxModelLen: 1000 }, { maxNumSeqs: 2 });
    for (const id of ['a', 'b', 'c']) e.add(req(id, 5, 5));
    e.schedule(0);
    expect(e.stats()).toMatchObject({ running: 2, waiting: 1 });
  });

  it('chunks a long prompt over iterations by the token budget; its first token comes after the last chunk', () => {
    const e = new Engine({ ...toy, kvCapacityTokens: 1000, maxModelLen: 1000 }, { maxBatchedTokens: 64 });
    e.add(req('long', 150, 2));
    const sizes: number[] = [];
    let firstAt = -1;
    for (let i = 0; i < 5; i++) {
      const s = e.schedule(i)!;
      sizes.push(s.prefillTokens);
      const out = e.complete(s);
      if (out.tokens.some((t) => t.first)) { firstAt = i; break; }
    }
    expect(sizes).toEqual([64, 64, 22]);
    expect(firstAt).toBe(2);
  });

  it('preempts the most recently admitted request when decoding outgrows the KV cache, and still finishes all', () => {
    // Two prompts of 45 fit (90 ≤ 100) but both generating 20 tokens need 130: one must be preempted.
    const r = simulate(toy, [req('a', 45, 20), req('b', 45, 20, 0.0001)]);
    expect(r.preemptions).toBeGreaterThan(0);
    expect(r.finished.map((f) => f.id).sort()).toEqual(['a', 'b']);
    const b = r.finished.find((f) => f.id === 'b')!;
    expect(b.preemptions).toBeGreaterThan(0);
    expect(r.finished.find((f) => f.id === 'a')!.preemptions).toBe(0);
  });

  it('abort frees the KV cache', () => {
    const e = new Engine(toy);
    e.add(req('a', 50, 5));
    e.complete(e.schedule(0)!);
    expect(e.stats().kvUsedTokens).toBe(50);
    expect(e.abort('a')).toBe(true);
    expect(e.stats()).toMatchObject({ kvUsedTokens: 0, running: 0 });
    expect(e.abort('a')).toBe(false);
    expect(e.idle).toBe(true);
  });

  it('does not schedule a request before its arrival', () => {
    const e = new Engine(toy);
    e.add(req('late', 5, 1, 2));
    expect(e.schedule(1)).toBeUndefined();
    expect(e.nextArrival()).toBe(2);
    expect(e.schedule(2)).toBeDefined();
  });

  it('rejects a request longer than the context (vLLM wording) and never queues it', () => {
    expect(contextError(toy, 60, 40)).toBeUndefined();
    const msg = contextError(toy, 61, 40);
    expect(msg).toContain("maximum context length is 100 tokens");
    expect(msg).toContain('you requested 101 tokens (61 in the messages, 40 in the completion)');
    const e = new Engine(toy);
    expect(() => e.add(req('x', 61, 40))).toThrow(/maximum context length/);
    expect(e.idle).toBe(true);
  });

  it('property: every request finishes with exactly its output tokens, in order, and KV returns to 0', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ input: fc.integer({ min: 1, max: 60 }), output: fc.integer({ min: 1, max: 40 }), gap: fc.double({ min: 0, max: 0.2, noNaN: true }) }), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 8, max: 128 }),
        (reqs, budget) => {
          const e = new Engine(toy, { maxBatchedTokens: budget, maxNumSeqs: 8 });
          let t = 0;
          const specs = reqs.map((r, i) => req(String(i), r.input, r.output, (t += r.gap)));
          const seen = new Map<string, number>();
          let now = 0;
          let next = 0;
          let guard = 0;
          while (next < specs.length || !e.idle) {
            while (next < specs.length && specs[next]!.arrival <= now) e.add(specs[next++]!);
            const s = e.schedule(now);
            if (!s) { now = specs[next]!.arrival; continue; }
            now = s.end;
            for (const tok of e.complete(s).tokens) {
              expect(tok.index).toBe(seen.get(tok.id) ?? 0);
              seen.set(tok.id, tok.index + 1);
            }
            expect(e.stats().kvUsedTokens).toBeLessThanOrEqual(toy.kvCapacityTokens);
            if (++guard > 100_000) throw new Error('no progress');
          }
          for (const s of specs) expect(seen.get(s.id)).toBe(s.outputTokens);
          expect(e.stats().kvUsedTokens).toBe(0);
        },
      ),
      { numRuns: 150, seed: 7 },
    );
  });
});

describe('Engine: latency grows with load', () => {
  const poisson = (rate: number, n: number, input: number, output: number): RequestSpec[] => {
    const random = mulberry32(42);
    let t = 0;
    return Array.from({ length: n }, (_, i) => req(String(i), input, output, (t += exponential(random, rate))));
  };
  const perf: EnginePerf = { ...toy, kvCapacityTokens: 4000, maxModelLen: 1000 };

  it('mean TTFT and mean TPOT increase with the arrival rate (same arrival pattern, scaled)', () => {
    const rows = [1, 4, 8, 12].map((rate) => {
      const { finished } = simulate(perf, poisson(rate, 300, 100, 50));
      const mean = (f: (x: (typeof finished)[number]) => number) => finished.reduce((s, x) => s + f(x), 0) / finished.length;
      return { rate, ttft: mean((r) => r.firstToken - r.arrival), tpot: mean(paperTpot) };
    });
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]!.ttft).toBeGreaterThan(rows[i - 1]!.ttft);
      expect(rows[i]!.tpot).toBeGreaterThan(rows[i - 1]!.tpot);
    }
  });

  it('is deterministic: the same requests give the same timings', () => {
    const a = simulate(perf, poisson(5, 100, 80, 30));
    const b = simulate(perf, poisson(5, 100, 80, 30));
    expect(a).toEqual(b);
  });
});
