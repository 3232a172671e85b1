import { createHash } from 'node:crypto';
import { API_VERSION, LLMSERVICE_KIND, parseDurationMs, type GPUPool, type LLMService } from '../api/index.js';
import { APPLIED_HASH_ANNOTATION, LABELS, OPERATOR_NAME } from './constants.js';

// The Deployment the operator wants for one (service, GPU pool): a pure function of the LLMService, the
// GPUPool and the replica count. The user's pod template is passed through untouched except for what the
// pool dictates (node selector, tolerations, the GPU extended resource on the model-server container),
// and the labels that tie the pods to the service and pool. The result is a wire-format object for
// server-side apply: SSA owns exactly these fields and removes ones we stop sending.

type Obj = Record<string, unknown>;

export interface DeploymentManifest {
  apiVersion: 'apps/v1';
  kind: 'Deployment';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string>; ownerReferences: Obj[] };
  spec: { replicas: number; progressDeadlineSeconds?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: Obj; spec: Obj } };
}

export const deploymentName = (service: string, pool: string) => `${service}-${pool}`;

/**
 * A valid label value (≤ 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends). Long or odd values keep a
 * readable prefix and a hash suffix, so two different inputs never collide.
 */
export function labelValue(v: string): string {
  const clean = v.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (clean === v && v.length <= 63) return v;
  const hash = createHash('sha256').update(v).digest('hex').slice(0, 8);
  return `${clean.slice(0, 54).replace(/[^A-Za-z0-9]+$/, '')}-${hash}`.replace(/^-/, '');
}

/** The labels that select one service's pods on one pool (immutable once a Deployment exists). */
export const selectorLabels = (service: string, pool: string): Record<string, string> => ({
  [LABELS.service]: labelValue(service),
  [LABELS.pool]: labelValue(pool),
});

export interface DesiredDeploymentInput {
  service: LLMService;
  pool: GPUPool;
  gpusPerReplica: number;
  replicas: number;
}

export function buildDeployment({ service, pool, gpusPerReplica, replicas }: DesiredDeploymentInput): DeploymentManifest {
  const svcName = service.metadata.name;
  const namespace = service.metadata.namespace ?? 'default';
  const poolName = pool.metadata.name;
  const userMeta = service.spec.template.metadata ?? {};
  const own = {
    [LABELS.name]: userMeta.labels?.[LABELS.name] ?? labelValue(svcName),
    [LABELS.instance]: labelValue(svcName),
    [LABELS.component]: 'model-server',
    [LABELS.partOf]: 'melange',
    [LABELS.managedBy]: OPERATOR_NAME,
    [LABELS.gpuType]: labelValue(pool.spec.gpuType),
    ...selectorLabels(svcName, poolName),
  };
  const podSpec = withPool(structuredClone(service.spec.template.spec) as Obj, pool, gpusPerReplica);
  const manifest: DeploymentManifest = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: deploymentName(svcName, poolName),
      namespace,
      labels: own,
      annotations: {},
      ownerReferences: [
        // blockOwnerDeletion: foreground deletion of the LLMService waits for its Deployments.
        { apiVersion: API_VERSION, kind: LLMSERVICE_KIND, name: svcName, uid: service.metadata.uid ?? '', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      replicas,
      // Pods that do not become ready within policy.provisioningTimeout (unschedulable: no nodes of the GPU
      // type) make the Deployment report Progressing=False/ProgressDeadlineExceeded (availability.ts).
      progressDeadlineSeconds: progressDeadlineSecondsOf(service),
      selector: { matchLabels: selectorLabels(svcName, poolName) },
      template: {
        metadata: {
          labels: { ...(userMeta.labels ?? {}), ...own },
          ...(userMeta.annotations && Object.keys(userMeta.annotations).length > 0 ? { annotations: { ...userMeta.annotations } } : {}),
        },
        spec: podSpec,
      },
    },
  };
  manifest.metadata.annotations[APPLIED_HASH_ANNOTATION] = appliedHash(manifest);
  return manifest;
}

/** spec.policy.provisioningTimeout in whole seconds (at least 1). */
export function progressDeadlineSecondsOf(service: LLMService): number {
  return Math.max(1, Math.ceil(parseDurationMs(service.spec.policy.provisioningTimeout) / 1000));
}

/** Node selector and tolerations of the pool; the GPU resource on the first container (the model server). */
function withPool(spec: Obj, pool: GPUPool, gpusPerReplica: number): Obj {
  const p = pool.spec;
  if (p.nodeSelector && Object.keys(p.nodeSelector).length > 0) {
    spec.nodeSelector = { ...(isObj(spec.nodeSelector) ? spec.nodeSelector : {}), ...p.nodeSelector };
  }
  if (p.tolerations && p.tolerations.length > 0) {
    const mine = Array.isArray(spec.tolerations) ? (spec.tolerations as unknown[]) : [];
    const seen = new Set(mine.map((t) => canonicalJson(t)));
    spec.tolerations = [...mine, ...p.tolerations.filter((t) => !seen.has(canonicalJson(t)))];
  }
  const containers = Array.isArray(spec.containers) ? (spec.containers as Obj[]) : [];
  const first = containers[0];
  if (first) {
    const resources = isObj(first.resources) ? first.resources : {};
    const gpus = String(gpusPerReplica);
    // Extended resources cannot be overcommitted: requests must equal limits.
    first.resources = {
      ...resources,
      limits: { ...(isObj(resources.limits) ? resources.limits : {}), [p.resourceName]: gpus },
      requests: { ...(isObj(resources.requests) ? resources.requests : {}), [p.resourceName]: gpus },
    };
  }
  return spec;
}

/** Hash of the manifest without replicas: equal hash + equal replicas = nothing to apply. */
export function appliedHash(m: DeploymentManifest): string {
  const { [APPLIED_HASH_ANNOTATION]: _drop, ...annotations } = m.metadata.annotations;
  const body = { ...m, metadata: { ...m.metadata, annotations }, spec: { ...m.spec, replicas: 0 } };
  return createHash('sha256').update(canonicalJson(body)).digest('hex').slice(0, 16);
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON with sorted object keys, so equal values hash equally whatever order the API server returned. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
