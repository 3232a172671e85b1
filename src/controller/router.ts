import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { API_VERSION, LLMSERVICE_KIND, type LatencyModel, type LLMService } from '../api/index.js';
import type { RouterConfigInput } from '../router/config.js';
import { APPLIED_HASH_ANNOTATION, LABELS, OPERATOR_NAME } from './constants.js';
import { canonicalJson, labelValue, selectorLabels, type DeploymentManifest } from './desired.js';
import { routerDefaults, type RouterDefaults } from './router-defaults.js';

// What the operator runs in front of one LLMService's model servers (spec.router.enabled): pure builders.
//
//   ConfigMap  <svc>-router   config.yaml: the router config (src/router/config.ts) — buckets from the spec,
//                             split from the solve restricted to pools with ready capacity, pools discovered
//                             by DNS from per-pool headless Services. The router hot-reloads it (no restart).
//   Service    <svc>-<pool>   headless, selects that pool's model-server pods; cluster DNS answers its name
//                             with the addresses of the ready ones, which the router resolves every few seconds.
//   Deployment <svc>-router   `melangectl router --config /etc/melange-router/config.yaml`, settings from the
//                             operator's router defaults (router-defaults.ts) under spec.router.{image,replicas}.
//   Service    <svc>          in front of the router: the service's OpenAI-compatible endpoint.
//
// All carry an owner reference to the LLMService (garbage-collected with it).

export const ROUTER_CONFIG_KEY = 'config.yaml';
export const ROUTER_CONFIG_DIR = '/etc/melange-router';
/** Port of the metrics port of the Service `<svc>` (targets the container port named metrics, whatever its number). */
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
  /** The GPU type's latency model (its GPUProfile's spec.latency), for the router's SLO guard; absent = none. */
  latency?: LatencyModel | undefined;
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

/**
 * The DNS name the router resolves for a pool: the headless Service `<svc>-<pool>` as `<name>.<namespace>.svc`,
 * deliberately without the cluster domain. The cluster domain is a kubelet setting (`--cluster-domain`, often
 * but not always `cluster.local`) that no API object exposes to the operator; the router pod's
 * /etc/resolv.conf carries it in its search list (`<ns>.svc.<domain> svc.<domain> <domain>`), and the router's
 * DNS discovery expands names with that list like the system resolver does (src/router/dns.ts).
 */
export const poolDnsName = (service: string, namespace: string, pool: string) => `${poolServiceName(service, pool)}.${namespace}.svc`;

/** A latency model with its keys in one fixed order (the ConfigMap's text, and so its hash, must not depend on the source's). */
const latencyOf = (m: LatencyModel): LatencyModel => ({
  overheadMillis: m.overheadMillis,
  prefillMillisPerToken: m.prefillMillisPerToken,
  decodeStepMillis: m.decodeStepMillis,
  decodeMillisPerContextToken: m.decodeMillisPerContextToken ?? 0,
});

/**
 * The router config for a service: each pool's backends by DNS discovery of its headless Service
 * `<svc>-<pool>` (the ready endpoints, needs no API access), on the model-server port that Service publishes.
 * A pool with a latency model carries it; with models on at least two pools the router's SLO guard is on
 * (routing.sloGuard, at the service's TPOT SLO and the router's default threshold). Otherwise no `routing`
 * key at all, so the file of a service without models is what it was before models existed.
 */
