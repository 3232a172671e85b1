import { describe, expect, it } from 'vitest';
import { EngineDriver } from '../../../src/emulator/driver.js';
import { Engine, type FinishedRequest, type TokenEvent } from '../../../src/emulator/engine.js';
import type { EnginePerf } from '../../../src/emulator/gpu-models.js';

const perf: EnginePerf = {
  gpuType: 'toy',
  baseStepS: 0.1,
  perContextTokenS: 0,
  prefillPerTokenS: 0,
  requestOverheadS: 0,
  kvCapacityTokens: 10_000,
  maxModelLen: 1000,
};

/** A fake real clock and timer queue: time only moves when the test says so. */
function fakeTime() {
  let now = 0;
  const timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let ids = 0;
  return {
    nowMs: () => now,
    setTimer: (fn: () => void, ms: number) => {
      const t = { at: now + ms, fn, id: ++ids };
      timers.push(t);
      return t.id;
    },
    clearTimer: (h: unknown) => {
      const i = timers.findIndex((t) => t.id === h);
      if (i >= 0) timers.splice(i, 1);
    },
    /** Advance to `ms`, firing due timers in order (a late machine: fire them all at `ms`, if `late`). */
    advanceTo(ms: number, late = false) {
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > ms) break;
        timers.shift();
        now = late ? ms : t.at;
        t.fn();
      }
      now = ms;
    },
    pending: () => timers.length,
    nextAt: () => timers.reduce((m, t) => Math.min(m, t.at), Infinity),
  };
}

function collect() {
  const batches: TokenEvent[][] = [];
  const done: FinishedRequest[] = [];
  return {
    batches,
    done,
    listener: { onTokens: (t: readonly TokenEvent[]) => batches.push([...t]), onFinished: (r: FinishedRequest) => done.push(r) },
  };
}

describe('EngineDriver (dilated clock)', () => {
  it('schedules each iteration at its emulated end divided by the speed', () => {
    const time = fakeTime();
    const driver = new EngineDriver(new Engine(perf), { speed: 10, ...time });
    const c = collect();
    driver.submit(5, 3, c.listener);
    expect(c.batches).toHaveLength(0); // never calls back synchronously
    time.advanceTo(0); // the wake-up tick
    // one iteration is 0.1 emulated s = 10 real ms at speed 10
    expect(time.nextAt()).toBeCloseTo(10, 5);
    time.advanceTo(10);
    expect(c.batches.map((b) => b.map((t) => t.index))).toEqual([[0]]);
    time.advanceTo(30);
    expect(c.batches.flat().map((t) => t.index)).toEqual([0, 1, 2]);
    expect(c.done).toHaveLength(1);
    // emulated, undilated times: 3 iterations of 0.1 s
    expect(c.done[0]!.finish - c.done[0]!.arrival).toBeCloseTo(0.3, 9);
    expect(c.done[0]!.firstToken - c.done[0]!.arrival).toBeCloseTo(0.1, 9);
    expect(driver.active).toBe(0);
    expect(time.pending()).toBe(0); // idle: no timer left
  });

  it('catches up after a late timer: several iterations complete at once and tokens arrive batched', () => {
    const time = fakeTime();
    const driver = new EngineDriver(new Engine(perf), { speed: 1, ...time });
    const c = collect();
    driver.submit(5, 5, c.listener);
    time.advanceTo(0);
    time.advanceTo(350, true); // the first timer (due at 100 ms) fires only at 350 ms
    // iterations ending at 0.1, 0.2, 0.3 emulated s are all due: one batch of three tokens
    expect(c.batches.map((b) => b.length)).toEqual([3]);
    expect(c.batches[0]!.map((t) => t.time)).toEqual([0.1, 0.2, 0.30000000000000004].map((x) => expect.closeTo(x, 9)));
    time.advanceTo(1000);
    expect(c.done).toHaveLength(1);
    expect(c.done[0]!.finish).toBeCloseTo(0.5, 9); // the emulated schedule did not drift
  });

  it('a request arriving during an iteration joins the next one', () => {
    const time = fakeTime();
    const driver = new EngineDriver(new Engine(perf), { speed: 1, ...time });
    const a = collect();
    const b = collect();
    driver.submit(5, 4, a.listener);
    time.advanceTo(0);
    time.advanceTo(50);
    driver.submit(5, 2, b.listener); // arrives at 0.05 s, mid-iteration
    time.advanceTo(1000);
    expect(b.done[0]!.arrival).toBeCloseTo(0.05, 9);
    expect(b.done[0]!.firstScheduled).toBeCloseTo(0.1, 9);
    expect(b.done[0]!.firstToken).toBeCloseTo(0.2, 9);
  });

  it('abort and stop drop requests and leave no timer behind', () => {
    const time = fakeTime();
    const engine = new Engine(perf);
    const driver = new EngineDriver(engine, { speed: 1, ...time });
    const a = collect();
    const { id } = driver.submit(5, 100, a.listener);
    time.advanceTo(0);
    time.advanceTo(250);
    expect(driver.abort(id)).toBe(true);
    driver.submit(5, 100, collect().listener);
    driver.stop();
    expect(engine.idle).toBe(true);
    expect(time.pending()).toBe(0);
    expect(() => driver.submit(1, 1, collect().listener)).toThrow(/stopped/);
  });
});
