import type { Provider } from '../api/gpupool.js';

// Providers turn a desired node count into a write on some other controller's object. The request
// *shapes* are pure (and unit-tested); executing them is the controller's job (src/controller/gpupool-*.ts)
// through a small ProviderClient, so this module has no client-node dependency.
//
//   None        report only (a cluster autoscaler reacts to pending pods)
//   ClusterAPI  MachineDeployment /scale subresource: merge patch {spec:{replicas}}
//   Karpenter   NodePool spec.limits[<resourceName>] = desiredNodes × gpusPerNode, server-side apply
//               of that one field (field manager melange-operator; Karpenter owns the rest)
//   Scale       any object's /scale subresource; the plural is resolved by API discovery from kind

export const CAPI_GROUP = 'cluster.x-k8s.io';
export const CAPI_VERSION = 'v1beta1';
export const KARPENTER_GROUP = 'karpenter.sh';
export const KARPENTER_VERSION = 'v1';

export interface ObjectRef {
  group: string;
  version: string;
  /** Resolved plural; for `Scale`, undefined until discovery resolved it from kind. */
  plural?: string;
  kind: string;
  namespace?: string;
  name: string;
}

export type ProviderRequest =
  | { kind: 'none' }
  /** GET then merge-patch `<ref>/scale` with `body`. */
  | { kind: 'scale'; ref: ObjectRef; replicas: number; body: { spec: { replicas: number } } }
  /** Server-side apply (force) of `body` on the cluster-scoped object. */
  | { kind: 'apply'; ref: ObjectRef; body: Record<string, unknown>; limit: string };

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.lastIndexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export interface ProviderPool {
  gpusPerNode: number;
  resourceName: string;
  provider: Provider;
}

/** The write that makes the provider target `desiredNodes` nodes. */
export function providerRequest(pool: ProviderPool, desiredNodes: number): ProviderRequest {
  const p = pool.provider;
  switch (p.type) {
    case 'ClusterAPI': {
      if (!p.clusterAPI) throw new Error('provider ClusterAPI requires clusterAPI');
      return {
        kind: 'scale',
        ref: { group: CAPI_GROUP, version: CAPI_VERSION, plural: 'machinedeployments', kind: 'MachineDeployment', namespace: p.clusterAPI.namespace, name: p.clusterAPI.name },
        replicas: desiredNodes,
        body: { spec: { replicas: desiredNodes } },
      };
    }
    case 'Karpenter': {
      if (!p.karpenter) throw new Error('provider Karpenter requires karpenter');
      const limit = String(desiredNodes * pool.gpusPerNode);
      return {
        kind: 'apply',
        ref: { group: KARPENTER_GROUP, version: KARPENTER_VERSION, plural: 'nodepools', kind: 'NodePool', name: p.karpenter.nodePool },
        limit,
        body: {
          apiVersion: `${KARPENTER_GROUP}/${KARPENTER_VERSION}`,
          kind: 'NodePool',
          metadata: { name: p.karpenter.nodePool },
          spec: { limits: { [pool.resourceName]: limit } },
        },
      };
    }
    case 'Scale': {
      if (!p.scale) throw new Error('provider Scale requires scale');
      const { group, version } = splitApiVersion(p.scale.apiVersion);
      return {
        kind: 'scale',
        ref: { group, version, kind: p.scale.kind, ...(p.scale.namespace ? { namespace: p.scale.namespace } : {}), name: p.scale.name },
        replicas: desiredNodes,
        body: { spec: { replicas: desiredNodes } },
      };
    }
    default:
      return { kind: 'none' };
  }
}

/** API path of an object (and its /scale subresource): the generic path any resource with /scale serves. */
export function objectPath(ref: ObjectRef & { plural: string }, subresource?: 'scale' | 'status'): string {
  const base = ref.group === '' ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
  const ns = ref.namespace ? `/namespaces/${ref.namespace}` : '';
  return `${base}${ns}/${ref.plural}/${ref.name}${subresource ? `/${subresource}` : ''}`;
}

/**
 * The provider's current node target, from the object the request addresses: `/scale` spec.replicas,
 * or for Karpenter limits[resourceName] / gpusPerNode (rounded down). Undefined when unset.
 */
export function currentTarget(req: ProviderRequest, obj: unknown, gpusPerNode: number): number | undefined {
  const o = (typeof obj === 'object' && obj !== null ? obj : {}) as { spec?: { replicas?: unknown; limits?: Record<string, unknown> } };
  if (req.kind === 'scale') return typeof o.spec?.replicas === 'number' ? o.spec.replicas : undefined;
  if (req.kind === 'apply') {
    const resource = Object.keys((req.body.spec as { limits: Record<string, string> }).limits)[0] ?? '';
    const v = o.spec?.limits?.[resource];
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]+$/.test(v) ? Number.parseInt(v, 10) : undefined;
    return n === undefined ? undefined : Math.floor(n / gpusPerNode);
  }
  return undefined;
}
