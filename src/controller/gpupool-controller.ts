import { CoreV1Api, KubernetesObjectApi, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GPUPOOL_KIND, GROUP, VERSION, type GPUPool } from '../api/index.js';
import { findCondition } from '../api/conditions.js';
import {
  boundedStep,
  buildPoolStatus,
  currentTarget,
  DEFAULT_STEP_LIMITS,
  demandedGPUs,
  desiredNodes,
  labelSelectorOf,
  observeNodes,
  poolStatusEqual,
  providerRequest,
  serviceDemandOf,
  type NodeLike,
  type ObjectRef,
  type ProviderRequest,
  type StepLimits,
} from '../pools/index.js';
import { FIELD_MANAGER, PLURALS } from './constants.js';
import type { EventSink } from './events.js';
import { apiMessageOf, isNotFound, makeClients, mergePatch, serverSideApply } from './kube.js';
import type { Logger } from './logger.js';

// The GPUPool reconciler. Level-triggered by a periodic resync over the GPUPool cache (pools are few; every
// pass re-derives everything): demand from the LLMServices in the informer cache, nodes from a LIST of Nodes
// filtered by the pool's own nodeSelector (never all Nodes), a bounded step of the provider's target, and
// the status written only when it changed (merge patch carrying the resourceVersion it was computed from).
// No finalizer: the operator creates nothing provider-side, it only moves targets of existing objects.

/** The provider-facing API calls, so the reconciler is testable without a cluster. */
export interface GPUPoolClient {
  listNodes(labelSelector: string): Promise<NodeLike[]>;
  /** GET the object (or its /scale subresource); undefined on 404. */
  get(ref: ObjectRef & { plural: string }, subresource?: 'scale'): Promise<unknown>;
  patchScale(ref: ObjectRef & { plural: string }, body: { spec: { replicas: number } }): Promise<void>;
  apply(ref: ObjectRef & { plural: string }, body: Record<string, unknown>): Promise<void>;
  /** API discovery: plural and scope of apiVersion/kind, undefined if the API does not serve it. */
  resolve(group: string, version: string, kind: string): Promise<{ plural: string; namespaced: boolean } | undefined>;
  patchPoolStatus(name: string, resourceVersion: string | undefined, status: unknown): Promise<void>;
}

export interface GPUPoolControllerDeps {
  pools: () => GPUPool[];
  /** Raw LLMServices from the informer cache. */
  services: () => ReadonlyArray<unknown>;
  client: GPUPoolClient;
  events?: EventSink;
  log: Logger;
  limits?: StepLimits;
  /** Resync period. Default 5 s. */
  resyncMs?: number;
  now?: () => Date;
}

export interface PoolReconcileResult {
  pool: string;
  demandedGPUs: number;
  targetNodes: number;
  desiredNodes: number;
  providerWrote: boolean;
  statusWritten: boolean;
}

export class GPUPoolController {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Status last written per pool and the resourceVersion it was computed from: a cache that has not caught up
   *  with our own write yet must not cause a second (409) write. */
  private readonly written = new Map<string, { fromRv: string | undefined; status: unknown }>();

