import { describe, expect, it } from 'vitest';
import { LazySource, StaticSource, type BackendSource } from '../../../src/router/discovery.js';
import { waitFor } from '../../support/wait.js';

describe('LazySource', () => {
  it('loads its implementation when it starts, then delegates updates, synced and stop', async () => {
    let loads = 0;
    let stopped = 0;
    const inner = new StaticSource(['http://127.0.0.1:2/', 'http://127.0.0.1:1']);
    const src = new LazySource('lazy(test)', async () => {
      loads++;
      return Object.assign(inner, { stop: async () => { stopped++; } });
    });
    expect(loads).toBe(0);
    expect(src.synced).toBe(false);
    const seen: string[][] = [];
    await src.start((urls) => seen.push(urls));
    expect(loads).toBe(1);
    expect(seen).toEqual([['http://127.0.0.1:1', 'http://127.0.0.1:2']]);
    expect(src.synced).toBe(true);
    expect(src.description).toBe('lazy(test)');
    await src.stop();
    expect(stopped).toBe(1);
  });

  it('stopped while loading: the loaded source is never started', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    const inner: BackendSource = { synced: false, description: 'inner', start: async () => { started++; }, stop: async () => undefined };
    const src = new LazySource('lazy(test)', async () => {
      await gate;
      return inner;
    });
    const starting = src.start(() => undefined);
    await src.stop();
    release();
    await starting;
    expect(started).toBe(0);
    expect(src.synced).toBe(false);
  });

  it('a failed load is retried with back-off: start resolves after the first failure, synced once loaded', async () => {
    let loads = 0;
    const seen: string[][] = [];
    const src = new LazySource('lazy(test)', async () => {
      loads++;
      if (loads < 3) throw new Error('Cannot read the kubeconfig');
      return new StaticSource(['http://127.0.0.1:3']);
    }, { backoffMs: 10, maxBackoffMs: 20 });
    await src.start((urls) => seen.push(urls)); // resolves after the first failure
    expect(loads).toBe(1);
    expect(src.synced).toBe(false);
    await waitFor(() => src.synced, { what: 'loaded on the third attempt', timeoutMs: 5_000, intervalMs: 5 });
    expect(loads).toBe(3);
    expect(seen).toEqual([['http://127.0.0.1:3']]);
    await src.stop();
  });

  it('stop() ends the retries', async () => {
    let loads = 0;
    const src = new LazySource('lazy(test)', async () => {
      loads++;
      throw new Error('no');
    }, { backoffMs: 5 });
    await src.start(() => undefined);
    await src.stop();
    const after = loads;
    await new Promise((r) => setTimeout(r, 50));
    expect(loads).toBe(after);
  });
});
