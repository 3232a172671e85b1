/**
 * Issue 4 acceptance, leader election: two operator processes share one Lease; only the holder reconciles.
 * Killing the leader (SIGKILL, no cleanup) hands over within the lease duration (< 20 s to the first
 * reconcile); SIGTERM releases the lease so the standby leads within 5 s; a leader that loses its lease exits.
 */
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import { V1MicroTime } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, deploymentsOf, patchServiceSpec, replicasByPool, waitForService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
const LEASE = 'melange-operator-leader';

describe('operator: Lease leader election with two processes', () => {
  const ns = useTestNamespace('op-leader');
  const suffix = uniqueName('le').slice(3);
  const tiny = tinyService('svc', suffix);
  const ops: OperatorProcess[] = [];
  let kc: KubeConfig;

  const start = async (name: string) => {
    const op = await startOperator({ kubeconfig: env.kubeconfig, leaseNamespace: ns.name, watchNamespace: ns.name, logDir: `${env.runDir}/logs`, name });
    ops.push(op);
    return op;
  };
  const lease = (): Promise<V1Lease> => makeClients(kc).coordination.readNamespacedLease({ name: LEASE, namespace: ns.name });
  const holder = async () => (await ignoreNotFound(lease))?.spec?.holderIdentity ?? undefined;
  const leads = (op: OperatorProcess) => op.logs().some((l) => l.msg === 'started leading; reconciling');

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, ns.name);
  });
  afterAll(async () => {
    await stopOperators(ops);
    if (kc) await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }));
  });

  let leader: OperatorProcess;
  let standby: OperatorProcess;

  it('one of two processes leads and reconciles; the other stays a warm standby', async () => {
    const a = await start('op-a');
    const b = await start('op-b');
    const id = await waitFor(holder, { what: 'a lease holder', timeoutMs: 30_000 });
    [leader, standby] = id === a.identity ? [a, b] : [b, a];
    expect(id).toBe(leader.identity);
    await applyCr(kc, tiny.service, ns.name);
    await waitForService(kc, ns.name, 'svc', (s) => s.status?.observedGeneration === 1, 'reconciled by the leader', 30_000);
    expect(replicasByPool(await deploymentsOf(kc, ns.name, 'svc'))).toEqual({ [tiny.poolName]: tinyReplicas(2) });
    await leader.waitForLog((l) => l.msg === 'status updated', 'status written');
    expect(leads(leader)).toBe(true);
    expect(leads(standby)).toBe(false);
    expect(standby.logs().some((l) => l.msg === 'status updated')).toBe(false);
    expect((await fetch(`${standby.healthUrl}/readyz`)).status).toBe(200); // standbys are ready (warm caches)
  });

  it('killing the leader (SIGKILL) → the standby reconciles within 20 s', async () => {
    const before = (await lease()).spec?.leaseTransitions ?? 0;
    const t0 = Date.now();
    await leader.kill();
    const gen = await patchServiceSpec(kc, ns.name, 'svc', { workload: { static: { requestsPerSecond: 4 } } });
    await waitForService(kc, ns.name, 'svc', (s) => s.status?.observedGeneration === gen, 'reconciled by the former standby', 25_000);
    const elapsedS = (Date.now() - t0) / 1000;
    expect(elapsedS).toBeLessThan(20);
    expect(replicasByPool(await deploymentsOf(kc, ns.name, 'svc'))).toEqual({ [tiny.poolName]: tinyReplicas(4) });
    const l = await lease();
    expect(l.spec?.holderIdentity).toBe(standby.identity);
    expect(l.spec?.leaseTransitions).toBe(before + 1);
    expect(leads(standby)).toBe(true);
    console.info(`[operator-leader] SIGKILL → standby reconciled after ${elapsedS.toFixed(1)} s`);
    leader = standby;
  });

  it('SIGTERM the leader → it releases the lease, exits 0, and the standby leads within 5 s', async () => {
    standby = await start('op-c');
    expect(await holder()).toBe(leader.identity);
    const t0 = Date.now();
    const exited = leader.terminate();
    await waitFor(async () => (await holder()) === standby.identity, { what: 'op-c to hold the lease', timeoutMs: 10_000, intervalMs: 100 });
    const elapsedS = (Date.now() - t0) / 1000;
    expect(await exited).toBe(0);
    expect(elapsedS).toBeLessThan(5);
    expect(leader.logs().some((l) => l.msg === 'released the leader lease')).toBe(true);
    const gen = await patchServiceSpec(kc, ns.name, 'svc', { workload: { static: { requestsPerSecond: 6 } } });
    await waitForService(kc, ns.name, 'svc', (s) => s.status?.observedGeneration === gen, 'reconciled by op-c', 15_000);
    console.info(`[operator-leader] SIGTERM → standby leads after ${elapsedS.toFixed(1)} s`);
    leader = standby;
  });

  it('a leader that loses its lease exits non-zero instead of acting without it', async () => {
    // Someone else holds the lease and keeps renewing it: the leader's renewals fail until its renew deadline.
    const { coordination } = makeClients(kc);
    let hijacking = true;
    const hijack = (async () => {
      while (hijacking) {
        try {
          const cur = await coordination.readNamespacedLease({ name: LEASE, namespace: ns.name });
          const t = new V1MicroTime(Date.now());
          await coordination.replaceNamespacedLease({ name: LEASE, namespace: ns.name, body: { ...cur, spec: { ...cur.spec, holderIdentity: 'intruder', renewTime: t, leaseDurationSeconds: 15 } } });
        } catch {
          /* 409 when the leader renewed in between: try again */
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    try {
      await waitFor(() => !leader.alive(), { what: 'the leader to exit after losing its lease', timeoutMs: 30_000, intervalMs: 200 });
    } finally {
      hijacking = false;
      await hijack;
    }
    expect(leader.exit?.code).toBe(1);
    expect(leader.logs().some((l) => l.level === 'error' && l.msg === 'leader lease lost; exiting so a fresh standby takes over')).toBe(true);
  });
});
