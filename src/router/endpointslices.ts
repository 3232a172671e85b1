/**
 * Backends from the EndpointSlices of a per-pool headless Service, through a client-node informer on
 * discovery.k8s.io/v1 EndpointSlices labelled kubernetes.io/service-name=<service>. Only ready, not
 * terminating endpoints count; the port comes from the slice. Works with @kubernetes/client-node 1.x and 2.x
 * (object-parameter list call, makeInformer).
 */
import { DiscoveryV1Api, KubeConfig, makeInformer, type V1EndpointSlice } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { BackendSource } from './discovery.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** The port of a slice to use: by name or number if given; else the one named "http"; else the first. */
export function slicePort(slice: V1EndpointSlice, want?: string | number): number | undefined {
  const ports = (slice.ports ?? []).filter((p) => typeof p.port === 'number' && (p.protocol === undefined || p.protocol === 'TCP'));
  let chosen;
  if (typeof want === 'number') chosen = ports.find((p) => p.port === want);
  else if (typeof want === 'string') chosen = ports.find((p) => p.name === want);
  else chosen = ports.find((p) => p.name === 'http') ?? ports[0];
  return chosen?.port;
}

function hostForUrl(address: string, addressType: string): string {
  return addressType === 'IPv6' || address.includes(':') ? `[${address}]` : address;
}

/**
 * The ready backends of a set of EndpointSlices as sorted, deduplicated base URLs
 * (`http://<address>:<port>`). An endpoint is ready when conditions.ready is not false (nil means ready,
 * per the API) and it is not terminating.
 */
export function readyBackendsFromSlices(slices: readonly V1EndpointSlice[], opts: { port?: string | number; scheme?: 'http' | 'https' } = {}): string[] {
  const out = new Set<string>();
  const scheme = opts.scheme ?? 'http';
  for (const slice of slices) {
    const port = slicePort(slice, opts.port);
    if (port === undefined) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false || ep.conditions?.terminating === true) continue;
      for (const addr of ep.addresses ?? []) {
        if (typeof addr !== 'string' || addr === '') continue;
        out.add(`${scheme}://${hostForUrl(addr, slice.addressType)}:${port}`);
      }
    }
  }
  return [...out].sort();
}

export interface EndpointSliceSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  service: string;
  port?: string | number | undefined;
  logger?: Logger | undefined;
  /** First restart delay after an informer error (doubles up to maxBackoffMs). */
  backoffMs?: number;
  maxBackoffMs?: number;
}

export class EndpointSliceSource implements BackendSource {
  synced = false;
  readonly description: string;
  private informer: ReturnType<typeof makeInformer<V1EndpointSlice>> | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  private last: string | undefined;
  /** Set by the error callback: client-node reports a failed list through it and still resolves start(). */
  private failed = false;
  /** While a (re)list runs, per-object callbacks would see a half-updated cache: emit once afterwards. */
  private listing = false;

  constructor(private readonly o: EndpointSliceSourceOptions) {
    this.description = `endpointslices(${o.namespace}/${o.service})`;
    this.backoff = o.backoffMs ?? 1000;
  }

  async start(onUpdate: (urls: string[]) => void): Promise<void> {
    const { kubeConfig, namespace, service } = this.o;
    const api = kubeConfig.makeApiClient(DiscoveryV1Api);
    const labelSelector = `${SERVICE_NAME_LABEL}=${service}`;
    const informer = makeInformer<V1EndpointSlice>(
      kubeConfig,
      `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
      () => api.listNamespacedEndpointSlice({ namespace, labelSelector }),
      labelSelector,
    );
    this.informer = informer;
    const emit = () => {
      if (this.listing || this.stopped) return;
      const urls = readyBackendsFromSlices(informer.list(namespace), { port: this.o.port });
      const key = urls.join(',');
      this.synced = true;
      this.backoff = this.o.backoffMs ?? 1000;
      if (key === this.last) return;
      this.last = key;
      onUpdate(urls);
    };
    informer.on('add', emit);
    informer.on('update', emit);
    informer.on('delete', emit);
    const scheduleRestart = (err: unknown) => {
      if (this.stopped) return;
      this.o.logger?.warn({ err: String((err as Error)?.message ?? err), source: this.description, retryInMs: this.backoff }, 'EndpointSlice list/watch failed; restarting');
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => {
        if (this.stopped) return;
        this.failed = false;
        this.listing = true;
        informer.start().then(
          () => { this.listing = false; if (!this.failed) emit(); },
          (e: unknown) => { this.listing = false; this.failed = true; scheduleRestart(e); },
        );
      }, this.backoff);
      this.restartTimer.unref();
      this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs ?? 30_000);
    };
    informer.on('error', (err: unknown) => {
      this.failed = true;
      scheduleRestart(err);
    });
    try {
      this.failed = false;
      this.listing = true;
      await informer.start();
      this.listing = false;
      if (!this.failed) emit(); // the initial list, even when it is empty
    } catch (err) {
      this.listing = false;
      this.failed = true;
      scheduleRestart(err);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer?.stop();
  }
}
