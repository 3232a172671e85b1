import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { API_VERSION, LLMSERVICE_KIND, type LLMService } from '../api/index.js';
import type { RouterConfigInput } from '../router/config.js';
import { APPLIED_HASH_ANNOTATION, LABELS, OPERATOR_NAME } from './constants.js';
import { canonicalJson, labelValue, selectorLabels, type DeploymentManifest } from './desired.js';

// What the operator runs in front of one LLMService's model servers (spec.router.enabled): pure builders.
//
//   ConfigMap  <svc>-router   config.yaml: the router config (src/router/config.ts) — buckets from the spec,
//                             split from the solve restricted to pools with ready capacity, pools discovered
//                             from per-pool headless Services. The router hot-reloads it (no restart).
//   Service    <svc>-<pool>   headless, selects that pool's model-server pods; the router reads its EndpointSlices.
//   Deployment <svc>-router   `melangectl router --config /etc/melange-router/config.yaml`.
//   Service    <svc>          in front of the router: the service's OpenAI-compatible endpoint.
//
// All carry an owner reference to the LLMService (garbage-collected with it).

export const ROUTER_CONFIG_KEY = 'config.yaml';
export const ROUTER_CONFIG_DIR = '/etc/melange-router';
export const ROUTER_PORT = 8080;
export const ROUTER_METRICS_PORT = 9090;
export const DEFAULT_MODEL_PORT = 8000;

export const routerName = (service: string) => `${service}-router`;
export const poolServiceName = (service: string, pool: string) => `${service}-${pool}`;

type Obj = Record<string, unknown>;

export interface CoreManifest {
  apiVersion: 'v1';
  kind: 'ConfigMap' | 'Service';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string>; ownerReferences: Obj[] };
  data?: Record<string, string>;
  spec?: Obj;
}

export interface SplitEntry {
  input: number;
  output: number;
  weights: Record<string, number>;
}

export interface RouterPool {
  name: string;
  gpuType: string;
}

const ownerRef = (s: LLMService): Obj => ({
  apiVersion: API_VERSION,
  kind: LLMSERVICE_KIND,
  name: s.metadata.name,
  uid: s.metadata.uid ?? '',
  controller: true,
  blockOwnerDeletion: true,
});

function labels(s: LLMService, component: string): Record<string, string> {
  return {
    [LABELS.name]: labelValue(s.metadata.name),
    [LABELS.instance]: labelValue(s.metadata.name),
    [LABELS.component]: component,
    [LABELS.partOf]: 'melange',
    [LABELS.managedBy]: OPERATOR_NAME,
  };
}

/**
 * The selector of the router pods. Not melange.dev/service: that label marks the model-server Deployments
 * and pods of a service (one per pool), which the router is not.
 */
export const ROUTER_LABEL = 'melange.dev/router';
export const routerSelector = (service: string): Record<string, string> => ({ [ROUTER_LABEL]: labelValue(service) });

/**
 * The split the router gets: each bucket's solved weights restricted to pools with ready capacity and
 * renormalised (make before break: traffic moves to a new GPU type only once it can serve). A bucket whose
 * solved pools are all not ready yet goes to the ready pools in proportion to their ready replicas (the old
 * capacity keeps serving it). With no ready pool at all the solved split is passed through unchanged.
 */
export function routedSplit(split: readonly SplitEntry[], ready: Readonly<Record<string, number>>): SplitEntry[] {
  const readyPools = Object.entries(ready).filter(([, n]) => n > 0);
  if (readyPools.length === 0) return split.map((s) => ({ input: s.input, output: s.output, weights: { ...s.weights } }));
  const totalReady = readyPools.reduce((a, [, n]) => a + n, 0);
  return split.map((s) => {
    const kept = Object.entries(s.weights).filter(([p, w]) => w > 0 && (ready[p] ?? 0) > 0);
    const sum = kept.reduce((a, [, w]) => a + w, 0);
    const weights =
      sum > 0
        ? Object.fromEntries(kept.map(([p, w]) => [p, round4(w / sum)]))
        : Object.fromEntries(readyPools.map(([p, n]) => [p, round4(n / totalReady)]));
    return { input: s.input, output: s.output, weights };
  });
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** The router config for a service: pools by discovery of `<svc>-<pool>` headless Services. */
export function routerConfig(service: LLMService, pools: readonly RouterPool[], split: readonly SplitEntry[]): RouterConfigInput {
  const namespace = service.metadata.namespace ?? 'default';
  const names = new Set(pools.map((p) => p.name));
  return {
    service: { namespace, name: service.metadata.name },
    buckets: { inputEdges: [...service.spec.buckets.inputEdges], outputEdges: [...service.spec.buckets.outputEdges] },
    // Weights only onto pools the config knows (the router rejects unknown ones).
    split: split
      .map((s) => ({ input: s.input, output: s.output, weights: Object.fromEntries(Object.entries(s.weights).filter(([p]) => names.has(p))) }))
      .filter((s) => Object.keys(s.weights).length > 0),
    pools: pools.map((p) => ({ name: p.name, gpuType: p.gpuType, discovery: { namespace, service: poolServiceName(service.metadata.name, p.name), port: 'http' } })),
  };
}

export function buildRouterConfigMap(service: LLMService, config: RouterConfigInput): CoreManifest {
  const m: CoreManifest = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: routerName(service.metadata.name),
      namespace: service.metadata.namespace ?? 'default',
      labels: labels(service, 'router'),
      annotations: {},
      ownerReferences: [ownerRef(service)],
    },
    data: { [ROUTER_CONFIG_KEY]: stringify(config) },
  };
  return withHash(m);
}

