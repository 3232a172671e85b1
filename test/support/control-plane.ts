/**
 * A real Kubernetes control plane on 127.0.0.1 for the integration tests, from the binaries built by
 * hack/test-bins.sh. Two profiles:
 *
 *   api   etcd + kube-apiserver (envtest-like: no pods ever run, no GC, namespaces never finish deleting)
 *   full  + kube-controller-manager, kube-scheduler and kwok (fake GPU nodes; pods get scheduled and Running)
 *
 * The full profile is the deterministic variant of the recipe: admission plugins ServiceAccount and
 * TaintNodesByCondition are disabled and KCM runs without the node-lifecycle controller, so nodes
 * stay exactly as a test writes them and nothing is ever evicted.
 *
 * Every component listens on 127.0.0.1 only, on ports picked free at start, and is started detached
 * in its own process group; the returned state records the pids so that exactly those groups are
 * stopped later (also from another process, see hack/cluster.ts).
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadKubeConfig } from './kube.js';
import { createGpuNode, deleteNode } from './kwok-nodes.js';
import { createPki, writeKubeconfig, type Pki } from './pki.js';
import { freePort } from './ports.js';
import { ComponentStartError, startProcess, stopProcesses, type ManagedProcess, type ProcessRecord } from './processes.js';
import { httpGet } from './http.js';
import { waitFor, WaitTimeoutError } from './wait.js';

export type Profile = 'api' | 'full';

export interface ControlPlaneOptions {
  binDir: string;
  profile: Profile;
  /** A fresh directory for PKI, data and logs (created if missing). */
  runDir: string;
  /** Readiness timeout per component (default 120 s; 2-core CI boxes are slow). */
  timeoutMs?: number;
  log?: (msg: string) => void;
  /**
   * Client QPS of KCM and the scheduler (full profile). Unset: upstream defaults (KCM 20, scheduler 50),
   * which is what a kubeadm cluster runs. Large clusters raise them; bench/controller does, and says so,
   * because at 20 QPS KCM needs minutes to create thousands of ReplicaSets and Pods.
   */
  componentQps?: number;
  /** Extra kube-apiserver flags, e.g. an admission plugin a test needs (appended last, so they win). */
  extraApiserverArgs?: string[];
}

export interface ControlPlane {
  profile: Profile;
  runDir: string;
  binDir: string;
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  apiUrl: string;
  etcdUrl: string;
  /** https://127.0.0.1:<port> health endpoints of KCM and the scheduler (full profile). */
  controllerManagerUrl?: string;
  schedulerUrl?: string;
  pki: Pki;
  /** Started processes in start order. */
  processes: ProcessRecord[];
}

export const KUBE_VERSION = 'v1.36.3';

const childEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  NO_PROXY: '127.0.0.1,localhost,::1',
  no_proxy: '127.0.0.1,localhost,::1',
});

/** Waits for a started component; an early exit or a timeout becomes a ComponentStartError with its log tail. */
async function ready<T>(proc: ManagedProcess, what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  try {
    return await waitFor(probe, { what, timeoutMs, intervalMs: 250, abortIf: () => proc.assertRunning() });
  } catch (err) {
    if (err instanceof ComponentStartError) throw err;
    if (err instanceof WaitTimeoutError) throw new ComponentStartError(proc.record.name, err.message, proc.record.logFile);
    throw err;
  }
}

