// A de-duplicating work queue with client-go's semantics: a key is queued at most once, never processed by
// two workers at once, and a key that changes while in flight is processed again after done(). Delayed adds
// keep one timer per key (earliest wins). Failures back off per key, 5 ms doubling to 1000 s (client-go's
// DefaultTypedControllerRateLimiter), and a success forgets the key's failures.

export interface QueueHooks {
  onAdd?: () => void;
  onDepth?: (depth: number) => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;

  constructor(
    private readonly hooks: QueueHooks = {},
    private readonly baseDelayMs = 5,
    private readonly maxDelayMs = 1_000_000,
  ) {}

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.hooks.onAdd?.();
    this.dirty.add(key);
    if (!this.processing.has(key)) this.push(key); // else done() re-queues it
    this.depthChanged();
  }

  /** Adds the key after `delayMs`; an earlier pending deadline for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Re-adds a failed key after its per-key backoff; returns the delay used. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (call after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key, waiting if none; undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.depthChanged();
      return Promise.resolve(this.take(key));
    }
    return this.shuttingDown ? Promise.resolve(undefined) : new Promise((r) => this.waiters.push(r));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key);
    this.depthChanged();
  }

  len(): number {
    return this.queue.length;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops handing out keys; pending delayed adds are dropped and idle workers are released. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    for (const w of this.waiters.splice(0)) w(undefined);
    this.depthChanged();
  }

  private push(key: string): void {
    const w = this.waiters.shift();
    if (w) w(this.take(key));
    else this.queue.push(key);
  }

  private take(key: string): string {
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  private depthChanged(): void {
    this.hooks.onDepth?.(this.queue.length);
  }
}

export interface ReconcileResult {
  /** Reconcile again after this long (periodic re-solve, waiting for capacity). */
  requeueAfterMs?: number;
}

export interface WorkerOptions {
  queue: WorkQueue;
  concurrency: number;
  reconcile: (key: string) => Promise<ReconcileResult>;
  /** A failed reconcile; the key is retried after `retryInMs`. */
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

/** Runs `concurrency` workers until the queue shuts down; resolves when every in-flight reconcile finished. */
export async function runWorkers(o: WorkerOptions): Promise<void> {
  const worker = async () => {
    for (;;) {
      const key = await o.queue.get();
      if (key === undefined) return;
      try {
        const r = await o.reconcile(key);
        o.queue.forget(key);
        if (r.requeueAfterMs !== undefined) o.queue.addAfter(key, r.requeueAfterMs);
      } catch (err) {
        const delay = o.queue.addRateLimited(key);
        o.onError?.(key, err, delay);
      } finally {
        o.queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
}
