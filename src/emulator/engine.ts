/**
 * A pure, clock-free model of vLLM's continuous-batching scheduler (shaped after vLLM V1's): it never reads
 * the time and never sleeps. A driver (the HTTP server, or simulate.ts in tests) calls `schedule(now)` to
 * form the next iteration, waits `step.duration` emulated seconds however it likes, then calls
 * `complete(step)` to get the tokens that iteration produced.
 *
 * Per iteration (one forward pass):
 *  1. Running requests, oldest first, each get the tokens they need (1 for a decode, the rest of the prompt,
 *     chunked to the token budget, for a prefill). If the KV cache cannot hold them, the most recently admitted
 *     running request is preempted (recompute: its KV is freed and it goes back to the head of the queue; when
 *     re-admitted it prefills its prompt plus what it had generated).
 *  2. If nothing was preempted, waiting requests that have arrived are admitted in FIFO order while the token
 *     budget, the sequence limit and the KV cache allow (head-of-line: the queue never skips).
 *  3. Duration = baseStep + perContextToken·Σ decode contexts + prefillPerToken·Σ prefill tokens
 *     + requestOverhead·(requests scheduled for the first time). A request whose prompt is complete at the end
 *     of an iteration emits a token; decoding requests emit one token per iteration.
 */
import type { EnginePerf } from './gpu-models.js';

export interface EngineLimits {
  /** Most requests running at once (vLLM --max-num-seqs). */
  maxNumSeqs: number;
  /** Most tokens processed in one iteration, prefill chunks plus one per decode (--max-num-batched-tokens). */
  maxBatchedTokens: number;
}

export const DEFAULT_LIMITS: EngineLimits = { maxNumSeqs: 256, maxBatchedTokens: 8192 };

export interface RequestSpec {
  id: string;
  inputTokens: number;
  /** Exactly this many tokens are generated (>= 1). */
  outputTokens: number;
  /** Emulated seconds. The request is not scheduled before this time. */
  arrival: number;
}

export interface TokenEvent {
  id: string;
  /** 0-based index of the generated token. */
  index: number;
  /** Emulated time the token was produced (end of its iteration). */
  time: number;
  /** Seconds since this request's previous token (undefined for the first). */
  interTokenS: number | undefined;
  first: boolean;
  finished: boolean;
}

export interface FinishedRequest {
  id: string;
  inputTokens: number;
  outputTokens: number;
  arrival: number;
  /** Start of the first iteration that scheduled it. */
  firstScheduled: number;
  firstToken: number;
  finish: number;
  preemptions: number;
}

export interface Step {
  readonly start: number;
  readonly duration: number;
  readonly end: number;
  /** Tokens computed in this iteration: prompt (prefill) and decode. */
  readonly prefillTokens: number;
  readonly decodeRequests: number;
  /** @internal */
  readonly items: ReadonlyArray<{ seq: Seq; n: number }>;
}

export interface StepOutcome {
  tokens: TokenEvent[];
  finished: FinishedRequest[];
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvUsedTokens: number;
  kvCapacityTokens: number;
  /** kvUsed / kvCapacity in [0, 1]. */
  kvUsage: number;
  preemptions: number;
  steps: number;
}

interface Seq {
  spec: RequestSpec;
  /** Tokens with KV in the cache (prompt processed so far + generated tokens fed back). */
  computed: number;
  generated: number;
  /** KV slots allocated (== computed between iterations, computed + n while scheduled). */
  kv: number;
  firstScheduled: number | undefined;
  firstToken: number | undefined;
  lastToken: number | undefined;
  preemptions: number;
  aborted: boolean;
}

/** Why a request can never be served on this GPU (vLLM's context-length error), or undefined. */
export function contextError(perf: EnginePerf, inputTokens: number, outputTokens: number): string | undefined {
  const total = inputTokens + outputTokens;
  if (total <= perf.maxModelLen) return undefined;
  return (
    `This model's maximum context length is ${perf.maxModelLen} tokens. However, you requested ${total} tokens ` +
    `(${inputTokens} in the messages, ${outputTokens} in the completion). Please reduce the length of the ` +
    'messages or completion.'
  );
}

