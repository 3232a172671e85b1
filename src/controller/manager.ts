import { randomUUID } from 'node:crypto';
import type { KubernetesListObject, KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/index.js';
import type { SolveInput, SolveResult } from '../solver/index.js';
import { CONTROLLER_NAME, MANAGED_SELECTOR, PLURALS, REPORTING_CONTROLLER } from './constants.js';
import { EventRecorder } from './events.js';
import { keyOf, startInformer, type Informer } from './informer.js';
import { apiMessageOf, httpStatusOf, isNamespaceTerminating, makeClients, type KubeClients } from './kube.js';
import { LeaderElector, withTimeout } from './leader.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { Reconciler } from './reconciler.js';
import type { RouterDefaults } from './router-defaults.js';
import { InformerView } from './view.js';
import { WorkQueue, runWorkers } from './workqueue.js';
import { KubeWriter } from './writer.js';
import { WorkloadSources, type WorkloadSource } from './workload.js';
// --- GPU pools (src/controller/gpupool-controller.ts) ---
import { GPUPoolController, kubeGPUPoolClient } from './gpupool-controller.js';
// --- end GPU pools ---
import type { KubeConfig } from '@kubernetes/client-node';

// Wires the pieces (Karpenter's shape): informers are thin triggers that enqueue keys; workers run the
// reconciler over the cache snapshot; only the Lease holder runs workers, standbys keep warm caches.
// Lifecycle: run() resolves with the process exit code, 0 after a graceful stop, 1 when the lease was lost.

export interface LeaderElectionOptions {
  enabled: boolean;
  namespace: string;
  name: string;
  identity: string;
  leaseMs?: number;
  renewDeadlineMs?: number;
  retryMs?: number;
}

export interface ManagerOptions {
  kc: KubeConfig;
  log: Logger;
  metrics: Metrics;
  solve: (input: SolveInput) => Promise<SolveResult>;
  leaderElection: LeaderElectionOptions;
  /** Watch one namespace only (default: all). */
  watchNamespace?: string;
  workers?: number;
  workload?: WorkloadSource;
  /** Router Deployment defaults (--router-defaults, --router-image on top); spec.router.{image,replicas} win. */
  router?: RouterDefaults;
  /** Re-open watches this often (client-node 1.4 has no watch inactivity timeout). Default 5 min. */
  rewatchMs?: number;
  // --- GPU pools: opt-in until the CLI exposes it and the chart grants GPUPOOL_CLUSTER_RULES ---
  /** Run the GPUPool reconciler (sizes node pools; see docs/pools.md). Off when absent. */
  gpuPools?: { resyncMs?: number };
  // --- end GPU pools ---
  /** Time in-flight reconciles get to finish on shutdown. Default 10 s. */
  shutdownGraceMs?: number;
}

type AnyObj = KubernetesObject & { spec?: { gpus?: Array<{ pool?: string; profile?: string }> } };

export class Manager {
  private readonly clients: KubeClients;
  private readonly queue: WorkQueue;
  private readonly informers: { services: Informer<AnyObj>; profiles: Informer<AnyObj>; pools: Informer<AnyObj>; deployments: Informer<V1Deployment> };
  private readonly elector: LeaderElector | undefined;
  private readonly reconciler: Reconciler;
  private readonly events: EventRecorder;
  private readonly log: Logger;
  private workersDone: Promise<void> | undefined;
  private readonly gpuPools: GPUPoolController | undefined; // GPU pools

  constructor(private readonly o: ManagerOptions) {
    this.log = o.log.child({ controller: CONTROLLER_NAME });
    this.clients = makeClients(o.kc);
    const m = o.metrics;
    this.queue = new WorkQueue({ onAdd: () => m.queueAdds.inc({ name: CONTROLLER_NAME }), onDepth: (d) => m.queueDepth.set({ name: CONTROLLER_NAME }, d) });
    this.informers = this.startInformers();
    const view = new InformerView(this.informers, (kind, obj, errors) =>
      this.log.warn({ kind, object: keyOf(obj as KubernetesObject), errors }, 'ignoring an object that does not match its schema'),
    );
    const pruner = setInterval(() => view.prune(), 300_000);
    pruner.unref();
    const le = o.leaderElection;
    this.elector = le.enabled
      ? new LeaderElector({
          api: this.clients.coordination,
          namespace: le.namespace,
          name: le.name,
          identity: le.identity,
          ...(le.leaseMs !== undefined ? { leaseMs: le.leaseMs } : {}),
          ...(le.renewDeadlineMs !== undefined ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
          ...(le.retryMs !== undefined ? { retryMs: le.retryMs } : {}),
          onError: (err) => this.log.debug({ err: apiMessageOf(err) }, 'leader election round failed'),
        })
      : undefined;
    // An event into a namespace being deleted is refused like any new object there: expected, not a warning.
    const events = new EventRecorder(this.clients.events, REPORTING_CONTROLLER, le.identity, (err) =>
      isNamespaceTerminating(err)
        ? this.log.debug({ err: apiMessageOf(err) }, 'event not recorded: its namespace is being deleted')
        : this.log.warn({ err: apiMessageOf(err) }, 'could not record an event'),
    );
    this.events = events;
    this.reconciler = new Reconciler({
      view,
      writer: new KubeWriter(this.clients, this.clients.core),
      ...(o.router ? { router: o.router } : {}),
      events,
      workload: o.workload ?? new WorkloadSources(),
      solve: o.solve,
      log: this.log,
      metrics: m,
      // Services sharing a capped pool: a decision that moves another sharer's share enqueues it.
      enqueue: (key) => this.queue.add(key),
    });
    // --- GPU pools (src/controller/gpupool-controller.ts) ---
    this.gpuPools = o.gpuPools
      ? new GPUPoolController({
          pools: () => view.pools(),
          services: () => this.informers.services.list(),
          client: kubeGPUPoolClient(o.kc),
          events,
          log: o.log.child({ controller: 'gpupool' }),
          ...(o.gpuPools.resyncMs !== undefined ? { resyncMs: o.gpuPools.resyncMs } : {}),
        })
      : undefined;
    // --- end GPU pools ---
  }

  /** Ready = every cache synced (standbys too: they are warm and can take over). */
  readiness(): { ok: boolean; detail: string } {
    const pending = Object.entries(this.informers).filter(([, inf]) => !inf.synced()).map(([n]) => n);
    return pending.length === 0 ? { ok: true, detail: 'ok' } : { ok: false, detail: `caches not synced: ${pending.join(', ')}` };
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : this.workersDone !== undefined;
  }

  async run(signal: AbortSignal): Promise<number> {
    const { informers } = this;
    try {
      await Promise.all(Object.values(informers).map((i) => i.waitSynced(signal)));
    } catch {
      await this.stopInformers();
      return 0; // stopped before the caches synced
    }
    this.log.info({ services: informers.services.list().length, pools: informers.pools.list().length }, 'caches synced');

    let code = 0;
    if (this.elector) {
      this.log.info({ lease: `${this.o.leaderElection.namespace}/${this.o.leaderElection.name}`, identity: this.elector.identity }, 'campaigning for leadership');
      const end = await this.elector.run(signal, () => this.startLeading());
      if (end === 'lost') {
        this.log.error({ identity: this.elector.identity }, 'leader lease lost; exiting so a fresh standby takes over');
        code = 1;
      }
    } else {
      this.startLeading();
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    }
    // After a lost lease another instance may already be writing: stop at once, keep no grace period.
    await this.shutdown(code === 0, code === 0 ? (this.o.shutdownGraceMs ?? 10_000) : 1_000);
    return code;
  }

  private startLeading(): void {
    this.o.metrics.leader.set({ name: this.o.leaderElection.name }, 1);
    this.log.info({ identity: this.o.leaderElection.identity }, 'started leading; reconciling');
    const m = this.o.metrics;
    this.workersDone = runWorkers({
      queue: this.queue,
      concurrency: this.o.workers ?? 16,
      reconcile: (key) => this.reconcileOne(key),
      onError: (key, err, retryInMs) => {
        m.queueRetries.inc({ name: CONTROLLER_NAME });
        this.log.error({ llmservice: key, err: apiMessageOf(err), code: httpStatusOf(err), retryInMs }, 'reconcile failed; retrying');
      },
    });
    this.gpuPools?.start(); // GPU pools
    // Level-triggered: whatever happened while we were standby, every object is looked at once now.
    for (const s of this.informers.services.list()) this.queue.add(keyOf(s));
  }

  private async reconcileOne(key: string) {
    const m = this.o.metrics;
    const slash = key.indexOf('/');
    const log = this.log.child({ llmservice: key, namespace: key.slice(0, slash), name: key.slice(slash + 1), reconcileID: randomUUID() });
    const end = m.reconcileTime.startTimer({ controller: CONTROLLER_NAME });
    try {
      const r = await this.reconciler.reconcile(key, log);
      m.reconcileTotal.inc({ controller: CONTROLLER_NAME, result: 'success' });
      return r;
    } catch (err) {
      m.reconcileTotal.inc({ controller: CONTROLLER_NAME, result: 'error' });
      m.reconcileErrors.inc({ controller: CONTROLLER_NAME });
      m.apiErrors.inc({ operation: 'reconcile', code: String(httpStatusOf(err) ?? 'none') });
      throw err;
    } finally {
      end();
    }
  }

  /** Stop taking work, let in-flight reconciles finish (bounded), stop watches, hand the lease over. */
  private async shutdown(releaseLease: boolean, grace: number): Promise<void> {
    this.queue.shutDown();
    if (this.workersDone) {
      await withTimeout(this.workersDone, grace).catch(() => this.log.warn({ graceMs: grace }, 'in-flight reconciles did not finish in time'));
    }
    await this.gpuPools?.stop(); // GPU pools
    await this.stopInformers();
    if (releaseLease && this.elector && (await this.elector.release())) this.log.info('released the leader lease');
    this.o.metrics.leader.set({ name: this.o.leaderElection.name }, 0);
    await this.events.flush(2_000);
    this.clients.agents.destroy();
  }

  private async stopInformers(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((i) => withTimeout(i.stop(), 5_000).catch(() => undefined)));
  }

  private startInformers() {
    const { custom, apps } = this.clients;
    const ns = this.o.watchNamespace;
    const crPath = (plural: string, namespaced: boolean) =>
      namespaced && ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`;
    const listCr = (plural: string, namespaced: boolean) => (): Promise<KubernetesListObject<AnyObj>> =>
      namespaced && ns
        ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural })
        : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural });
    const onError = (what: string) => (err: unknown, retryInMs: number) => {
      this.o.metrics.apiErrors.inc({ operation: `watch_${what}`, code: String(httpStatusOf(err) ?? 'none') });
      this.log.warn({ informer: what, err: apiMessageOf(err), code: httpStatusOf(err), retryInMs }, 'watch failed; restarting');
    };
    const common = { kc: this.o.kc, refreshEveryMs: this.o.rewatchMs ?? 300_000 };
    const enqueue = (k: string) => this.queue.add(k);

    const services = startInformer<AnyObj>({ ...common, path: crPath(PLURALS.llmservices, true), list: listCr(PLURALS.llmservices, true), onEvent: (o) => enqueue(keyOf(o)), onError: onError('llmservices') });
    // Fan-out: a profile or pool change concerns every service that references it.
    const referencing = (pred: (g: { pool?: string; profile?: string }) => boolean, namespace?: string) => {
      for (const s of services.list(namespace)) if (s.spec?.gpus?.some(pred)) enqueue(keyOf(s));
    };
    const profiles = startInformer<AnyObj>({
      ...common,
      path: crPath(PLURALS.gpuprofiles, true),
      list: listCr(PLURALS.gpuprofiles, true),
      onEvent: (p) => referencing((g) => g.profile === p.metadata?.name, p.metadata?.namespace),
      onError: onError('gpuprofiles'),
    });
    const pools = startInformer<AnyObj>({
      ...common,
      path: crPath(PLURALS.gpupools, false),
      list: listCr(PLURALS.gpupools, false),
      onEvent: (p) => referencing((g) => g.pool === p.metadata?.name),
      onError: onError('gpupools'),
    });
    const deployments = startInformer<V1Deployment>({
      ...common,
      path: ns ? `/apis/apps/v1/namespaces/${ns}/deployments` : '/apis/apps/v1/deployments',
      list: () => (ns ? apps.listNamespacedDeployment({ namespace: ns, labelSelector: MANAGED_SELECTOR }) : apps.listDeploymentForAllNamespaces({ labelSelector: MANAGED_SELECTOR })),
      labelSelector: MANAGED_SELECTOR,
      onEvent: (d) => {
        const owner = d.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'LLMService');
        if (owner && d.metadata?.namespace) enqueue(`${d.metadata.namespace}/${owner.name}`);
      },
      onError: onError('deployments'),
    });
    return { services, profiles, pools, deployments };
  }
}
