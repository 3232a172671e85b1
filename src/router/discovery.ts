/**
 * Where a pool's backends come from, behind one interface: a static URL list (local runs, tests) or the
 * ready endpoints of a headless Service (endpointslices.ts). The router core only sees BackendSource.
 */
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

/**
 * The default factory: static pools need nothing; discovery pools get `discovery(pool)`, created lazily so
 * a static-only configuration never touches a cluster.
 */
export function makeSourceFactory(discovery?: (pool: PoolConfig & { discovery: NonNullable<PoolConfig['discovery']> }) => BackendSource): SourceFactory {
  return (pool) => {
    if (pool.backends !== undefined) return new StaticSource(pool.backends);
    if (pool.discovery !== undefined) {
      if (!discovery) throw new Error(`pool "${pool.name}": EndpointSlice discovery is not available in this process`);
      return discovery(pool as PoolConfig & { discovery: NonNullable<PoolConfig['discovery']> });
    }
    throw new Error(`pool "${pool.name}" has neither backends nor discovery`);
  };
}
