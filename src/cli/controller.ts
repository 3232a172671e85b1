import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseDurationMs } from '../api/index.js';
import {
  DEFAULT_LEASE_NAME,
  LOG_LEVELS,
  Manager,
  createLogger,
  createMetrics,
  loadKubeConfig,
  parseAddress,
  startMetricsServer,
  startProbeServer,
  type Endpoint,
  type LogLevel,
} from '../controller/index.js';
import { RouterDefaultsError, loadRouterDefaultsFile, resolveRouterDefaults, type RouterDefaults } from '../controller/router-defaults.js';
import { ObservedWorkloadSource, SecretCredentials, WorkloadSources } from '../controller/workload.js';
import { KeepAliveAgents, makePooledApiClient } from '../controller/pooled-client.js';
import { SolverWorker } from '../solver/index.js';
import { PrometheusWorkloadSource, SpecWorkloadSource } from '../workload/source.js';
import { EXIT, UsageError, type Io } from './io.js';

export const CONTROLLER_USAGE = `Usage: melangectl controller [flags]

Runs the operator: reconciles LLMServices into one Deployment per GPU type with the cheapest mix that meets the SLO.
  --kubeconfig FILE          kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)
  --namespace NS             namespace of the leader-election Lease (default: $POD_NAMESPACE, the pod's namespace, else default)
  --leader-elect[=BOOL]      Lease leader election, one active replica (default true)
  --leader-election-id NAME  Lease name (default ${DEFAULT_LEASE_NAME})
  --lease-duration D         (default 15s)   --renew-deadline D (default 10s)   --retry-period D (default 2s)
  --identity ID              leader identity (default: $POD_NAME or the hostname, plus a random suffix)
  --watch-namespace NS       only reconcile LLMServices in NS (default: all namespaces)
  --health-addr ADDR         /healthz and /readyz (default 127.0.0.1:8081; "0" disables)
  --metrics-addr ADDR        /metrics (default 127.0.0.1:8080; "0" disables)
  --log-level LEVEL          ${LOG_LEVELS.join('|')} (default info)
  --solve-deadline D         hard deadline of one solve in the worker thread (default 10s)
  --workers N                concurrent reconciles (default 16; reconciles mostly wait on API round trips)
  --rewatch-period D         re-open watches this often (default 5m)
  --shutdown-grace D         time in-flight reconciles get on SIGTERM (default 10s)
  --prometheus-url URL       Prometheus for services with spec.workload.source: Prometheus (when spec.workload.prometheus.url is unset)
  --router-defaults FILE     defaults of the router Deployment of services with spec.router.enabled (YAML: image,
                             imagePullPolicy, replicas, port, metricsPort, logLevel, maxBodyBytes, shutdownGraceMs,
                             preStopSleepSeconds, resources, serviceAccountName, imagePullSecrets; docs/router.md), read once at start-up
  --gpu-pools auto|true|false  size GPUPools' node pools (status; ClusterAPI/Karpenter/Scale providers; docs/pools.md).
                             auto (default): on, unless --watch-namespace is set (a namespaced operator cannot see the
                             whole demand on a cluster-scoped pool)
  --router-image IMAGE       router image (melangectl router); overrides the defaults file's image. With no image from
                             either, only services that set spec.router.image get a router
Durations: 500ms, 30s, 5m, 1h. Addresses: host:port, :port (all interfaces) or 0.`;

export interface ControllerDeps {
  /** Exit backstop: called if the process does not exit by itself shortly after shutdown. */
  exit?: (code: number) => void;
  env?: NodeJS.ProcessEnv;
  /** Resolves when the controller should stop (default: SIGTERM/SIGINT). */
  signals?: NodeJS.Process;
}

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Bare boolean flags (`--leader-elect`) become `--leader-elect=true`, so `=false` also parses. */
const normaliseBooleans = (argv: string[]) => argv.map((a) => (a === '--leader-elect' ? '--leader-elect=true' : a));

function duration(name: string, v: string): number {
  try {
    return parseDurationMs(v);
  } catch {
    throw new UsageError(`--${name}: "${v}" is not a duration like 500ms, 30s, 5m`);
  }
}

