/**
 * Issue 4 acceptance, resilience: kube-apiserver stops and comes back mid-run. The operator (same process,
 * no restart) re-establishes its watches, keeps its lease, reconciles what changed meanwhile and creates no
 * duplicates. Uses a private etcd + kube-apiserver (api profile) so restarting it disturbs no other test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { httpGet } from '../support/http.js';
import { loadKubeConfig, makeClients } from '../support/kube.js';
import { applyCr, deploymentsOf, patchServiceSpec, replicasByPool, waitForService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { startProcess, stopProcess, stopProcesses, type ProcessRecord } from '../support/processes.js';
import { delay, waitFor } from '../support/wait.js';

const env = testEnv();
const NS = 'restart';

describe('operator: kube-apiserver restart mid-run', () => {
  let cp: ControlPlane | undefined;
  let runDir: string;
  let kc: KubeConfig;
  let op: OperatorProcess | undefined;
  const records: ProcessRecord[] = [];
  const tiny = tinyService('svc', 'restart');

  beforeAll(async () => {
    runDir = await mkdtemp(join(tmpdir(), 'melange-restart-'));
    cp = await startControlPlane({ binDir: env.binDir, profile: 'api', runDir });
    records.push(...cp.processes);
    kc = loadKubeConfig(cp.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await makeClients(kc).core.createNamespace({ body: { metadata: { name: NS } } });
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, NS);
    op = await startOperator({
      kubeconfig: cp.kubeconfig,
      leaseNamespace: NS,
      logDir: join(runDir, 'logs'),
      name: 'op-restart',
      // The outage below (stop + cold start of kube-apiserver) can outlast the default 10 s renew deadline on
      // a slow box; a leader that cannot renew is *supposed* to exit (see operator-leader.test.ts).
      extraArgs: ['--lease-duration=90s', '--renew-deadline=60s', '--retry-period=2s'],
    });
  });

  afterAll(async () => {
    await stopOperators([op]);
    await stopProcesses(records).catch(() => {});
    if (runDir?.includes('melange-restart-')) await rm(runDir, { recursive: true, force: true });
  });

  it('resumes watching and reconciling without restarting itself, and creates no duplicates', async () => {
    await applyCr(kc, tiny.service, NS);
    await waitForService(kc, NS, 'svc', (s) => s.status?.observedGeneration === 1, 'reconciled before the restart', 30_000);
    expect(replicasByPool(await deploymentsOf(kc, NS, 'svc'))).toEqual({ [tiny.poolName]: tinyReplicas(2) });
    const pid = op!.record.pid;

    const api = records.find((r) => r.name === 'kube-apiserver')!;
    const t0 = Date.now();
    await stopProcess(api, 10_000);
    await delay(3_000); // really down for a while: watches break, LISTs fail
    const restarted = startProcess({
      name: 'kube-apiserver',
      command: api.command[0]!,
      args: api.command.slice(1),
      logFile: api.logFile,
      cwd: runDir,
      env: { ...process.env, NO_PROXY: '127.0.0.1,localhost,::1', no_proxy: '127.0.0.1,localhost,::1' },
    });
    records.splice(records.indexOf(api), 1, restarted.record);
    const pki = cp!.pki;
    await waitFor(async () => (await httpGet(`${cp!.apiUrl}/readyz`, { ca: pki.caCrt, cert: pki.adminCrt, key: pki.adminKey })).status === 200, {
      what: 'kube-apiserver ready again',
      timeoutMs: 120_000,
      abortIf: () => restarted.assertRunning(),
    });
    const downS = (Date.now() - t0) / 1000;

    // A change made after the restart is picked up by the re-established watch.
    const gen = await patchServiceSpec(kc, NS, 'svc', { workload: { static: { requestsPerSecond: 4 } } });
    await waitForService(kc, NS, 'svc', (s) => s.status?.observedGeneration === gen, 'reconciled after the restart', 60_000);
    await applyCr(kc, { ...tiny.service, metadata: { name: 'svc2' } }, NS);
    await waitForService(kc, NS, 'svc2', (s) => s.status?.observedGeneration === 1, 'a new service reconciled after the restart', 60_000);
    const resumedS = (Date.now() - t0) / 1000;

    expect(op!.alive()).toBe(true);
    expect(op!.record.pid).toBe(pid);
    expect(op!.logs().some((l) => l.msg === 'watch failed; restarting')).toBe(true);
    expect(op!.logs().some((l) => l.msg === 'leader lease lost; exiting so a fresh standby takes over')).toBe(false);
    // No duplicates: one Deployment per (service, pool), each with exactly one controller owner.
    const all = (await makeClients(kc).apps.listNamespacedDeployment({ namespace: NS })).items;
    expect(all.map((d) => d.metadata?.name).sort()).toEqual([`svc-${tiny.poolName}`, `svc2-${tiny.poolName}`]);
    for (const d of all) expect(d.metadata?.ownerReferences?.filter((r) => r.controller)).toHaveLength(1);
    expect(replicasByPool(await deploymentsOf(kc, NS, 'svc'))).toEqual({ [tiny.poolName]: tinyReplicas(4) });
    console.info(`[operator-restart] apiserver down→ready ${downS.toFixed(1)} s; operator caught up ${resumedS.toFixed(1)} s after the stop`);
  });
});
