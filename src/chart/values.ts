// The Helm chart's values (charts/melange-operator), as a zod schema: the single source of
// values.schema.json (which `helm install/upgrade/lint/template` enforce, so a typo fails loudly) and of the
// generated values.yaml (every default, with these descriptions as comments). `npm run gen:chart`.
import { z } from 'zod';
import { DEFAULT_LEASE_NAME } from '../controller/constants.js';
import { LOG_LEVELS } from '../controller/logger.js';
import { RouterDefaultsFields } from '../controller/router-defaults.js';

/** What `melangectl controller` accepts for its duration flags (src/api/meta.ts parseDurationMs). */
const Duration = z.string().regex(/^[1-9][0-9]{0,8}(ms|s|m|h)$/, 'a duration like 500ms, 30s, 5m, 1h');
/** Prometheus durations (ServiceMonitor interval / scrapeTimeout). */
const PromDuration = z.string().regex(/^[0-9]+(ms|s|m|h)$/, 'a Prometheus duration like 30s');
const Port = z.int().min(1).max(65535);
const StringMap = z.record(z.string(), z.string());
/** Free-form Kubernetes objects (resources, affinity, security contexts): the API server validates them. */
const KubeObject = z.record(z.string(), z.unknown());
const KubeList = z.array(z.unknown());
const PullPolicy = z.enum(['Always', 'IfNotPresent', 'Never']);

export const DEFAULT_IMAGE_REPOSITORY = 'ghcr.io/melange-operator/melange-operator';

const Probe = (initialDelaySeconds: number, periodSeconds: number) =>
  z
    .strictObject({
      initialDelaySeconds: z.int().min(0).default(initialDelaySeconds),
      periodSeconds: z.int().min(1).default(periodSeconds),
      timeoutSeconds: z.int().min(1).default(1),
      failureThreshold: z.int().min(1).default(3),
    })
    .prefault({});