  constructor(private readonly d: GPUPoolControllerDeps) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.reconcileAll().then(() => undefined).finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.d.resyncMs ?? 5_000);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over every pool; a failing pool is logged and does not stop the others. */
  async reconcileAll(): Promise<PoolReconcileResult[]> {
    const out: PoolReconcileResult[] = [];
    const pools = this.d.pools();
    const live = new Set(pools.map((p) => p.metadata.name));
    for (const k of this.written.keys()) if (!live.has(k)) this.written.delete(k);
    for (const pool of pools) {
      try {
        out.push(await this.reconcile(pool));
      } catch (err) {
        this.d.log.warn({ gpupool: pool.metadata.name, err: apiMessageOf(err) }, 'gpupool reconcile failed; retrying at the next resync');
      }
    }
    return out;
  }

  async reconcile(pool: GPUPool): Promise<PoolReconcileResult> {
    const name = pool.metadata.name;
    const spec = pool.spec;
    const services = this.d.services().flatMap((s) => serviceDemandOf(s) ?? []);
    const demand = demandedGPUs(name, services);
    const target = desiredNodes(demand, spec);

    const selector = labelSelectorOf(spec.nodeSelector);
    const nodes = selector ? observeNodes(await this.d.client.listNodes(selector), spec.nodeSelector ?? {}, spec.resourceName) : undefined;

    let desired = target.nodes;
    let providerError: string | undefined;
    let providerWrote = false;
    try {
      const r = await this.provide(pool, target.nodes);
      desired = r.desired;
      providerWrote = r.wrote;
    } catch (err) {
      providerError = apiMessageOf(err);
    }

    const prev = pool.status;
    const next = buildPoolStatus(
      prev,
      { generation: pool.metadata.generation, demandedGPUs: demand, gpusPerNode: spec.gpusPerNode, maxNodes: spec.maxNodes, target, desiredNodes: desired, nodes, providerType: spec.provider.type, providerError },
      (this.d.now ?? (() => new Date()))(),
    );
    let statusWritten = false;
    const mine = this.written.get(name);
    const echo = mine !== undefined && mine.fromRv === pool.metadata.resourceVersion && poolStatusEqual(mine.status, next);
    if (!echo && !poolStatusEqual(prev ?? {}, next)) {
      await this.d.client.patchPoolStatus(name, pool.metadata.resourceVersion, next);
      this.written.set(name, { fromRv: pool.metadata.resourceVersion, status: next });
      statusWritten = true;
      this.d.log.info({ gpupool: name, demandedGPUs: demand, desiredNodes: desired, readyNodes: next.readyNodes }, 'gpupool status updated');
      await this.notify(pool, prev, next);
    }
    return { pool: name, demandedGPUs: demand, targetNodes: target.nodes, desiredNodes: desired, providerWrote, statusWritten };
  }

  /** Moves the provider's target one bounded step toward `targetNodes`; returns what it is set to now. */
  private async provide(pool: GPUPool, targetNodes: number): Promise<{ desired: number; wrote: boolean }> {
    const spec = pool.spec;
    const probe = providerRequest(spec, targetNodes);
    if (probe.kind === 'none') return { desired: targetNodes, wrote: false };
    const ref = await this.resolveRef(probe);
    const obj = await this.d.client.get(ref, probe.kind === 'scale' ? 'scale' : undefined);
    if (obj === undefined) throw new Error(`${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name} not found`);
    const current = currentTarget(probe, obj, spec.gpusPerNode);
    const step = boundedStep(current, targetNodes, this.d.limits ?? DEFAULT_STEP_LIMITS);
    if (step === current) return { desired: step, wrote: false };
    const req = providerRequest(spec, step);
    if (req.kind === 'scale') await this.d.client.patchScale(ref, req.body);
    else if (req.kind === 'apply') await this.d.client.apply(ref, req.body);
    this.d.log.info({ gpupool: pool.metadata.name, provider: spec.provider.type, from: current ?? null, to: step, target: targetNodes }, 'moved the provider target');
    return { desired: step, wrote: true };
  }

  private async resolveRef(req: Exclude<ProviderRequest, { kind: 'none' }>): Promise<ObjectRef & { plural: string }> {
    if (req.ref.plural) return { ...req.ref, plural: req.ref.plural };
    const r = await this.d.client.resolve(req.ref.group, req.ref.version, req.ref.kind);
    if (!r) throw new Error(`${req.ref.kind} is not served by ${req.ref.group}/${req.ref.version}`);
    if (r.namespaced && !req.ref.namespace) throw new Error(`${req.ref.kind} is namespaced: spec.provider.scale.namespace is required`);
    const { namespace, ...rest } = req.ref;
    return { ...rest, ...(r.namespaced && namespace ? { namespace } : {}), plural: r.plural };
  }

  private async notify(pool: GPUPool, prev: GPUPool['status'], next: NonNullable<GPUPool['status']>): Promise<void> {
    if (!this.d.events) return;
    const c0 = findCondition(prev?.conditions, 'CapacityProvisioned');
    const c1 = findCondition(next.conditions, 'CapacityProvisioned');
    if (!c1 || (c0?.status === c1.status && c0.reason === c1.reason)) return;
    const ref = { apiVersion: API_VERSION, kind: GPUPOOL_KIND, name: pool.metadata.name, ...(pool.metadata.uid ? { uid: pool.metadata.uid } : {}) };
    if (c1.status === 'True') await this.d.events.emit(ref, 'Normal', 'NodesReady', 'Scale', c1.message);
    else if (c1.reason !== 'WaitingForNodes') await this.d.events.emit(ref, 'Warning', c1.reason, 'Scale', c1.message);
  }
}

/** A KubernetesObjectApi only to reach its (cached) discovery lookup. */
class Discovery extends KubernetesObjectApi {
  lookup(apiVersion: string, kind: string) {
    return this.resource(apiVersion, kind);
  }
}

/** The GPUPoolClient over client-node. RBAC: see GPUPOOL_CLUSTER_RULES in rbac.ts. */
export function kubeGPUPoolClient(kc: KubeConfig): GPUPoolClient {
  const { custom } = makeClients(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(Discovery);
  const orUndefined = async <T>(p: Promise<T>): Promise<T | undefined> => {
    try {
      return await p;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  return {
    async listNodes(labelSelector) {
      return (await core.listNode({ labelSelector })).items as NodeLike[];
    },
    get(ref, subresource) {
      const base = { group: ref.group, version: ref.version, plural: ref.plural, name: ref.name };
      if (subresource === 'scale') {
        return orUndefined(ref.namespace ? custom.getNamespacedCustomObjectScale({ ...base, namespace: ref.namespace }) : custom.getClusterCustomObjectScale(base));
      }
      return orUndefined(ref.namespace ? custom.getNamespacedCustomObject({ ...base, namespace: ref.namespace }) : custom.getClusterCustomObject(base));
    },
    async patchScale(ref, body) {
      const base = { group: ref.group, version: ref.version, plural: ref.plural, name: ref.name, body, fieldManager: FIELD_MANAGER };
      if (ref.namespace) await custom.patchNamespacedCustomObjectScale({ ...base, namespace: ref.namespace }, mergePatch());
      else await custom.patchClusterCustomObjectScale(base, mergePatch());
    },
    async apply(ref, body) {
      const base = { group: ref.group, version: ref.version, plural: ref.plural, name: ref.name, body, fieldManager: FIELD_MANAGER, force: true };
      if (ref.namespace) await custom.patchNamespacedCustomObject({ ...base, namespace: ref.namespace }, serverSideApply());
      else await custom.patchClusterCustomObject(base, serverSideApply());
    },
    async resolve(group, version, kind) {
      const r = await discovery.lookup(group ? `${group}/${version}` : version, kind);
      return r ? { plural: r.name, namespaced: r.namespaced } : undefined;
    },
    async patchPoolStatus(name, resourceVersion, status) {
      await custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURALS.gpupools, name, body: { ...(resourceVersion ? { metadata: { resourceVersion } } : {}), status }, fieldManager: FIELD_MANAGER },
        mergePatch(),
      );
    },
  };
}