/** The model-server port: the first container's port named "http", else its first port, else 8000. */
export function modelPort(service: LLMService): number {
  const c = service.spec.template.spec.containers[0] as Obj | undefined;
  const ports = Array.isArray(c?.ports) ? (c.ports as Array<{ name?: string; containerPort?: number }>) : [];
  const p = ports.find((x) => x.name === 'http') ?? ports[0];
  return typeof p?.containerPort === 'number' ? p.containerPort : DEFAULT_MODEL_PORT;
}

/** Headless Service of one pool's model-server pods (the router discovers backends from its EndpointSlices). */
export function buildPoolService(service: LLMService, pool: RouterPool): CoreManifest {
  const svc = service.metadata.name;
  return withHash({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: poolServiceName(svc, pool.name),
      namespace: service.metadata.namespace ?? 'default',
      labels: { ...labels(service, 'model-server'), [LABELS.service]: labelValue(svc), [LABELS.pool]: labelValue(pool.name), [LABELS.gpuType]: labelValue(pool.gpuType) },
      annotations: {},
      ownerReferences: [ownerRef(service)],
    },
    spec: {
      clusterIP: 'None',
      // Endpoints of starting pods are not ready; the router only uses ready ones.
      publishNotReadyAddresses: false,
      selector: selectorLabels(svc, pool.name),
      ports: [{ name: 'http', port: modelPort(service), targetPort: modelPort(service), protocol: 'TCP' }],
    },
  });
}

/** The Service `<svc>` in front of the router: what clients call. */
export function buildRouterService(service: LLMService): CoreManifest {
  const svc = service.metadata.name;
  return withHash({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: svc, namespace: service.metadata.namespace ?? 'default', labels: labels(service, 'router'), annotations: {}, ownerReferences: [ownerRef(service)] },
    spec: {
      selector: routerSelector(svc),
      ports: [
        { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
        { name: 'metrics', port: ROUTER_METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  });
}

/**
 * The router Deployment. The config is mounted from the ConfigMap and hot-reloaded by the router, so a
 * new split does not change the pod template (no restart). Its pods use the namespace's default
 * ServiceAccount unless the template is customised: EndpointSlice discovery needs `discovery.k8s.io
 * endpointslices: list, watch` for that ServiceAccount (docs/loop.md) — the router's concern, not the operator's.
 */
export function buildRouterDeployment(service: LLMService, image: string): DeploymentManifest {
  const svc = service.metadata.name;
  const own = { ...labels(service, 'router'), ...routerSelector(svc) };
  const m: DeploymentManifest = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: routerName(svc), namespace: service.metadata.namespace ?? 'default', labels: own, annotations: {}, ownerReferences: [ownerRef(service)] },
    spec: {
      replicas: service.spec.router.replicas,
      selector: { matchLabels: routerSelector(svc) },
      template: {
        metadata: { labels: own },
        spec: {
          containers: [
            {
              name: 'router',
              image,
              command: ['node', 'bin/melangectl.js'],
              args: ['router', '--config', `${ROUTER_CONFIG_DIR}/${ROUTER_CONFIG_KEY}`, '--host', '0.0.0.0', '--port', String(ROUTER_PORT), '--metrics-port', String(ROUTER_METRICS_PORT)],
              ports: [
                { name: 'http', containerPort: ROUTER_PORT, protocol: 'TCP' },
                { name: 'metrics', containerPort: ROUTER_METRICS_PORT, protocol: 'TCP' },
              ],
              volumeMounts: [{ name: 'config', mountPath: ROUTER_CONFIG_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: routerName(svc) } }],
        },
      },
    },
  };
  m.metadata.annotations[APPLIED_HASH_ANNOTATION] = hashOf(m);
  return m;
}

function withHash(m: CoreManifest): CoreManifest {
  m.metadata.annotations[APPLIED_HASH_ANNOTATION] = hashOf(m);
  return m;
}

const hashOf = (m: unknown) => createHash('sha256').update(canonicalJson(m)).digest('hex').slice(0, 16);