export const ChartValues = z
  .strictObject({
    image: z
      .strictObject({
        repository: z.string().min(1).default(DEFAULT_IMAGE_REPOSITORY).describe('Operator image repository.'),
        tag: z.string().default('').describe('Image tag; empty means the chart appVersion (the package version).'),
        digest: z
          .union([z.literal(''), z.string().regex(/^sha256:[0-9a-f]{64}$/)])
          .default('')
          .describe('Image digest (sha256:...); when set it pins the image and the tag is only informative.'),
        pullPolicy: PullPolicy.default('IfNotPresent'),
      })
      .prefault({}),
    imagePullSecrets: z.array(z.strictObject({ name: z.string().min(1) })).default([]),
    nameOverride: z.string().default(''),
    fullnameOverride: z.string().default('').describe('Name of every namespaced object and the prefix of cluster-scoped ones (default: the release name, "melange-operator" gives the names of deploy/).'),
    crds: z
      .strictObject({
        install: z.boolean().default(true).describe('Install the LLMService, GPUProfile and GPUPool CRDs with the chart (templates/crds, generated from crds/). Set false when CRDs are managed elsewhere.'),
        keep: z.boolean().default(true).describe('Annotate the CRDs helm.sh/resource-policy: keep, so `helm uninstall` never deletes them (and with them every LLMService).'),
      })
      .prefault({}),
    replicaCount: z.int().min(1).max(5).default(2).describe('Operator replicas: one leads (Lease), the others are warm standbys. More than 1 needs leaderElection.enabled.'),
    leaderElection: z
      .strictObject({
        enabled: z.boolean().default(true),
        leaseName: z.string().min(1).max(253).default(DEFAULT_LEASE_NAME).describe('Lease in the release namespace.'),
        leaseDuration: Duration.default('15s'),
        renewDeadline: Duration.default('10s'),
        retryPeriod: Duration.default('2s').describe('Must be < renewDeadline < leaseDuration (the operator refuses to start otherwise).'),
      })
      .prefault({}),
    watchNamespace: z.string().default('').describe('Reconcile LLMServices of this namespace only; empty = all namespaces. RBAC stays cluster-wide (GPUPools are cluster-scoped).'),
    logLevel: z.enum(LOG_LEVELS).default('info').describe('JSON logs on stdout.'),
    workers: z.int().min(1).max(64).default(16).describe('Concurrent reconciles (I/O-bound: each waits on API round trips; 16 halves the time to plan 1,000 services vs 4).'),
    solveDeadline: Duration.default('10s').describe('Hard deadline of one solve in the solver worker thread.'),
    rewatchPeriod: Duration.default('5m').describe('Re-open watches this often (client-node 1.4 has no watch inactivity timeout).'),
    shutdownGrace: Duration.default('10s').describe('Time in-flight reconciles get on SIGTERM; keep it below terminationGracePeriodSeconds.'),
    extraArgs: z.array(z.string()).default([]).describe('Extra `melangectl controller` flags.'),
    extraEnv: KubeList.default([]).describe('Extra container env entries (Kubernetes EnvVar objects).'),
    serviceAccount: z
      .strictObject({
        create: z.boolean().default(true),
        name: z.string().default('').describe('Default: the full name.'),
        annotations: StringMap.default({}),
        automountServiceAccountToken: z.boolean().default(true).describe('The operator talks to the API server with this token.'),
      })
      .prefault({}),
    rbac: z
      .strictObject({
        create: z.boolean().default(true).describe('ClusterRole (exactly the access the code uses, src/controller/rbac.ts), leader-election Role, bindings.'),
        aggregatedRoles: z.boolean().default(true).describe('<fullname>-viewer / -editor ClusterRoles aggregated into the built-in view, edit and admin roles.'),
      })
      .prefault({}),
    podAnnotations: StringMap.default({}),
    podLabels: StringMap.default({}),
    podSecurityContext: KubeObject.default({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    }),
    securityContext: KubeObject.default({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    }).describe('Container security context: the image needs no writable path but /tmp (an emptyDir).'),
    resources: KubeObject.default({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } }),
    terminationGracePeriodSeconds: z.int().min(1).default(30).describe('Must exceed shutdownGrace: SIGTERM stops the queue, finishes reconciles, releases the Lease.'),
    priorityClassName: z.string().default(''),
    nodeSelector: StringMap.default({}),
    tolerations: KubeList.default([]),
    affinity: KubeObject.default({}).describe('Empty: prefer spreading the replicas over nodes (soft pod anti-affinity).'),
    topologySpreadConstraints: KubeList.default([]),
    ports: z
      .strictObject({
        metrics: Port.default(8080).describe('/metrics'),
        health: Port.default(8081).describe('/healthz (liveness) and /readyz (caches synced)'),
      })
      .prefault({}),
    livenessProbe: Probe(15, 20),
    readinessProbe: Probe(5, 10),
    metrics: z
      .strictObject({
        service: z
          .strictObject({
            enabled: z.boolean().default(true).describe('ClusterIP Service <fullname>-metrics in front of /metrics.'),
            port: Port.default(8080),
            annotations: StringMap.default({}),
          })
          .prefault({}),
        serviceMonitor: z
          .strictObject({
            enabled: z.boolean().default(false).describe('A monitoring.coreos.com/v1 ServiceMonitor (needs the Prometheus Operator CRDs).'),
            interval: PromDuration.default('30s'),
            scrapeTimeout: PromDuration.default('10s'),
            labels: StringMap.default({}).describe('Extra labels, e.g. the release label your Prometheus selects.'),
          })
          .prefault({}),
      })
      .prefault({}),
    podDisruptionBudget: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Rendered only with replicaCount > 1.'),
        minAvailable: z.int().min(1).default(1),
      })
      .prefault({}),
    router: z
      .strictObject({
        image: z
          .strictObject({
            repository: z.string().default('').describe('Empty: the operator image, digest included (it contains `melangectl router`).'),
            tag: z.string().default('').describe('Empty: the operator image tag (image.tag, else the chart appVersion).'),
            digest: z
              .union([z.literal(''), z.string().regex(/^sha256:[0-9a-f]{64}$/)])
              .default('')
              .describe('Router image digest (sha256:...), used with router.image.repository/tag.'),
            pullPolicy: RouterDefaultsFields.imagePullPolicy,
          })
          .prefault({}),
        replicas: RouterDefaultsFields.replicas,
        port: RouterDefaultsFields.port,
        metricsPort: RouterDefaultsFields.metricsPort,
        logLevel: RouterDefaultsFields.logLevel,
        maxBodyBytes: RouterDefaultsFields.maxBodyBytes,
        shutdownGraceMs: RouterDefaultsFields.shutdownGraceMs,
        preStopSleepSeconds: RouterDefaultsFields.preStopSleepSeconds,
        workers: RouterDefaultsFields.workers,
        maxSemiSpaceSizeMiB: RouterDefaultsFields.maxSemiSpaceSizeMiB,
        resources: RouterDefaultsFields.resources,
        serviceAccountName: RouterDefaultsFields.serviceAccountName,
        imagePullSecrets: RouterDefaultsFields.imagePullSecrets,
      })
      .prefault({})
      .describe(
        'Defaults of the size-aware router Deployment the operator runs for each LLMService with spec.router.enabled (`melangectl router`, docs/router.md): rendered into the ConfigMap <fullname>-router-defaults, mounted at /etc/melange/router-defaults.yaml and read by the operator (--router-defaults). spec.router.image and spec.router.replicas of an LLMService win over these.',
      ),
    global: z.looseObject({}).optional().describe('Passed down by parent charts; unused.'),
  })
  .describe('Values of the melange-operator chart. Generated from src/chart/values.ts: unknown keys are rejected.');

export type ChartValuesInput = z.input<typeof ChartValues>;
export type ChartValuesOutput = z.output<typeof ChartValues>;

/** Every default: what values.yaml holds. */
export const defaultValues = (): ChartValuesOutput => ChartValues.parse({});

/** values.schema.json: draft-07 (helm 3 validates it), input side so defaults do not become required. */
export function valuesJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ChartValues, { target: 'draft-07', io: 'input' }) as Record<string, unknown>;
}
