/**
 * The chart's whole life on a control plane of its own (a private etcd + kube-apiserver from the test binaries:
 * a CRD install/uninstall on the shared cluster would delete every other test's custom resources), with the
 * OwnerReferencesPermissionEnforcement admission plugin on, as on many production clusters:
 *
 *   1. `helm install` creates the CRDs (Established, keep policy), the RBAC and the operator Deployment.
 *   2. The operator, run as a process with exactly the installed ServiceAccount's permissions (client cert for
 *      system:serviceaccount:melange-system:melange-operator), completes the P3 scenario (planning from a
 *      bearer-token-protected Prometheus stand-in whose token it must GET from a labelled Secret); then, for EVERY
 *      verb of every rule of the chart's ClusterRole and leader-election Role (27 (group, resource, verb) triples,
 *      less the 4 of the ClusterAPI/Karpenter providers, which need those providers' objects and are proven
 *      one by one in pools-rbac.test.ts), the same scenario with that one verb removed fails, and the test
 *      names how. The scenario includes the GPUPool reconciler writing the pool's status (provider None).
 *   3. `helm upgrade` (new values, then crds.install=false) keeps the CRDs and the existing LLMServices.
 *   4. `helm uninstall` removes the operator and its RBAC, and keeps the CRDs and the LLMServices.
 */
import { join } from 'node:path';
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForCrdEstablished } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { startFakePrometheus, type FakePrometheus } from '../support/fake-prometheus.js';
import { ignoreNotFound, isNotFound, loadKubeConfig, makeClients, mergePatch } from '../support/kube.js';
import { applyCr, getService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type LogLine, type OperatorProcess } from '../support/operator-process.js';
import { signClientCert, writeKubeconfig } from '../support/pki.js';
import { delay, waitFor } from '../support/wait.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { CHART_PATH, Helm, accessTriples, startPrivateCluster, withoutVerb, type Obj, type PrivateCluster, type Rule } from '../unit/ship/helpers.js';

const env = testEnv();
const RELEASE = 'melange-operator';
const OP_NS = 'melange-system';
const APP_NS = 'llm';
const SA_USER = `system:serviceaccount:${OP_NS}:${RELEASE}`;
const CRDS = ['llmservices.melange.dev', 'gpuprofiles.melange.dev', 'gpupools.melange.dev'];
const GROUP = 'melange.dev';
const VERSION = 'v1alpha1';
const PROM_TOKEN = `ship-${Date.now().toString(36)}`;
const PROM_SECRET = 'prometheus-token';

