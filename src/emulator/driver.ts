/**
 * Runs the pure engine against a (dilated) wall clock: the emulated clock advances `speed` emulated seconds
 * per real second. Each iteration is scheduled for its emulated end time; when timers fire late (a busy or
 * shared machine), the driver catches up by completing every iteration whose end has passed in one go, so
 * emulated time never drifts behind and tokens are delivered in small batches instead of being delayed.
 * Every timestamp it reports (token times, TTFT, latency) is in emulated seconds from the driver's start.
 */
import type { Engine, FinishedRequest, Step, TokenEvent } from './engine.js';

export interface RequestListener {
  /** Tokens produced for this request since the last call (oldest first). */
  onTokens(tokens: readonly TokenEvent[]): void;
  onFinished(result: FinishedRequest): void;
}

export interface DriverHooks {
  onTokens?(tokens: readonly TokenEvent[]): void;
  onFirstToken?(arrival: number, firstToken: number): void;
  onFinished?(r: FinishedRequest): void;
  onPreemptions?(n: number): void;
}

export interface DriverOptions {
  speed: number;
  /** Real monotonic clock in milliseconds (injectable for tests). */
  nowMs?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  hooks?: DriverHooks;
  /** Most iterations completed in one wake-up before yielding to the event loop. */
  maxIterationsPerWake?: number;
}

export class EngineDriver {
  private readonly engine: Engine;
  private readonly speed: number;
  private readonly nowMs: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly hooks: DriverHooks;
  private readonly maxIterations: number;
  private readonly t0: number;
  private readonly listeners = new Map<string, { listener: RequestListener; arrival: number }>();
  private step: Step | undefined;
  /** Emulated time at which the engine is free (end of the last completed iteration). */
  private vt = 0;
  private timer: unknown;
  private preemptionsSeen = 0;
  private stopped = false;
  private seq = 0;

  constructor(engine: Engine, opts: DriverOptions) {
    if (!(opts.speed > 0)) throw new Error('speed must be > 0');
    this.engine = engine;
    this.speed = opts.speed;
    this.nowMs = opts.nowMs ?? (() => performance.now());
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    this.hooks = opts.hooks ?? {};
    this.maxIterations = opts.maxIterationsPerWake ?? 10_000;
    this.t0 = this.nowMs();
  }

  /** Emulated seconds since the driver started. */
  emulatedNow(): number {
    return ((this.nowMs() - this.t0) / 1000) * this.speed;
  }

  /** Number of requests accepted and not yet finished or aborted. */
  get active(): number {
    return this.listeners.size;
  }

  /** Queues a request arriving now; returns its id and emulated arrival time. Throws on a context error. */
  submit(inputTokens: number, outputTokens: number, listener: RequestListener): { id: string; arrival: number } {
    if (this.stopped) throw new Error('driver stopped');
    const id = `r${++this.seq}`;
    const arrival = this.emulatedNow();
    this.engine.add({ id, inputTokens, outputTokens, arrival });
    this.listeners.set(id, { listener, arrival });
    // Never call back synchronously from submit(): wake the loop on the next tick.
    if (this.timer === undefined) this.timer = this.setTimer(this.pump, 0);
    return { id, arrival };
  }

  abort(id: string): boolean {
    this.listeners.delete(id);
    return this.engine.abort(id);
  }

  /** Stops the clock: aborts everything still queued or running; later submits throw. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = undefined;
    for (const id of [...this.listeners.keys()]) this.abort(id);
  }

  private pump = (): void => {
    this.timer = undefined;
    if (this.stopped) return;
    // A nanosecond of slack so float sums of step durations (0.1 + 0.1 + 0.1) do not miss their timer.
    const now = this.emulatedNow() + 1e-9;
    const batches = new Map<string, TokenEvent[]>();
    const finished: FinishedRequest[] = [];
    let iterations = 0;
    let wait: number | undefined;
    while (iterations < this.maxIterations) {
      if (!this.step) {
        this.step = this.engine.schedule(this.vt);
        if (!this.step) {
          const next = this.engine.nextArrival();
          if (next === undefined) break; // idle
          if (next > now) { wait = next; break; }
          this.vt = Math.max(this.vt, next);
          continue;
        }
      }
      if (this.step.end > now) { wait = this.step.end; break; }
      const outcome = this.engine.complete(this.step);
      this.vt = this.step.end;
      this.step = undefined;
      iterations++;
      for (const t of outcome.tokens) {
        let b = batches.get(t.id);
        if (!b) batches.set(t.id, (b = []));
        b.push(t);
      }
      finished.push(...outcome.finished);
    }

    const preemptions = this.engine.stats().preemptions;
    if (preemptions > this.preemptionsSeen) {
      this.hooks.onPreemptions?.(preemptions - this.preemptionsSeen);
      this.preemptionsSeen = preemptions;
    }
    for (const [id, tokens] of batches) {
      this.hooks.onTokens?.(tokens);
      const entry = this.listeners.get(id);
      if (!entry) continue;
      const first = tokens.find((t) => t.first);
      if (first) this.hooks.onFirstToken?.(entry.arrival, first.time);
      entry.listener.onTokens(tokens);
    }
    for (const r of finished) {
      this.hooks.onFinished?.(r);
      const entry = this.listeners.get(r.id);
      this.listeners.delete(r.id);
      entry?.listener.onFinished(r);
    }

    if (iterations >= this.maxIterations) this.timer = this.setTimer(this.pump, 0);
    else if (wait !== undefined) this.timer = this.setTimer(this.pump, Math.max(0, ((wait - 1e-9 - this.emulatedNow()) / this.speed) * 1000));
  };
}