export function routerConfig(service: LLMService, pools: readonly RouterPool[], split: readonly SplitEntry[]): RouterConfigInput {
  const namespace = service.metadata.namespace ?? 'default';
  const names = new Set(pools.map((p) => p.name));
  const withModel = pools.filter((p) => p.latency !== undefined).length;
  return {
    service: { namespace, name: service.metadata.name },
    buckets: { inputEdges: [...service.spec.buckets.inputEdges], outputEdges: [...service.spec.buckets.outputEdges] },
    // Weights only onto pools the config knows (the router rejects unknown ones).
    split: split
      .map((s) => ({ input: s.input, output: s.output, weights: Object.fromEntries(Object.entries(s.weights).filter(([p]) => names.has(p))) }))
      .filter((s) => Object.keys(s.weights).length > 0),
    pools: pools.map((p) => ({
      name: p.name,
      gpuType: p.gpuType,
      dns: { name: poolDnsName(service.metadata.name, namespace, p.name), port: modelPort(service) },
      ...(p.latency !== undefined ? { latency: latencyOf(p.latency) } : {}),
    })),
    // The guard compares pools by their models: with fewer than two there is nowhere to redirect to.
    ...(withModel >= 2 ? { routing: { sloGuard: { tpotMillis: service.spec.slo.tpotMillis } } } : {}),
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

/**
 * Headless Service of one pool's model-server pods: DNS answers its name with the ready pods' addresses
 * (the router's default discovery); its EndpointSlices serve hand-written configs with `discovery`.
 */
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

/** The image of a service's router: spec.router.image, else the operator's default; undefined = no router. */
export const routerImage = (service: LLMService, defaults?: Pick<RouterDefaults, 'image'>): string | undefined => service.spec.router.image ?? defaults?.image;

/** Seconds the kubelet waits after SIGTERM: the preStop sleep, the router's own drain, and 5 s of margin. */
export const routerTerminationGraceSeconds = (d: Pick<RouterDefaults, 'preStopSleepSeconds' | 'shutdownGraceMs'>): number =>
  d.preStopSleepSeconds + Math.ceil(d.shutdownGraceMs / 1000) + 5;

/** Pod-template annotation: hash of the router settings (not the split, not replicas) — a change rolls the pods. */
export const ROUTER_SETTINGS_HASH_ANNOTATION = 'melange.dev/router-settings-hash';
/** Where the router image keeps the CLI (the Dockerfile's layout; the operator runs the same file). */
export const ROUTER_ENTRYPOINT = ['node', '/app/bin/melangectl.js', 'router'] as const;

/** The node flags of a router process (--workers forks inherit them: cluster's execArgv defaults to process.execArgv). */
export function routerNodeFlags(d: Pick<RouterDefaults, 'maxSemiSpaceSizeMiB'>): string[] {
  return d.maxSemiSpaceSizeMiB > 0 ? [`--max-semi-space-size=${d.maxSemiSpaceSizeMiB}`] : [];
}

/** The router container's command: `node`, its flags, then the rest of ROUTER_ENTRYPOINT. */
export function routerContainerCommand(d: Pick<RouterDefaults, 'maxSemiSpaceSizeMiB'>): string[] {
  const [node, ...rest] = ROUTER_ENTRYPOINT;
  return [node, ...routerNodeFlags(d), ...rest];
}

/**
 * The router Deployment. The config is mounted from the ConfigMap and hot-reloaded by the router, so a
 * new split does not change the pod template (no restart); a change of the router settings (image, flags,
 * resources, …: `defaults` from --router-defaults / --router-image, over the built-ins) does, and the
 * settings hash on the pod template makes that explicit. Precedence: spec.router.{image,replicas} > defaults.
 * Call only when routerImage(service, defaults) is defined (throws otherwise).
 *
 * The router needs no Kubernetes API access (its config discovers backends by DNS), so by default its pods
 * get no ServiceAccount token at all (`automountServiceAccountToken: false`; they run as the namespace's
 * default ServiceAccount). When defaults.serviceAccountName names a ServiceAccount, the pods use it with its
 * token mounted as usual: whoever names one may want API access for the router (a hand-written config with
 * EndpointSlice `discovery` needs `discovery.k8s.io endpointslices: get, list, watch`; docs/loop.md) —
 * granting that is the user's concern, the operator creates no RBAC.
 */
export function buildRouterDeployment(service: LLMService, defaults: RouterDefaults = routerDefaults()): DeploymentManifest {
  const svc = service.metadata.name;
  const image = routerImage(service, defaults);
  if (!image) throw new Error(`router of ${service.metadata.namespace ?? 'default'}/${svc}: no image (spec.router.image, --router-image or the router defaults file)`);
  const own = { ...labels(service, 'router'), ...routerSelector(svc) };
  const d = defaults;
  const container: Obj = {
    name: 'router',
    image,
    imagePullPolicy: d.imagePullPolicy,
    // node itself is PID 1, so SIGTERM reaches the router's drain.
    command: routerContainerCommand(d),
    args: [
      '--config',
      `${ROUTER_CONFIG_DIR}/${ROUTER_CONFIG_KEY}`,
      '--host',
      '0.0.0.0',
      '--port',
      String(d.port),
      '--metrics-port',
      String(d.metricsPort),
      '--log-level',
      d.logLevel,
      '--max-body-bytes',
      String(d.maxBodyBytes),
      '--shutdown-grace-ms',
      String(d.shutdownGraceMs),
      // Only when asked: the args (and so the settings hash) of a one-process router stay what they were.
      ...(d.workers > 1 ? ['--workers', String(d.workers)] : []),
    ],
    ports: [
      { name: 'http', containerPort: d.port, protocol: 'TCP' },
      { name: 'metrics', containerPort: d.metricsPort, protocol: 'TCP' },
    ],
    // /readyz: config loaded, every pool's backend source synced once, not draining. /healthz: the process runs.
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    ...(d.preStopSleepSeconds > 0 ? { lifecycle: { preStop: { sleep: { seconds: d.preStopSleepSeconds } } } } : {}),
    resources: structuredClone(d.resources),
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [
      { name: 'config', mountPath: ROUTER_CONFIG_DIR, readOnly: true },
      // The only writable path: the root filesystem is read-only.
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
  const podSpec: Obj = {
    ...(d.serviceAccountName ? { serviceAccountName: d.serviceAccountName } : { automountServiceAccountToken: false }),
    ...(d.imagePullSecrets.length > 0 ? { imagePullSecrets: d.imagePullSecrets.map((s) => ({ name: s.name })) } : {}),
    terminationGracePeriodSeconds: routerTerminationGraceSeconds(d),
    securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
    affinity: {
      // Spread the replicas over nodes when possible (one node down must not take the endpoint down).
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: routerSelector(svc) } } }],
      },
    },
    containers: [container],
    volumes: [
      { name: 'config', configMap: { name: routerName(svc) } },
      { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ],
  };
  const m: DeploymentManifest = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: routerName(svc), namespace: service.metadata.namespace ?? 'default', labels: own, annotations: {}, ownerReferences: [ownerRef(service)] },
    spec: {
      replicas: service.spec.router.replicas ?? d.replicas,
      selector: { matchLabels: routerSelector(svc) },
      template: {
        metadata: { labels: own, annotations: { [ROUTER_SETTINGS_HASH_ANNOTATION]: hashOf(podSpec) } },
        spec: podSpec,
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