/** Starts the control plane and returns once every component is really ready. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const bin = (n: string) => join(opts.binDir, n);
  const needed = ['etcd', 'kube-apiserver', ...(opts.profile === 'full' ? ['kube-controller-manager', 'kube-scheduler', 'kwok', 'kwok-stages.yaml'] : [])];
  for (const n of needed) if (!existsSync(bin(n))) throw new Error(`test binary missing: ${bin(n)} (run hack/test-bins.sh)`);

  const logs = join(opts.runDir, 'logs');
  await mkdir(logs, { recursive: true });
  const started: ManagedProcess[] = [];
  const start = (name: string, args: string[]) => {
    const p = startProcess({ name, command: bin(name), args, logFile: join(logs, `${name}.log`), env: childEnv(), cwd: opts.runDir });
    started.push(p);
    return p;
  };

  try {
    const pki = await createPki(join(opts.runDir, 'pki'));
    const adminTls = { ca: pki.caCrt, cert: pki.adminCrt, key: pki.adminKey };

    // etcd
    const [etcdPort, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = start('etcd', [
      '--name=test',
      `--data-dir=${join(opts.runDir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=test=${peerUrl}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    log(`etcd pid ${etcd.record.pid} on ${etcdUrl}`);
    await ready(etcd, 'etcd /health', timeoutMs, async () => {
      const r = await httpGet(`${etcdUrl}/health`);
      return r.status === 200 && /"health":\s*"true"/.test(r.body);
    });

    // kube-apiserver
    const apiUrl = `https://127.0.0.1:${apiPort}`;
    const disabledAdmission = opts.profile === 'full' ? 'ServiceAccount,TaintNodesByCondition' : 'ServiceAccount';
    const apiserver = start('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki.dir}`,
      `--tls-cert-file=${pki.apiserverCrt}`,
      `--tls-private-key-file=${pki.apiserverKey}`,
      `--client-ca-file=${pki.caCrt}`,
      `--service-account-issuer=${apiUrl}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      `--disable-admission-plugins=${disabledAdmission}`,
      '--endpoint-reconciler-type=none',
      ...(opts.extraApiserverArgs ?? []),
    ]);
    log(`kube-apiserver pid ${apiserver.record.pid} on ${apiUrl}`);
    await ready(apiserver, 'kube-apiserver /readyz', timeoutMs, async () => {
      const r = await httpGet(`${apiUrl}/readyz`, adminTls);
      return r.status === 200 && r.body.trim() === 'ok';
    });
    await ready(apiserver, 'namespace "default"', timeoutMs, async () => (await httpGet(`${apiUrl}/api/v1/namespaces/default`, adminTls)).status === 200);

    const kubeconfig = join(opts.runDir, 'kubeconfig');
    await writeKubeconfig(kubeconfig, apiUrl, pki.caCrt, pki.adminCrt, pki.adminKey);
    const cp: ControlPlane = {
      profile: opts.profile,
      runDir: opts.runDir,
      binDir: opts.binDir,
      kubeconfig,
      apiUrl,
      etcdUrl,
      pki,
      processes: started.map((p) => p.record),
    };
    if (opts.profile === 'api') return cp;

    // full profile: KCM, scheduler, kwok
    const [kcmPort, schedPort] = [await freePort(), await freePort()];
    const common = [`--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, '--bind-address=127.0.0.1', '--leader-elect=false'];
    const serving = [`--tls-cert-file=${pki.componentsCrt}`, `--tls-private-key-file=${pki.componentsKey}`];
    const kcm = start('kube-controller-manager', [
      ...common,
      ...serving,
      `--secure-port=${kcmPort}`,
      `--root-ca-file=${pki.caCrt}`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--cluster-signing-cert-file=${pki.caCrt}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      '--controllers=*,-node-lifecycle-controller',
      ...qpsFlags(opts.componentQps),
      ...(opts.componentQps ? ['--concurrent-deployment-syncs=20', '--concurrent-replicaset-syncs=20'] : []),
    ]);
    // --kube-api-qps is deprecated for the scheduler but honoured without --config.
    const scheduler = start('kube-scheduler', [...common, ...serving, `--secure-port=${schedPort}`, ...qpsFlags(opts.componentQps)]);
    const kwok = start('kwok', [
      `--kubeconfig=${kubeconfig}`,
      `--config=${bin('kwok-stages.yaml')}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--manage-nodes-with-label-selector=',
      '--manage-single-node=',
      '--node-ip=127.0.0.1',
      '--cidr=10.244.0.0/16',
    ]);
    cp.processes = started.map((p) => p.record);
    const controllerManagerUrl = `https://127.0.0.1:${kcmPort}`;
    const schedulerUrl = `https://127.0.0.1:${schedPort}`;
    log(`kube-controller-manager pid ${kcm.record.pid}, kube-scheduler pid ${scheduler.record.pid}, kwok pid ${kwok.record.pid}`);
    const healthz = (proc: ManagedProcess, url: string) =>
      ready(proc, `${proc.record.name} /healthz`, timeoutMs, async () => {
        const r = await httpGet(`${url}/healthz`, { ca: pki.caCrt });
        return r.status === 200 && r.body.trim() === 'ok';
      });
    await Promise.all([healthz(kcm, controllerManagerUrl), healthz(scheduler, schedulerUrl)]);
    cp.controllerManagerUrl = controllerManagerUrl;
    cp.schedulerUrl = schedulerUrl;

    // kwok is ready once it actually manages a fake node: create a probe node, wait Ready, delete it.
    const kc = loadKubeConfig(kubeconfig);
    const probe = `kwok-probe-${randomBytes(3).toString('hex')}`;
    await createGpuNode(kc, { name: probe, product: 'kwok-probe', gpus: 0, waitReady: false, labels: { 'melange.dev/probe': 'true' } });
    const core = kc.makeApiClient(CoreV1Api);
    await ready(kwok, `kwok: probe node ${probe} Ready`, timeoutMs, async () => {
      const n = await core.readNode({ name: probe });
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    });
    await deleteNode(kc, probe);
    return cp;
  } catch (err) {
    await stopProcesses(started.map((p) => p.record)).catch((stopErr: unknown) => {
      log(`cleanup after failed start: ${String(stopErr)}`);
    });
    throw err;
  }
}

/** Stops exactly the recorded processes and verifies none survives. */
export async function stopControlPlane(cp: Pick<ControlPlane, 'processes'>): Promise<void> {
  await stopProcesses(cp.processes);
}

const qpsFlags = (qps: number | undefined): string[] => (qps ? [`--kube-api-qps=${qps}`, `--kube-api-burst=${2 * qps}`] : []);