export class Engine {
  readonly perf: EnginePerf;
  readonly limits: EngineLimits;
  private readonly waiting: Seq[] = [];
  private readonly running: Seq[] = [];
  private readonly byId = new Map<string, Seq>();
  private kvUsed = 0;
  private preemptionCount = 0;
  private stepCount = 0;
  private inFlight: Step | undefined;

  constructor(perf: EnginePerf, limits: Partial<EngineLimits> = {}) {
    this.perf = perf;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    if (this.limits.maxNumSeqs < 1 || this.limits.maxBatchedTokens < 1) throw new Error('engine limits must be >= 1');
  }

  /** Queues a request. Throws if it can never fit (check `contextError` first) or the id is in use. */
  add(spec: RequestSpec): void {
    const err = contextError(this.perf, spec.inputTokens, spec.outputTokens);
    if (err) throw new Error(err);
    if (!(spec.outputTokens >= 1) || !(spec.inputTokens >= 0)) throw new Error('outputTokens must be >= 1, inputTokens >= 0');
    if (this.byId.has(spec.id)) throw new Error(`duplicate request id ${spec.id}`);
    const seq: Seq = {
      spec,
      computed: 0,
      generated: 0,
      kv: 0,
      firstScheduled: undefined,
      firstToken: undefined,
      lastToken: undefined,
      preemptions: 0,
      aborted: false,
    };
    this.byId.set(spec.id, seq);
    // Keep the queue in arrival order (drivers add in order; this only guards out-of-order adds).
    let i = this.waiting.length;
    while (i > 0 && this.waiting[i - 1]!.spec.arrival > spec.arrival && this.waiting[i - 1]!.firstScheduled === undefined) i--;
    this.waiting.splice(i, 0, seq);
  }