export async function controllerCommand(argv: string[], io: Io, deps: ControllerDeps = {}): Promise<number> {
  const env = deps.env ?? process.env;
  const { values } = parseArgs({
    args: normaliseBooleans(argv),
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'leader-elect': { type: 'string', default: 'true' },
      'leader-election-id': { type: 'string', default: DEFAULT_LEASE_NAME },
      'lease-duration': { type: 'string', default: '15s' },
      'renew-deadline': { type: 'string', default: '10s' },
      'retry-period': { type: 'string', default: '2s' },
      identity: { type: 'string' },
      'watch-namespace': { type: 'string' },
      'health-addr': { type: 'string', default: '127.0.0.1:8081' },
      'metrics-addr': { type: 'string', default: '127.0.0.1:8080' },
      'log-level': { type: 'string', default: 'info' },
      'solve-deadline': { type: 'string', default: '10s' },
      workers: { type: 'string', default: '16' },
      'rewatch-period': { type: 'string', default: '5m' },
      'shutdown-grace': { type: 'string', default: '10s' },
      'prometheus-url': { type: 'string' },
      'router-image': { type: 'string' },
      'router-defaults': { type: 'string' },
      'gpu-pools': { type: 'string', default: 'auto' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    io.out(CONTROLLER_USAGE);
    return EXIT.ok;
  }
  const le = values['leader-elect'];
  if (le !== 'true' && le !== 'false') throw new UsageError(`--leader-elect: must be true or false, not "${le}"`);
  const level = values['log-level'] as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}`);
  const gpuPoolsFlag = values['gpu-pools'];
  if (gpuPoolsFlag !== 'auto' && gpuPoolsFlag !== 'true' && gpuPoolsFlag !== 'false') throw new UsageError(`--gpu-pools: must be auto, true or false, not "${gpuPoolsFlag}"`);
  const gpuPools = gpuPoolsFlag === 'true' || (gpuPoolsFlag === 'auto' && !values['watch-namespace']);
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError('--workers: must be an integer from 1 to 64');
  let healthAddr, metricsAddr;
  try {
    healthAddr = parseAddress(values['health-addr']);
    metricsAddr = parseAddress(values['metrics-addr']);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const leaseMs = duration('lease-duration', values['lease-duration']);
  const renewDeadlineMs = duration('renew-deadline', values['renew-deadline']);
  const retryMs = duration('retry-period', values['retry-period']);
  if (!(retryMs < renewDeadlineMs && renewDeadlineMs < leaseMs)) throw new UsageError('need --retry-period < --renew-deadline < --lease-duration');
  const solveDeadlineMs = duration('solve-deadline', values['solve-deadline']);
  const rewatchMs = duration('rewatch-period', values['rewatch-period']);
  const shutdownGraceMs = duration('shutdown-grace', values['shutdown-grace']);
  const prometheusUrl = values['prometheus-url'];
  if (prometheusUrl !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(prometheusUrl);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new UsageError(`--prometheus-url: "${prometheusUrl}" is not an http(s) URL`);
  }
  // Router defaults: spec.router.* > flags > the file > built-ins (src/controller/router-defaults.ts).
  let router: RouterDefaults;
  try {
    const file = values['router-defaults'] !== undefined ? loadRouterDefaultsFile(values['router-defaults']) : undefined;
    router = resolveRouterDefaults({ ...(file ? { file } : {}), ...(values['router-image'] !== undefined ? { routerImage: values['router-image'] } : {}) });
  } catch (err) {
    if (err instanceof RouterDefaultsError) throw new UsageError(`--router-defaults ${err.file}: ${err.lines.join('; ')}`);
    throw new UsageError((err as Error).message);
  }
  const namespace = values.namespace ?? env.POD_NAMESPACE ?? readNamespaceFile() ?? 'default';
  const identity = values.identity ?? `${env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`;

  const log = createLogger(level);
  const kc = loadKubeConfig(values.kubeconfig, env);
  const metrics = createMetrics();
  const solver = new SolverWorker({ deadlineMs: solveDeadlineMs });
  const abort = new AbortController();
  // Secret reads reuse one keep-alive connection like the Manager's clients (pooled-client.ts).
  const secretAgents = new KeepAliveAgents();
  const prometheus = new PrometheusWorkloadSource({
    ...(prometheusUrl ? { defaultUrl: prometheusUrl } : {}),
    // spec.workload.prometheus.{bearerTokenSecretRef,caSecretRef}: one GET of the Secret in the service's namespace
    // (RBAC secrets: get, nothing else), used only if labelled melange.dev/prometheus-credentials: "true".
    credentials: new SecretCredentials(makePooledApiClient(kc, CoreV1Api, secretAgents)).resolve,
    signal: abort.signal,
  });
  const workload = new WorkloadSources({ Prometheus: new ObservedWorkloadSource(new SpecWorkloadSource(prometheus)) });
  const manager = new Manager({
    kc,
    log,
    metrics,
    solve: (input) => solver.solve(input),
    leaderElection: { enabled: le === 'true', namespace, name: values['leader-election-id'], identity, leaseMs, renewDeadlineMs, retryMs },
    workers,
    workload,
    router,
    ...(gpuPools ? { gpuPools: {} } : {}),
    rewatchMs,
    shutdownGraceMs,
    ...(values['watch-namespace'] ? { watchNamespace: values['watch-namespace'] } : {}),
  });

  const proc = deps.signals ?? process;
  let signalled = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled++;
    if (signalled > 1) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      (deps.exit ?? process.exit)(EXIT.noPlan);
      return;
    }
    log.info({ signal: sig }, 'shutting down: stop the queue, finish in-flight work, stop watches, release the lease');
    abort.abort();
  };
  proc.on('SIGTERM', onSignal);
  proc.on('SIGINT', onSignal);

  const endpoints: Endpoint[] = [];
  let code: number;
  try {
    if (healthAddr) endpoints.push(await startProbeServer(healthAddr, () => manager.readiness()));
    if (metricsAddr) endpoints.push(await startMetricsServer(metricsAddr, metrics.registry));
    log.info({ identity, leaseNamespace: namespace, leaderElect: le === 'true', healthAddr: healthAddr ? endpoints[0]?.address : 'disabled', metricsAddr: metricsAddr ? endpoints.at(-1)?.address : 'disabled', watchNamespace: values['watch-namespace'] ?? '(all)', routerImage: router.image ?? '(none: only services with spec.router.image get a router)', routerDefaults: values['router-defaults'] ?? '(built-in)' }, 'melange-operator starting');
    code = await manager.run(abort.signal);
  } finally {
    await solver.close();
    secretAgents.destroy();
    await Promise.all(endpoints.map((e) => e.close()));
    proc.off('SIGTERM', onSignal);
    proc.off('SIGINT', onSignal);
  }
  log.info({ exitCode: code }, 'melange-operator stopped');
  // Everything is closed; if a stray handle (a keep-alive socket) still holds the loop, do not linger.
  const exit = deps.exit ?? ((c: number) => process.exit(c));
  setTimeout(() => exit(code), 2_000).unref();
  return code;
}

function readNamespaceFile(): string | undefined {
  try {
    return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
