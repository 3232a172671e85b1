import type { V1Deployment } from '@kubernetes/client-node';
import { parseGPUPool, parseGPUProfile, parseLLMService, type GPUPool, type GPUProfile, type LLMService } from '../api/index.js';
import { APPLIED_HASH_ANNOTATION, LABELS } from './constants.js';
import type { Informer } from './informer.js';
import type { PoolObservation } from './transition.js';

// The reconciler's read model: a synced snapshot of the cluster, read from informer caches (never from the
// API per reconcile). Everything crosses this boundary parsed with the same zod schemas as the CRDs.

export interface ObservedDeployment extends PoolObservation {
  name: string;
  /** melange.dev/applied-hash as last applied (undefined if someone else created it). */
  appliedHash?: string;
  /**
   * The Deployment's Progressing condition (availability.ts): ProgressDeadlineExceeded means its pods did not
   * become ready within spec.progressDeadlineSeconds. `since` is its lastUpdateTime (else lastTransitionTime).
   */
  progressing?: { status: string; reason: string; since?: string };
}

export interface ClusterView {
  /** The raw LLMService from the cache (parse before use), or undefined if gone. */
  service(namespace: string, name: string): unknown;
  profiles(namespace: string): GPUProfile[];
  pools(): GPUPool[];
  /** Deployments controlled by the LLMService with this uid. */
  deployments(namespace: string, ownerUid: string): ObservedDeployment[];
  /**
   * Every LLMService in the cache, parsed (unparseable ones left out): the snapshot the joint decision over a
   * shared capped pool is made from. Optional: a view without it plans every service alone.
   */
  services?(): LLMService[];
}

/** Parses cached objects once per resourceVersion. */
class ParseCache<T> {
  private readonly byUid = new Map<string, { rv: string; value: T | undefined }>();
  constructor(private readonly parse: (o: unknown) => T | undefined) {}
  get(o: { metadata?: { uid?: string; resourceVersion?: string } }): T | undefined {
    const uid = o.metadata?.uid ?? '';
    const rv = o.metadata?.resourceVersion ?? '';
    const hit = this.byUid.get(uid);
    if (hit && hit.rv === rv) return hit.value;
    const value = this.parse(o);
    this.byUid.set(uid, { rv, value });
    return value;
  }
  retain(live: ReadonlySet<string>): void {
    for (const uid of this.byUid.keys()) if (!live.has(uid)) this.byUid.delete(uid);
  }
}

export interface Caches {
  services: Informer<{ metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string } }>;
  profiles: Informer<{ metadata?: { uid?: string; resourceVersion?: string } }>;
  pools: Informer<{ metadata?: { uid?: string; resourceVersion?: string } }>;
  deployments: Informer<V1Deployment>;
}

export class InformerView implements ClusterView {
  private readonly profileCache = new ParseCache<GPUProfile>((o) => {
    const r = parseGPUProfile(o, { strict: false });
    if (!r.ok) this.onInvalid('GPUProfile', o, r.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
    return r.ok ? r.value : undefined;
  });
  private readonly poolCache = new ParseCache<GPUPool>((o) => {
    const r = parseGPUPool(o, { strict: false });
    if (!r.ok) this.onInvalid('GPUPool', o, r.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
    return r.ok ? r.value : undefined;
  });

  // Status is read leniently: an unreadable status must not hide the spec from the joint decision.
  private readonly serviceCache = new ParseCache<LLMService>((o) => {
    const r = parseLLMService(o, { strict: false });
    if (r.ok) return r.value;
    const { status: _s, ...rest } = o as Record<string, unknown>;
    const bare = parseLLMService(rest, { strict: false });
    return bare.ok ? bare.value : undefined;
  });

  constructor(
    private readonly caches: Caches,
    private readonly onInvalid: (kind: string, obj: unknown, errors: string) => void = () => {},
  ) {}

  service(namespace: string, name: string): unknown {
    return this.caches.services.get(name, namespace);
  }

  services(): LLMService[] {
    return this.caches.services.list().flatMap((o) => this.serviceCache.get(o) ?? []);
  }

  profiles(namespace: string): GPUProfile[] {
    return this.caches.profiles.list(namespace).flatMap((o) => this.profileCache.get(o) ?? []);
  }

  pools(): GPUPool[] {
    return this.caches.pools.list().flatMap((o) => this.poolCache.get(o) ?? []);
  }

  deployments(namespace: string, ownerUid: string): ObservedDeployment[] {
    return this.caches.deployments
      .list(namespace)
      .filter((d) => d.metadata?.ownerReferences?.some((r) => r.controller && r.uid === ownerUid))
      .map(observeDeployment);
  }

  /** Forget parsed objects that left the caches (called now and then by the manager). */
  prune(): void {
    const uids = (inf: Informer<{ metadata?: { uid?: string } }>) => new Set(inf.list().map((o) => o.metadata?.uid ?? ''));
    this.profileCache.retain(uids(this.caches.profiles));
    this.poolCache.retain(uids(this.caches.pools));
    this.serviceCache.retain(uids(this.caches.services));
  }
}

export function observeDeployment(d: V1Deployment): ObservedDeployment {
  const hash = d.metadata?.annotations?.[APPLIED_HASH_ANNOTATION];
  const p = d.status?.conditions?.find((c) => c.type === 'Progressing');
  const since = p ? (p.lastUpdateTime ?? p.lastTransitionTime) : undefined;
  return {
    name: d.metadata?.name ?? '',
    pool: d.metadata?.labels?.[LABELS.pool] ?? '',
    exists: true,
    replicas: d.spec?.replicas ?? 1,
    readyReplicas: d.status?.readyReplicas ?? 0,
    observed: (d.status?.observedGeneration ?? -1) >= (d.metadata?.generation ?? 0),
    ...(hash ? { appliedHash: hash } : {}),
    ...(p ? { progressing: { status: p.status, reason: p.reason ?? '', ...(since ? { since: new Date(since).toISOString() } : {}) } } : {}),
  };
}