  /** Drops a request (client went away); frees its KV. False if unknown or already finished. */
  abort(id: string): boolean {
    const seq = this.byId.get(id);
    if (!seq) return false;
    seq.aborted = true;
    this.byId.delete(id);
    this.remove(this.waiting, seq);
    if (this.remove(this.running, seq)) {
      this.kvUsed -= seq.kv;
      seq.kv = 0;
    }
    return true;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** True when no request is queued or running. */
  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  /** Earliest arrival among queued requests that have never been scheduled (for event-driven drivers). */
  nextArrival(): number | undefined {
    let t: number | undefined;
    for (const s of this.waiting) if (t === undefined || s.spec.arrival < t) t = s.spec.arrival;
    return t;
  }

  stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvUsedTokens: this.kvUsed,
      kvCapacityTokens: this.perf.kvCapacityTokens,
      kvUsage: this.kvUsed / this.perf.kvCapacityTokens,
      preemptions: this.preemptionCount,
      steps: this.stepCount,
    };
  }

  /**
   * Forms the next iteration starting at `now` (emulated seconds). Undefined if there is nothing to run
   * (idle, or every queued request arrives after `now`). Must be followed by `complete(step)`.
   */
  schedule(now: number): Step | undefined {
    if (this.inFlight) throw new Error('schedule() called twice without complete()');
    let budget = this.limits.maxBatchedTokens;
    const items: Array<{ seq: Seq; n: number }> = [];
    let preempted = false;

    // 1. Running requests, oldest admitted first.
    for (let i = 0; i < this.running.length && budget > 0; ) {
      const seq = this.running[i]!;
      const n = Math.min(this.needed(seq), budget);
      let self = false;
      while (this.kvUsed + n > this.perf.kvCapacityTokens) {
        const victim = this.running[this.running.length - 1]!;
        this.preempt(victim);
        preempted = true;
        if (victim === seq) { self = true; break; }
      }
      if (self) break; // seq was the last running request; nothing after it
      this.kvUsed += n;
      seq.kv += n;
      items.push({ seq, n });
      budget -= n;
      i++;
    }

    // 2. Admit arrived waiting requests, FIFO, unless this iteration had to preempt.
    if (!preempted) {
      while (budget > 0 && this.running.length < this.limits.maxNumSeqs && this.waiting.length > 0) {
        const seq = this.waiting[0]!;
        if (seq.spec.arrival > now) break;
        const n = Math.min(this.needed(seq), budget);
        if (this.kvUsed + n > this.perf.kvCapacityTokens) break;
        this.waiting.shift();
        this.running.push(seq);
        this.kvUsed += n;
        seq.kv += n;
        items.push({ seq, n });
        budget -= n;
      }
    }

    if (items.length === 0) return undefined;

    const p = this.perf;
    let duration = p.baseStepS;
    let prefillTokens = 0;
    let decodeRequests = 0;
    for (const { seq, n } of items) {
      const decoding = n === 1 && seq.generated > 0 && seq.computed === seq.spec.inputTokens + seq.generated - 1;
      if (decoding) {
        decodeRequests++;
        duration += p.perContextTokenS * (seq.computed + 1);
      } else {
        prefillTokens += n;
        duration += p.prefillPerTokenS * n;
      }
      if (seq.firstScheduled === undefined) {
        seq.firstScheduled = now;
        duration += p.requestOverheadS;
      }
    }
    this.stepCount++;
    const step: Step = { start: now, duration, end: now + duration, prefillTokens, decodeRequests, items };
    this.inFlight = step;
    return step;
  }

  /** Applies a scheduled iteration: the tokens produced at `step.end` and the requests that finished. */
  complete(step: Step): StepOutcome {
    if (this.inFlight !== step) throw new Error('complete() of a step that is not in flight');
    this.inFlight = undefined;
    const t = step.end;
    const tokens: TokenEvent[] = [];
    const finished: FinishedRequest[] = [];
    for (const { seq, n } of step.items) {
      if (seq.aborted) continue;
      seq.computed += n;
      if (seq.computed < seq.spec.inputTokens + seq.generated) continue; // prompt chunk, not done yet
      // The whole context is computed: sample one token.
      const first = seq.firstToken === undefined;
      const interTokenS = seq.lastToken === undefined ? undefined : t - seq.lastToken;
      if (first) seq.firstToken = t;
      seq.lastToken = t;
      seq.generated++;
      const done = seq.generated >= seq.spec.outputTokens;
      tokens.push({ id: seq.spec.id, index: seq.generated - 1, time: t, interTokenS, first, finished: done });
      if (done) {
        this.remove(this.running, seq);
        this.byId.delete(seq.spec.id);
        this.kvUsed -= seq.kv;
        seq.kv = 0;
        finished.push({
          id: seq.spec.id,
          inputTokens: seq.spec.inputTokens,
          outputTokens: seq.spec.outputTokens,
          arrival: seq.spec.arrival,
          firstScheduled: seq.firstScheduled ?? t,
          firstToken: seq.firstToken ?? t,
          finish: t,
          preemptions: seq.preemptions,
        });
      }
    }
    return { tokens, finished };
  }

  /** Tokens the request must compute before it can sample its next token. */
  private needed(seq: Seq): number {
    return seq.spec.inputTokens + seq.generated - seq.computed;
  }

  private preempt(seq: Seq): void {
    this.remove(this.running, seq);
    this.kvUsed -= seq.kv;
    seq.kv = 0;
    seq.computed = 0;
    seq.preemptions++;
    this.preemptionCount++;
    this.waiting.unshift(seq);
  }

  private remove(list: Seq[], seq: Seq): boolean {
    const i = list.indexOf(seq);
    if (i < 0) return false;
    list.splice(i, 1);
    return true;
  }
}
