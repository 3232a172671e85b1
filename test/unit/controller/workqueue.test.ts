import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkQueue, runWorkers } from '../../../src/controller/workqueue.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('WorkQueue', () => {
  it('de-duplicates keys that are waiting', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands out a key in flight; a change while in flight is processed again after done()', async () => {
    const q = new WorkQueue();
    q.add('a');
    const k = await q.get();
    q.add('a'); // changed while processing
    expect(q.len()).toBe(0);
    q.add('b');
    expect(await q.get()).toBe('b');
    q.done(k!);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('addAfter keeps one timer per key; the earliest deadline wins', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 1_000);
    q.addAfter('a', 500);
    q.addAfter('a', 2_000);
    await vi.advanceTimersByTimeAsync(499);
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.len()).toBe(1);
    await q.get();
    q.done('a');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(q.len()).toBe(0); // the later timers were replaced, not stacked
  });

  it('backs off per key, 5 ms doubling, and forgets on success', () => {
    const q = new WorkQueue();
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([5, 10, 20]);
    expect(q.addRateLimited('b')).toBe(5);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(5);
  });

  it('shutDown releases idle getters and drops pending work', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.addAfter('x', 100);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    await vi.advanceTimersByTimeAsync(200);
    expect(await q.get()).toBeUndefined();
  });
});

describe('runWorkers', () => {
  it('retries a failing key with backoff [5, 10, 20] ms, then resyncs it on requeueAfter exactly once', async () => {
    const q = new WorkQueue();
    const calls: number[] = [];
    const delays: number[] = [];
    let n = 0;
    const done = runWorkers({
      queue: q,
      concurrency: 2,
      reconcile: async () => {
        calls.push(Date.now());
        if (n++ < 3) throw Object.assign(new Error('conflict'), { statusCode: 409 });
        return { requeueAfterMs: 60_000 };
      },
      onError: (_k, _e, d) => delays.push(d),
    });
    const start = Date.now();
    q.add('ns/a');
    await vi.advanceTimersByTimeAsync(100);
    expect(delays).toEqual([5, 10, 20]);
    expect(calls.length).toBe(4);
    expect(calls.map((c) => c - start)).toEqual([0, 5, 15, 35]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.length).toBe(5);
    q.shutDown();
    await done;
  });

  it('never runs one key concurrently, even with many workers', async () => {
    const q = new WorkQueue();
    let inFlight = 0;
    let maxInFlight = 0;
    const done = runWorkers({
      queue: q,
      concurrency: 4,
      reconcile: async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 10));
        inFlight--;
        return {};
      },
    });
    for (let i = 0; i < 5; i++) {
      q.add('same');
      await vi.advanceTimersByTimeAsync(3);
    }
    await vi.advanceTimersByTimeAsync(100);
    expect(maxInFlight).toBe(1);
    q.shutDown();
    await done;
  });

  it('resolves once shut down and the in-flight reconcile finished', async () => {
    const q = new WorkQueue();
    let finished = false;
    const done = runWorkers({
      queue: q,
      concurrency: 1,
      reconcile: async () => {
        await new Promise((r) => setTimeout(r, 1_000));
        finished = true;
        return {};
      },
    });
    q.add('k');
    await vi.advanceTimersByTimeAsync(10);
    q.shutDown();
    let resolved = false;
    void done.then(() => (resolved = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(resolved).toBe(false);
    await vi.advanceTimersByTimeAsync(600);
    expect(finished && resolved).toBe(true);
  });
});