describe('chart lifecycle and least privilege on a private control plane', () => {
  const helm = new Helm(env.binDir);
  const dir = mkdtempSync(join(tmpdir(), 'melange-ship-'));
  const tiny = tinyService('svc', 'ship', 2);
  const ops: OperatorProcess[] = [];
  let prometheus: FakePrometheus | undefined;
  let cluster: PrivateCluster;
  let kc: KubeConfig;
  let opKubeconfig: string;
  const helmArgs = () => ['--namespace', OP_NS, '--kubeconfig', cluster.kubeconfig, '--timeout', '120s'];
  const uids: Record<string, string> = {};

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startPrivateCluster(env.binDir, dir, ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement']);
    console.log(`[ship-lifecycle] private etcd + kube-apiserver ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    kc = loadKubeConfig(cluster.kubeconfig);
    const cert = await signClientCert(cluster.pki, 'ship-operator', SA_USER, ['system:serviceaccounts', `system:serviceaccounts:${OP_NS}`]);
    opKubeconfig = join(dir, 'operator.kubeconfig');
    await writeKubeconfig(opKubeconfig, cluster.apiUrl, cluster.pki.caCrt, cert.crt, cert.key);
    // Prometheus behind a bearer token (answers the router queries with a steady 2 req/s in the tiny bucket).
    prometheus = await startFakePrometheus({ buckets: [{ input_le: '1000', output_le: '500', rate: 2 }], bearerToken: PROM_TOKEN });
  });
  afterAll(async () => {
    await stopOperators(ops);
    await prometheus?.close();
    helm.close();
    if (cluster) await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('helm install creates the CRDs (kept on uninstall), the RBAC and the operator Deployment', async () => {
    const { apiext, apps, rbac, core } = makeClients(kc);
    for (const name of CRDS) await expect(apiext.readCustomResourceDefinition({ name })).rejects.toSatisfy(isNotFound);
    const out = await helm.ok(['install', RELEASE, CHART_PATH, '--create-namespace', ...helmArgs()]);
    expect(out).toMatch(/STATUS: deployed/);
    for (const name of CRDS) {
      await waitForCrdEstablished(kc, name);
      const crd = await apiext.readCustomResourceDefinition({ name });
      expect(crd.metadata?.annotations?.['helm.sh/resource-policy']).toBe('keep');
      expect(crd.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
      uids[name] = crd.metadata?.uid ?? '';
    }
    const dep = await apps.readNamespacedDeployment({ name: RELEASE, namespace: OP_NS });
    expect(dep.spec?.replicas).toBe(2);
    expect(dep.spec?.template.spec?.containers[0]?.command).toEqual(['node', '/app/bin/melangectl.js', 'controller']);
    await core.readNamespacedServiceAccount({ name: RELEASE, namespace: OP_NS });
    expect(accessTriples((await rbac.readClusterRole({ name: RELEASE })).rules as Rule[]).length).toBe(24);
    expect((await rbac.readNamespacedRole({ name: `${RELEASE}-leader-election`, namespace: OP_NS })).rules).toHaveLength(1);
    // The model team's objects.
    await core.createNamespace({ body: { metadata: { name: APP_NS } } });
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, APP_NS);
    // The Prometheus token, opted in for the operator (melange.dev/prometheus-credentials).
    await core.createNamespacedSecret({
      namespace: APP_NS,
      body: { metadata: { name: PROM_SECRET, labels: { 'melange.dev/prometheus-credentials': 'true' } }, stringData: { token: PROM_TOKEN } },
    });
  });

  // ---- least privilege --------------------------------------------------------------------------------------
  const authz = () => kc.makeApiClient(AuthorizationV1Api);
  /** Does the operator's identity have this access right now (the authorizer's view, not ours)? */
  const allowed = async (group: string, resource: string, verb: string, namespace?: string) => {
    const [res, sub] = resource.split('/');
    const r = await authz().createSubjectAccessReview({
      body: {
        spec: {
          user: SA_USER,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${OP_NS}`, 'system:authenticated'],
          resourceAttributes: { group, resource: res, ...(sub ? { subresource: sub } : {}), verb, ...(namespace ? { namespace } : {}) },
        },
      },
    });
    return r.status?.allowed === true;
  };

  const readRules = async (kind: 'ClusterRole' | 'Role'): Promise<Rule[]> => {
    const { rbac } = makeClients(kc);
    const obj = kind === 'ClusterRole' ? await rbac.readClusterRole({ name: RELEASE }) : await rbac.readNamespacedRole({ name: `${RELEASE}-leader-election`, namespace: OP_NS });
    return (obj.rules ?? []).map((r) => ({ apiGroups: r.apiGroups ?? [], resources: r.resources ?? [], verbs: r.verbs }));
  };
  const writeRules = async (kind: 'ClusterRole' | 'Role', rules: Rule[]) => {
    const { rbac } = makeClients(kc);
    if (kind === 'ClusterRole') {
      const cur = await rbac.readClusterRole({ name: RELEASE });
      await rbac.replaceClusterRole({ name: RELEASE, body: { ...cur, rules } });
    } else {
      const cur = await rbac.readNamespacedRole({ name: `${RELEASE}-leader-election`, namespace: OP_NS });
      await rbac.replaceNamespacedRole({ name: `${RELEASE}-leader-election`, namespace: OP_NS, body: { ...cur, rules } });
    }
  };

  let scenarioCount = 0;
  interface Outcome {
    ok: boolean;
    how: string;
    ms: number;
  }
  const denied = (l: LogLine) => l.code === 403 || /HTTP 403|forbidden/i.test(String(l.err ?? ''));

  /**
   * The P3 scenario as the chart's ServiceAccount, from a fresh operator process: elect a leader on a fresh
   * Lease and renew it, sync every informer, measure the workload from Prometheus with the bearer token of a
   * Secret (GET), solve a new LLMService, server-side apply its Deployment (owner reference with
   * blockOwnerDeletion), write its status, record its AllocationChanged event; and no request refused. Returns as soon as it is complete, or as soon as the API server refused anything / the process
   * exited (that is how a missing verb shows), or after 45 s.
   */
  const scenario = async (): Promise<Outcome> => {
    const n = ++scenarioCount;
    const svcName = `svc-${n}`;
    const lease = `lease-${n}`;
    const t0 = Date.now();
    const op = await startOperator({
      kubeconfig: opKubeconfig,
      leaseNamespace: OP_NS,
      logDir: join(dir, 'logs'),
      name: `ship-op-${n}`,
      waitReady: false,
      // --router-image: the router's ConfigMap and Services are applied too, so their verbs are exercised.
      extraArgs: [`--leader-election-id=${lease}`, '--lease-duration=4s', '--renew-deadline=3s', '--retry-period=1s', '--router-image=registry.invalid/melange-operator:test'],
    });
    ops.push(op);
    const { custom, apps, events, coordination } = makeClients(kc);
    // The GPUPool reconciler writes status only when it changed: clear it so this operator must write it again.
    await custom.patchClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: 'gpupools', name: tiny.poolName, body: { status: null } }, mergePatch());
    // No static workload: without the token there is nothing to plan from (no fallback hides a missing verb).
    const workload = {
      source: 'Prometheus',
      prometheus: { url: prometheus!.url, window: '1m', bearerTokenSecretRef: { name: PROM_SECRET, key: 'token' } },
    };
    await applyCr(kc, { ...tiny.service, metadata: { name: svcName }, spec: { ...(tiny.service.spec as Obj), workload } }, APP_NS);
    const missing: string[] = [];
    let outcome: Outcome | undefined;
    try {
      outcome = await waitFor(
        async (): Promise<Outcome | undefined> => {
          const refused = op.logs().find(denied);
          if (refused) return { ok: false, how: `refused: ${String(refused.msg)}: ${String(refused.err ?? '').slice(0, 160)}`, ms: Date.now() - t0 };
          if (!op.alive()) return { ok: false, how: `operator exited ${JSON.stringify(op.exit)}`, ms: Date.now() - t0 };
          missing.length = 0;
          const s = await getService(kc, APP_NS, svcName);
          const metrics = s.status?.conditions?.find((c) => c.type === 'MetricsAvailable');
          // The Secret GET refused shows in the condition, not as a logged API error: fail as fast.
          if (metrics?.status === 'False' && /HTTP 40[13]/.test(metrics.message)) return { ok: false, how: `refused: MetricsAvailable ${metrics.reason}: ${metrics.message.slice(0, 200)}`, ms: Date.now() - t0 };
          if (metrics?.reason !== 'RouterMetrics') missing.push(`metrics (${metrics?.reason ?? 'none'})`);
          if (!(s.status?.observedGeneration === 1 && s.status.allocation?.[0]?.replicas === tinyReplicas(2))) missing.push('status');
          const d = await apps.readNamespacedDeployment({ name: `${svcName}-${tiny.poolName}`, namespace: APP_NS }).catch(() => undefined);
          if (!d?.metadata?.ownerReferences?.[0]?.blockOwnerDeletion) missing.push('deployment');
          const ev = await events.listNamespacedEvent({ namespace: APP_NS });
          if (!ev.items.some((e) => e.reason === 'AllocationChanged' && e.regarding?.name === svcName)) missing.push('event');
          const l = await coordination.readNamespacedLease({ name: lease, namespace: OP_NS }).catch(() => undefined);
          if (!(l?.spec?.holderIdentity === op.identity && String(l.spec.renewTime) !== String(l.spec.acquireTime))) missing.push('lease renewed');
          const pool = (await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'gpupools', name: tiny.poolName })) as { status?: { demandedGPUs?: number } };
          if (pool.status?.demandedGPUs !== tinyReplicas(2)) missing.push(`gpupool status (demandedGPUs ${String(pool.status?.demandedGPUs)})`);
          return missing.length === 0 ? { ok: true, how: 'complete', ms: Date.now() - t0 } : undefined;
        },
        { what: `scenario ${n}`, timeoutMs: 45_000, intervalMs: 250 },
      );
    } catch {
      outcome = { ok: false, how: `incomplete after 45 s: missing ${missing.join(', ')}`, ms: Date.now() - t0 };
    }
    if (outcome.ok) {
      // Complete; give a late refusal (a watch opened after the LIST) one more beat to show up.
      await delay(500);
      const refused = op.logs().find(denied);
      if (refused) outcome = { ok: false, how: `refused: ${String(refused.msg)}: ${String(refused.err ?? '').slice(0, 160)}`, ms: Date.now() - t0 };
    }
    await op.terminate(15_000).catch(() => op.kill());
    await ignoreNotFound(() => custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'llmservices', namespace: APP_NS, name: svcName }));
    await ignoreNotFound(() => apps.deleteNamespacedDeployment({ name: `${svcName}-${tiny.poolName}`, namespace: APP_NS }));
    return outcome;
  };

  it('the operator with exactly the chart ServiceAccount permissions completes the scenario', async () => {
    const r = await scenario();
    console.log(`[ship-lifecycle] full chart RBAC: ${r.how} in ${r.ms} ms`);
    expect(r, r.how).toMatchObject({ ok: true });
  });

  it('removing any one verb of the chart RBAC makes the scenario fail (all 23 it exercises, one at a time)', async () => {
    const original = { ClusterRole: await readRules('ClusterRole'), Role: await readRules('Role') };
    const cases: Array<{ kind: 'ClusterRole' | 'Role'; group: string; resource: string; verb: string }> = [];
    for (const kind of ['ClusterRole', 'Role'] as const) {
      for (const t of accessTriples(original[kind])) {
        const [group, resource, verb] = t.split('|') as [string, string, string];
        // Provider verbs need a MachineDeployment / NodePool to act on: pools-rbac.test.ts proves each of them.
        if (group === 'cluster.x-k8s.io' || group === 'karpenter.sh') continue;
        cases.push({ kind, group, resource, verb });
      }
    }
    expect(cases).toHaveLength(23);
    const results: string[] = [];
    const t0 = Date.now();
    try {
      for (const c of cases) {
        const ns = c.kind === 'Role' ? OP_NS : ['gpupools', 'gpupools/status', 'nodes'].includes(c.resource) ? undefined : APP_NS;
        await writeRules(c.kind, withoutVerb(original[c.kind], c.group, c.resource, c.verb));
        await waitFor(async () => !(await allowed(c.group, c.resource, c.verb, ns)), { what: `authorizer to drop ${c.verb} ${c.resource}`, timeoutMs: 10_000, intervalMs: 100 });
        const r = await scenario();
        await writeRules(c.kind, original[c.kind]);
        await waitFor(() => allowed(c.group, c.resource, c.verb, ns), { what: `authorizer to restore ${c.verb} ${c.resource}`, timeoutMs: 10_000, intervalMs: 100 });
        results.push(`${r.ok ? 'STILL PASSES' : 'fails'} without ${c.verb.padEnd(6)} ${`${c.group}/${c.resource}`.padEnd(32)} after ${String(r.ms).padStart(5)} ms: ${r.how}`);
      }
    } finally {
      await writeRules('ClusterRole', original.ClusterRole).catch(() => {});
      await writeRules('Role', original.Role).catch(() => {});
    }
    console.log(`[ship-lifecycle] one-verb-removed matrix (${((Date.now() - t0) / 1000).toFixed(0)} s):\n${results.join('\n')}`);
    expect(results.filter((r) => r.startsWith('STILL PASSES'))).toEqual([]);
    // And with everything restored it passes again (the matrix did not break the fixture).
    const again = await scenario();
    expect(again, again.how).toMatchObject({ ok: true });
  });

  // ---- upgrade and uninstall ----------------------------------------------------------------------------
  it('helm upgrade (new values, then crds.install=false) keeps the CRDs and the existing LLMServices', async () => {
    const { custom, apiext, apps } = makeClients(kc);
    await applyCr(kc, { ...tiny.service, metadata: { name: 'keep-me' } }, APP_NS);
    const before = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'llmservices', namespace: APP_NS, name: 'keep-me' })) as Obj;

    const out = await helm.ok(['upgrade', RELEASE, CHART_PATH, ...helmArgs(), '--set', 'logLevel=debug,replicaCount=3']);
    expect(out).toMatch(/REVISION: 2/);
    const dep = await apps.readNamespacedDeployment({ name: RELEASE, namespace: OP_NS });
    expect(dep.spec?.replicas).toBe(3);
    expect(dep.spec?.template.spec?.containers[0]?.args).toContain('--log-level=debug');

    // Dropping the CRDs from the release: the keep policy leaves them (and every custom resource) alone.
    await helm.ok(['upgrade', RELEASE, CHART_PATH, ...helmArgs(), '--reuse-values', '--set', 'crds.install=false']);
    for (const name of CRDS) expect((await apiext.readCustomResourceDefinition({ name })).metadata?.uid).toBe(uids[name]);
    const after = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'llmservices', namespace: APP_NS, name: 'keep-me' })) as Obj;
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.spec).toEqual(before.spec);
    expect((await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'gpupools' })).items).toHaveLength(1);
  });

  it('helm uninstall removes the operator and its RBAC, keeps the CRDs and the LLMServices', async () => {
    const { custom, apiext, apps, rbac } = makeClients(kc);
    // Back to a release that owns the CRDs (helm adopts them: they still carry its ownership metadata).
    await helm.ok(['upgrade', RELEASE, CHART_PATH, ...helmArgs(), '--reuse-values', '--set', 'crds.install=true']);
    const out = await helm.run(['uninstall', RELEASE, ...helmArgs(), '--wait']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout + out.stderr).toMatch(/These resources were kept due to the resource policy:[\s\S]*CustomResourceDefinition/);
    await expect(apps.readNamespacedDeployment({ name: RELEASE, namespace: OP_NS })).rejects.toSatisfy(isNotFound);
    await expect(rbac.readClusterRole({ name: RELEASE })).rejects.toSatisfy(isNotFound);
    for (const name of CRDS) expect((await apiext.readCustomResourceDefinition({ name })).metadata?.uid).toBe(uids[name]);
    const still = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'llmservices', namespace: APP_NS, name: 'keep-me' })) as Obj;
    expect(still.metadata.name).toBe('keep-me');
  });
});
