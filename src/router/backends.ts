/** The live set of backends per pool, with per-backend load counts (mutable state of the router). */
import type { BackendView } from './select.js';

export class Backend implements BackendView {
  inflight = 0;
  pendingPrefillTokens = 0;
  ejectedUntil = 0;
  /** Still listed by its pool's source (a removed backend may finish its in-flight requests). */
  listed = true;
  readonly url: URL;
  /** host:port, the `backend` metric label. */
  readonly label: string;
  constructor(
    readonly id: string,
    readonly pool: string,
  ) {
    this.url = new URL(id);
    this.label = this.url.host;
  }
}

export class BackendRegistry {
  private readonly pools = new Map<string, Map<string, Backend>>();
  private cache: Map<string, Backend[]> | undefined;
  /** Removed backends that still had requests in flight when their pool's list dropped them. */
  private readonly draining = new Set<Backend>();

  /** Replaces a pool's list; existing Backend objects (and their in-flight counts) are kept. Returns removed ones. */
  setPool(pool: string, urls: readonly string[]): Backend[] {
    const prev = this.pools.get(pool) ?? new Map<string, Backend>();
    const next = new Map<string, Backend>();
    for (const u of urls) {
      const b = prev.get(u) ?? this.relist(pool, u) ?? new Backend(u, pool);
      b.listed = true;
      next.set(u, b);
    }
    const removed = [...prev.values()].filter((b) => !next.has(b.id));
    this.unlist(removed);
    this.pools.set(pool, next);
    this.cache = undefined;
    return removed;
  }

  removePool(pool: string): Backend[] {
    const removed = [...(this.pools.get(pool)?.values() ?? [])];
    this.unlist(removed);
    this.pools.delete(pool);
    this.cache = undefined;
    return removed;
  }

  /** Ready backends per pool (as the selection functions want them). */
  byPool(): ReadonlyMap<string, readonly Backend[]> {
    if (!this.cache) {
      this.cache = new Map();
      for (const [pool, m] of this.pools) this.cache.set(pool, [...m.values()]);
    }
    return this.cache;
  }

  readyCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [pool, m] of this.pools) out.set(pool, m.size);
    return out;
  }

  all(): Backend[] {
    return [...this.pools.values()].flatMap((m) => [...m.values()]);
  }

  poolNames(): string[] {
    return [...this.pools.keys()];
  }

  /** Counts a request starting (+1) or ending (-1) on `b`; a removed backend is forgotten when its last one ends. */
  addInflight(b: Backend, delta: number): void {
    b.inflight += delta;
    if (!b.listed && b.inflight <= 0) this.draining.delete(b);
  }

  /**
   * Counts prompt tokens sent to `b` (+) and their first output token coming back (-). Never below zero: a
   * request's share is taken off exactly once, but a negative count would make a backend look idler than idle.
   */
  addPendingPrefill(b: Backend, delta: number): void {
    b.pendingPrefillTokens = Math.max(0, b.pendingPrefillTokens + delta);
  }

  /** Listed backends, and removed ones until their last in-flight request ends (the in-flight gauge's series). */
  *withInflight(): Generator<Backend> {
    for (const m of this.pools.values()) yield* m.values();
    yield* this.draining;
  }

  /** A removed backend listed again while still busy: the same object, so its in-flight count stays right. */
  private relist(pool: string, id: string): Backend | undefined {
    for (const b of this.draining) {
      if (b.pool === pool && b.id === id) {
        this.draining.delete(b);
        return b;
      }
    }
    return undefined;
  }

  private unlist(removed: readonly Backend[]): void {
    for (const b of removed) {
      b.listed = false;
      if (b.inflight > 0) this.draining.add(b);
    }
  }
}
