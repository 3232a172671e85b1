/**
 * Where a pool's backends come from, behind one interface: a static URL list (local runs, tests), the
 * ready endpoints of a headless Service by DNS (dns.ts; no API access) or by its EndpointSlices
 * (endpointslices.ts; needs RBAC). The router core only sees BackendSource.
 */
import type { Logger } from 'pino';
import type { PoolConfig } from './config.js';

export interface BackendSource {
  /**
   * Starts delivering the pool's ready backend base URLs to `onUpdate` (the full list each time, sorted,
   * deduplicated). Resolves after the first delivery, or after the first failure (the source then keeps
   * retrying in the background and `synced` stays false).
   */
  start(onUpdate: (urls: string[]) => void): Promise<void>;
  stop(): Promise<void>;
  /** True once the source delivered at least one complete list. */
  readonly synced: boolean;
  /** Human description for logs. */
  readonly description: string;
}

export type SourceFactory = (pool: PoolConfig) => BackendSource;

/** Normalised base URL: no trailing slash. */
export const normaliseBaseUrl = (u: string) => u.replace(/\/+$/, '');

export class StaticSource implements BackendSource {
  synced = false;
  readonly description: string;
  private readonly urls: string[];
  constructor(urls: readonly string[]) {
    this.urls = [...new Set(urls.map(normaliseBaseUrl))].sort();
    this.description = `static(${this.urls.length})`;
  }
  async start(onUpdate: (urls: string[]) => void): Promise<void> {
    this.synced = true;
    onUpdate([...this.urls]);
  }
  async stop(): Promise<void> {}
}

export interface LazySourceOptions {
  logger?: Logger | undefined;
  /** First retry delay after a failed load (doubles up to maxBackoffMs). */
  backoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * A source whose implementation is loaded (imported, constructed) when it starts. A failed load (a module that
 * cannot be imported, a kubeconfig that cannot be read) is logged and retried with back-off like any source's
 * failure: start() resolves after the first failure and `synced` stays false until the loaded source syncs.
 */
export class LazySource implements BackendSource {
  private inner: BackendSource | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private backoff: number;
  private onUpdate: (urls: string[]) => void = () => undefined;

  constructor(
    readonly description: string,
    private readonly load: () => Promise<BackendSource>,
    private readonly o: LazySourceOptions = {},
  ) {
    this.backoff = o.backoffMs ?? 1000;
  }

  get synced(): boolean {
    return this.inner?.synced ?? false;
  }

  async start(onUpdate: (urls: string[]) => void): Promise<void> {
    this.onUpdate = onUpdate;
    await this.attempt();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inner?.stop();
  }

  private async attempt(): Promise<void> {
    let inner: BackendSource;
    try {
      inner = await this.load();
    } catch (err) {
      if (this.stopped) return;
      this.o.logger?.error({ err: (err as Error)?.message ?? String(err), source: this.description, retryInMs: this.backoff }, 'backend source could not be loaded; retrying');
      this.timer = setTimeout(() => void this.attempt(), this.backoff);
      this.timer.unref();
      this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs ?? 30_000);
      return;
    }
    if (this.stopped) return;
    this.inner = inner;
    await inner.start(this.onUpdate);
  }
}

type With<K extends 'discovery' | 'dns'> = PoolConfig & { [P in K]: NonNullable<PoolConfig[P]> };

export interface SourceKinds {
  /** EndpointSlice discovery (`pools[].discovery`). */
  discovery?: (pool: With<'discovery'>) => BackendSource;
  /** DNS discovery (`pools[].dns`). */
  dns?: (pool: With<'dns'>) => BackendSource;
}

/**
 * The default factory: static pools need nothing; discovery and DNS pools get the matching constructor,
 * called lazily so a static-only configuration never touches a cluster or a DNS server.
 */
export function makeSourceFactory(kinds: SourceKinds = {}): SourceFactory {
  return (pool) => {
    if (pool.backends !== undefined) return new StaticSource(pool.backends);
    if (pool.dns !== undefined) {
      if (!kinds.dns) throw new Error(`pool "${pool.name}": DNS discovery is not available in this process`);
      return kinds.dns(pool as With<'dns'>);
    }
    if (pool.discovery !== undefined) {
      if (!kinds.discovery) throw new Error(`pool "${pool.name}": EndpointSlice discovery is not available in this process`);
      return kinds.discovery(pool as With<'discovery'>);
    }
    throw new Error(`pool "${pool.name}" has none of backends, discovery or dns`);
  };
}
