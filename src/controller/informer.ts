import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';

// A ListWatch that keeps itself alive. client-node's ListWatch relists on 410 by itself, but any other
// error (a 500, ECONNREFUSED while the API server restarts, a failed LIST) makes it *stop*; and on 1.4.0 a
// watch on a dropped connection can hang forever (no inactivity timeout). So: restart after errors with
// capped exponential backoff, and re-open the watch every `refreshEveryMs` from the cached resourceVersion
// (no relist, no event storm). Handlers only enqueue keys; the cache is the read model.

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Watch path, e.g. /apis/melange.dev/v1alpha1/llmservices. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** Called for add/update/delete with the object; must be cheap (enqueue a key). */
  onEvent: (obj: T) => void;
  onError?: (err: unknown, retryInMs: number) => void;
  maxBackoffMs?: number;
  refreshEveryMs?: number;
}

export interface Informer<T extends KubernetesObject> {
  /** The live cache: never mutate what it returns. */
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): ReadonlyArray<T>;
  /** True once a LIST succeeded (the cache reflects the cluster). */
  synced(): boolean;
  /** Resolves when synced; rejects if stopped first. */
  waitSynced(signal?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export function startInformer<T extends KubernetesObject>(opts: InformerOptions<T>): Informer<T> {
  let listed = false;
  let stopped = false;
  let refreshing = false;
  let attempt = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let refreshTimer: NodeJS.Timeout | undefined;
  const syncWaiters: Array<() => void> = [];

  let inflight: Promise<void> | undefined;

  const list = async () => {
    if (stopped) throw new Error('informer stopped');
    const result = await opts.list();
    attempt = 0; // a successful LIST ends an outage: the next error starts from the short backoff
    // ListWatch fills its cache right after this promise settles; mark synced once that ran.
    setImmediate(() => {
      if (listed) return;
      listed = true;
      for (const w of syncWaiters.splice(0)) w();
    });
    return result;
  };
  const lw = new ListWatch<T>(opts.path, new Watch(opts.kc), list, false, opts.labelSelector);
  const onEvent = (obj: T) => {
    attempt = 0;
    opts.onEvent(obj);
  };
  lw.on('add', onEvent);
  lw.on('update', onEvent);
  lw.on('delete', onEvent);

  const startOnce = () => {
    if (!stopped) inflight = lw.start().catch(restart); // LIST failures arrive through 'error' too
  };
  function restart(err: unknown) {
    if (stopped || refreshing) return; // stop() itself reports an AbortError here
    clearTimeout(retryTimer);
    const delay = Math.min(opts.maxBackoffMs ?? 10_000, 1000 * 2 ** attempt);
    attempt = Math.min(attempt + 1, 20);
    opts.onError?.(err, delay);
    retryTimer = setTimeout(startOnce, delay);
  }
  lw.on('error', restart);
  startOnce();

  if (opts.refreshEveryMs) {
    refreshTimer = setInterval(() => {
      if (stopped || refreshing) return;
      refreshing = true;
      void lw
        .stop()
        // Let the old stream's AbortError drain before the new watch exists: its done handler aborts
        // whatever request is current.
        .then(() => new Promise((r) => setTimeout(r, 100)))
        .then(() => {
          refreshing = false;
          startOnce();
        });
    }, opts.refreshEveryMs);
    refreshTimer.unref();
  }

  return {
    get: (name, namespace) => lw.get(name, namespace),
    list: (namespace) => lw.list(namespace),
    synced: () => listed,
    waitSynced: (signal) =>
      listed
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            const onAbort = () => reject(new Error(`informer ${opts.path} stopped before it synced`));
            if (signal?.aborted) return onAbort();
            signal?.addEventListener('abort', onAbort, { once: true });
            syncWaiters.push(() => {
              signal?.removeEventListener('abort', onAbort);
              resolve();
            });
          }),
    stop: async () => {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(refreshTimer);
      await lw.stop();
      // A start() still in flight opens its watch after our stop(): wait for it and abort that one too.
      await inflight;
      await lw.stop();
    },
  };
}

/** `namespace/name` for namespaced objects, `name` for cluster-scoped ones. */
export const keyOf = (o: KubernetesObject): string =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : (o.metadata?.name ?? '');

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
