/**
 * The Helm chart with the real helm (v3.22, built from Go modules by hack/test-bins.sh, HOME and HELM_* in a
 * temp dir): `helm lint --strict`, `helm template` (defaults and variants), the rendered RBAC equal to
 * deploy/10-rbac.yaml, the rendered operator Deployment and router defaults equal to deploy/20-operator.yaml where it matters,
 * then `helm install` into the shared test control plane (CRDs left to the harness: crds.install=false) and
 * the operator run as exactly the chart's ServiceAccount (a client cert for
 * system:serviceaccount:<ns>:<sa>) serving a service to Ready on kwok GPU nodes.
 * The CRD install / upgrade / uninstall cycle and the one-verb-removed matrix need a cluster of their own:
 * test/integration/ship-lifecycle.test.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PolicyV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRouterDefaults } from '../../src/controller/router-defaults.js';
import { KUBE_VERSION } from '../support/control-plane.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, isNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, createGpuNodes, deleteGpuNodes, deploymentsOf, waitForService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { pkiPaths, signClientCert, writeKubeconfig } from '../support/pki.js';
import { waitFor } from '../support/wait.js';
import { CHART_PATH, Helm, accessTriples, byKind, oneOf, parseDocs, type Obj, type Rule } from '../unit/ship/helpers.js';

const env = testEnv();
const full = env.profile === 'full';
const deployDocs = (f: string) => parseDocs(readFileSync(repoPath('deploy', f), 'utf8'));
const crdSource = (f: string) => parseDocs(readFileSync(repoPath('crds', f), 'utf8'))[0]!;
/** The router defaults file in a rendered/shipped ConfigMap, validated by the operator's own schema. */
const routerDefaultsOf = (cm: Obj) => {
  const r = parseRouterDefaults(cm.data['router-defaults.yaml']);
  if (!r.ok) throw new Error(`router-defaults.yaml of ConfigMap/${cm.metadata.name} is invalid: ${r.errors.join('; ')}`);
  return r.defaults;
};

describe('chart: helm lint and helm template', () => {
  const helm = new Helm(env.binDir);
  afterAll(() => helm.close());

  it('helm lint --strict passes with the defaults and with every toggle flipped', async () => {
    const variants: Obj[] = [
      {},
      { crds: { install: false }, rbac: { aggregatedRoles: false }, metrics: { serviceMonitor: { enabled: true } }, podDisruptionBudget: { enabled: false } },
      { replicaCount: 1, leaderElection: { enabled: false }, serviceAccount: { create: false, name: 'existing' }, image: { digest: `sha256:${'0'.repeat(64)}` }, watchNamespace: 'llm' },
    ];
    for (const v of variants) {
      const r = await helm.run(['lint', '--strict', CHART_PATH, '--kube-version', KUBE_VERSION, '-f', helm.valuesFile(v)]);
      expect(r.code, `${JSON.stringify(v)}\n${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('helm template renders the documented objects, all labelled and in the release namespace', async () => {
    const docs = await helm.template('melange-operator', 'melange-system');
    const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ClusterRole/melange-operator',
        'ClusterRole/melange-operator-editor',
        'ClusterRole/melange-operator-viewer',
        'ClusterRoleBinding/melange-operator',
        'ConfigMap/melange-operator-router-defaults',
        'CustomResourceDefinition/gpupools.melange.dev',
        'CustomResourceDefinition/gpuprofiles.melange.dev',
        'CustomResourceDefinition/llmservices.melange.dev',
        'Deployment/melange-operator',
        'PodDisruptionBudget/melange-operator',
        'Role/melange-operator-leader-election',
        'RoleBinding/melange-operator-leader-election',
        'Service/melange-operator-metrics',
        'ServiceAccount/melange-operator',
      ].sort(),
    );
    const cluster = new Set(['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition']);
    for (const d of docs) {
      expect(d.metadata.labels, `${d.kind}/${d.metadata.name}`).toMatchObject({
        'app.kubernetes.io/name': 'melange-operator',
        'app.kubernetes.io/instance': 'melange-operator',
        'app.kubernetes.io/version': '0.1.0',
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/part-of': 'melange',
        'helm.sh/chart': 'melange-operator-0.1.0',
      });
      if (cluster.has(d.kind)) expect(d.metadata.namespace).toBeUndefined();
      else expect(d.metadata.namespace, `${d.kind}/${d.metadata.name}`).toBe('melange-system');
    }
  });

  it('RBAC: the ClusterRole and the leader-election Role grant exactly what deploy/10-rbac.yaml grants', async () => {
    const docs = await helm.template('melange-operator', 'melange-system');
    const deploy = deployDocs('10-rbac.yaml');
    const chartRole = oneOf(docs, 'ClusterRole', 'melange-operator');
    const deployRole = oneOf(deploy, 'ClusterRole');
    expect(chartRole.rules).toEqual(deployRole.rules); // same rules, same order
    expect(accessTriples(chartRole.rules as Rule[])).toEqual(accessTriples(deployRole.rules as Rule[]));
    expect(oneOf(docs, 'Role').rules).toEqual(oneOf(deploy, 'Role').rules);
    // Same names and bindings as deploy/ for the release name melange-operator in melange-system.
    for (const kind of ['ServiceAccount', 'ClusterRoleBinding', 'Role', 'RoleBinding']) {
      const c = oneOf(docs, kind);
      const d = oneOf(deploy, kind);
      expect(c.metadata.name, kind).toBe(d.metadata.name);
      expect(c.metadata.namespace, kind).toBe(d.metadata.namespace);
      if (d.subjects) expect(c.subjects, kind).toEqual(d.subjects);
      if (d.roleRef) expect(c.roleRef, kind).toEqual(d.roleRef);
    }
    // Aggregated roles for people: read everything, write only namespaced objects, never GPUPools.
    const viewer = oneOf(docs, 'ClusterRole', 'melange-operator-viewer');
    const editor = oneOf(docs, 'ClusterRole', 'melange-operator-editor');
    expect(viewer.metadata.labels['rbac.authorization.k8s.io/aggregate-to-view']).toBe('true');
    expect(editor.metadata.labels['rbac.authorization.k8s.io/aggregate-to-edit']).toBe('true');
    expect(editor.metadata.labels['rbac.authorization.k8s.io/aggregate-to-view']).toBeUndefined();
    expect(accessTriples(editor.rules).some((t) => t.includes('gpupools'))).toBe(false);
    for (const r of [...chartRole.rules, ...viewer.rules, ...editor.rules] as Rule[]) {
      expect(r.verbs).not.toContain('*');
      expect(r.resources).not.toContain('*');
    }
    // Secrets: the operator may only GET one by name (a labelled Prometheus credential, docs/workload.md),
    // never list or watch them; people's aggregated roles get nothing on Secrets.
    expect((chartRole.rules as Rule[]).filter((r) => r.resources.includes('secrets'))).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    for (const r of [...viewer.rules, ...editor.rules] as Rule[]) expect(r.resources).not.toContain('secrets');
  });

  it('the operator Deployment matches deploy/20-operator.yaml: replicas, command, flags, probes, hardening', async () => {
    const docs = await helm.template('melange-operator', 'melange-system');
    const deploy = deployDocs('20-operator.yaml');
    const c = oneOf(docs, 'Deployment');
    const d = oneOf(deploy, 'Deployment');
    const [cp, dp] = [c.spec.template.spec, d.spec.template.spec];
    const [cc, dc] = [cp.containers[0], dp.containers[0]];
    expect(c.spec.replicas).toBe(d.spec.replicas);
    expect(cc.image).toBe(dc.image);
    expect(cc.command).toEqual(dc.command);
    for (const a of dc.args as string[]) expect(cc.args, a).toContain(a);
    expect(cc.env).toEqual(dc.env);
    expect(cc.ports).toEqual(dc.ports);
    for (const probe of ['livenessProbe', 'readinessProbe']) {
      expect(cc[probe].httpGet, probe).toEqual(dc[probe].httpGet);
      expect(cc[probe]).toMatchObject({ initialDelaySeconds: dc[probe].initialDelaySeconds, periodSeconds: dc[probe].periodSeconds });
    }
    expect(cc.resources).toEqual(dc.resources);
    expect(cc.securityContext).toEqual(dc.securityContext);
    expect(cp.securityContext).toEqual(dp.securityContext);
    expect(cp.serviceAccountName).toBe(dp.serviceAccountName);
    expect(cp.terminationGracePeriodSeconds).toBe(dp.terminationGracePeriodSeconds);
    expect(cc.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(cp.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } });
    expect(cp.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(oneOf(docs, 'PodDisruptionBudget').spec.minAvailable).toBe(oneOf(deploy, 'PodDisruptionBudget').spec.minAvailable);
    expect(oneOf(docs, 'Service').spec.ports).toEqual([{ ...oneOf(deploy, 'Service').spec.ports[0], protocol: 'TCP' }]);
    // The router defaults: the same flag (checked with the args above), mount and file content as deploy/.
    expect(cc.args).toContain('--router-defaults=/etc/melange/router-defaults.yaml');
    const mount = (dc.volumeMounts as Obj[]).find((m) => m.name === 'router-defaults');
    expect(mount).toEqual({ name: 'router-defaults', mountPath: '/etc/melange', readOnly: true });
    expect(cc.volumeMounts).toContainEqual(mount);
    const [cm, dm] = [oneOf(docs, 'ConfigMap'), oneOf(deploy, 'ConfigMap')];
    expect(cm.metadata.name).toBe(dm.metadata.name);
    expect(cp.volumes).toContainEqual({ name: 'router-defaults', configMap: { name: cm.metadata.name } });
    expect(dp.volumes).toContainEqual({ name: 'router-defaults', configMap: { name: dm.metadata.name } });
    const [chartDefaults, deployDefaults] = [routerDefaultsOf(cm), routerDefaultsOf(dm)];
    expect(chartDefaults).toEqual(deployDefaults);
    expect(chartDefaults.image).toBe(cc.image); // the operator image runs `melangectl router` too
  });

  it('CRDs: rendered from crds/ verbatim with the keep policy; crds.install=false and crds.keep=false work', async () => {
    const docs = await helm.template('melange-operator', 'melange-system');
    for (const crd of byKind(docs, 'CustomResourceDefinition')) {
      const source = crdSource(`melange.dev_${crd.spec.names.plural}.yaml`);
      expect(crd.spec).toEqual(source.spec);
      expect(crd.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
    }
    expect(byKind(await helm.template('x', 'y', { crds: { install: false } }), 'CustomResourceDefinition')).toEqual([]);
    const unkept = byKind(await helm.template('x', 'y', { crds: { keep: false } }), 'CustomResourceDefinition');
    expect(unkept).toHaveLength(3);
    for (const crd of unkept) expect(crd.metadata.annotations['helm.sh/resource-policy']).toBeUndefined();
  });

  it('values: every operator flag is wired; toggles add and remove objects', async () => {
    const docs = await helm.template('rel', 'ops', {
      replicaCount: 3,
      logLevel: 'debug',
      workers: 8,
      watchNamespace: 'llm',
      leaderElection: { leaseName: 'my-lease', leaseDuration: '30s', renewDeadline: '20s', retryPeriod: '5s' },
      solveDeadline: '30s',
      rewatchPeriod: '10m',
      shutdownGrace: '20s',
      extraArgs: ['--foo=bar'],
      image: { repository: 'registry.example/melange', tag: '9.9.9', digest: `sha256:${'a'.repeat(64)}` },
      metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } },
      router: { replicas: 3, logLevel: 'warn' },
    });
    const dep = oneOf(docs, 'Deployment');
    expect(dep.metadata.name).toBe('rel-melange-operator');
    const c = dep.spec.template.spec.containers[0];
    expect(c.image).toBe(`registry.example/melange:9.9.9@sha256:${'a'.repeat(64)}`);
    expect(c.args).toEqual([
      '--leader-elect=true',
      '--leader-election-id=my-lease',
      '--lease-duration=30s',
      '--renew-deadline=20s',
      '--retry-period=5s',
      '--health-addr=0.0.0.0:8081',
      '--metrics-addr=0.0.0.0:8080',
      '--log-level=debug',
      '--solve-deadline=30s',
      '--workers=8',
      '--rewatch-period=10m',
      '--shutdown-grace=20s',
      '--router-defaults=/etc/melange/router-defaults.yaml',
      '--watch-namespace=llm',
      '--foo=bar',
    ]);
    expect(dep.spec.replicas).toBe(3);
    const sm = oneOf(docs, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('prom');
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics', interval: '30s' });
    expect(sm.spec.selector.matchLabels['app.kubernetes.io/component']).toBe('metrics');
    expect(oneOf(docs, 'Service').metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(c.args).toContain('--router-defaults=/etc/melange/router-defaults.yaml');
    // The router defaults the operator reads: valid for its schema; the operator image (digest included) by default.
    const router = routerDefaultsOf(oneOf(docs, 'ConfigMap'));
    expect(router).toMatchObject({ image: `registry.example/melange:9.9.9@sha256:${'a'.repeat(64)}`, replicas: 3, logLevel: 'warn', port: 8080, metricsPort: 9090, maxBodyBytes: 16777216 });
    const own = routerDefaultsOf(
      oneOf(
        await helm.template('rel', 'ops', {
          image: { tag: '9.9.9' },
          router: { image: { repository: 'registry.example/router', pullPolicy: 'Always' }, serviceAccountName: 'melange-router', imagePullSecrets: [{ name: 'regcred' }], preStopSleepSeconds: 0, resources: { requests: { cpu: 1 } } },
        }),
        'ConfigMap',
      ),
    );
    expect(own).toMatchObject({ image: 'registry.example/router:9.9.9', imagePullPolicy: 'Always', serviceAccountName: 'melange-router', imagePullSecrets: [{ name: 'regcred' }], preStopSleepSeconds: 0, resources: { requests: { cpu: 1 } } });
    expect(routerDefaultsOf(oneOf(await helm.template('rel', 'ops', { router: { image: { tag: 'r1', digest: `sha256:${'b'.repeat(64)}` } } }), 'ConfigMap')).image).toBe(
      `ghcr.io/melange-operator/melange-operator:r1@sha256:${'b'.repeat(64)}`,
    );

    const single = await helm.template('rel', 'ops', { replicaCount: 1, leaderElection: { enabled: false }, rbac: { aggregatedRoles: false } });
    expect(byKind(single, 'PodDisruptionBudget')).toEqual([]); // a PDB of 1/1 would block every drain
    expect(byKind(single, 'Role')).toEqual([]);
    expect(byKind(single, 'ClusterRole').map((r) => r.metadata.name)).toEqual(['rel-melange-operator']);
    expect(oneOf(single, 'Deployment').spec.template.spec.containers[0].args).toContain('--leader-elect=false');
  });

  it.each([
    ['a typo in a value name', ['--set', 'logLevle=debug'], /additional properties 'logLevle' not allowed/],
    ['a wrong type', ['--set-string', 'replicaCount=two'], /replicaCount/],
    ['a bad duration', ['--set', 'leaderElection.leaseDuration=15'], /leaseDuration/],
    ['two replicas without leader election', ['--set', 'leaderElection.enabled=false'], /replicaCount > 1 needs leaderElection.enabled=true/],
    ['a ServiceMonitor without the metrics Service', ['--set', 'metrics.serviceMonitor.enabled=true,metrics.service.enabled=false'], /needs metrics.service.enabled/],
    ['a Kubernetes older than 1.30', ['--kube-version', '1.29.9'], /kubeVersion: >=1.30.0-0 which is incompatible/],
  ])('helm template refuses %s', async (_what, args, message) => {
    const r = await helm.run(['template', 'melange-operator', CHART_PATH, '--kube-version', KUBE_VERSION, ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });
});

describe('chart: helm install into the test control plane; the operator runs as the chart ServiceAccount', () => {
  // Short names: the client cert's CN system:serviceaccount:<ns>:<sa> must fit X.509's 64 characters.
  const ns = useTestNamespace('sh');
  const helm = new Helm(env.binDir);
  const suffix = uniqueName('sh').slice(3);
  const release = `mo-${suffix}`.slice(0, 40);
  const fullname = `mo-${suffix.slice(-6)}`;
  const tiny = tinyService('svc', suffix, 2);
  const node = { name: `tiny-0-${suffix}`, product: tiny.product, gpus: 8 };
  const ops: OperatorProcess[] = [];
  let kc: KubeConfig;
  let installed = false;

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds')); // the shared cluster's CRDs belong to the harness
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, ns.name);
    if (full) await createGpuNodes(kc, [node]);
  });
  afterAll(async () => {
    await stopOperators(ops);
    if (installed) await helm.run(['uninstall', release, '--namespace', ns.name, '--kubeconfig', env.kubeconfig, '--wait', '--timeout', '60s']);
    helm.close();
    if (!kc) return;
    await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }));
    if (full) await deleteGpuNodes(kc, [node]);
  });

  it('helm install creates the ServiceAccount, RBAC, operator Deployment, PDB and metrics Service', async () => {
    const values = { crds: { install: false }, replicaCount: 2, fullnameOverride: fullname };
    const out = await helm.ok(['install', release, CHART_PATH, '--namespace', ns.name, '--kubeconfig', env.kubeconfig, '-f', helm.valuesFile(values), '--timeout', '120s']);
    installed = true;
    expect(out).toMatch(/STATUS: deployed/);
    const { core, apps, rbac } = makeClients(kc);
    const name = fullname;
    const sa = await core.readNamespacedServiceAccount({ name, namespace: ns.name });
    expect(sa.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
    const role = await rbac.readClusterRole({ name });
    const deployRole = oneOf(deployDocs('10-rbac.yaml'), 'ClusterRole');
    expect(accessTriples(role.rules as Rule[])).toEqual(accessTriples(deployRole.rules as Rule[]));
    const binding = await rbac.readClusterRoleBinding({ name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name, namespace: ns.name }]);
    expect((await rbac.readNamespacedRole({ name: `${name}-leader-election`, namespace: ns.name })).rules?.[0]?.resources).toEqual(['leases']);
    await rbac.readNamespacedRoleBinding({ name: `${name}-leader-election`, namespace: ns.name });
    for (const agg of ['viewer', 'editor']) await rbac.readClusterRole({ name: `${name}-${agg}` });
    const dep = await apps.readNamespacedDeployment({ name, namespace: ns.name });
    expect(dep.spec?.replicas).toBe(2);
    expect(dep.spec?.template.spec?.serviceAccountName).toBe(name);
    expect(dep.spec?.template.spec?.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    await core.readNamespacedService({ name: `${name}-metrics`, namespace: ns.name });
    await core.readNamespacedConfigMap({ name: `${name}-router-defaults`, namespace: ns.name });
    expect((await kc.makeApiClient(PolicyV1Api).readNamespacedPodDisruptionBudget({ name, namespace: ns.name })).spec?.minAvailable).toBe(1);
  });

  it('the operator, with exactly the chart ServiceAccount permissions, serves a service to Ready', async () => {
    const sa = fullname;
    const pki = pkiPaths(join(env.runDir, 'pki'));
    const cert = await signClientCert(pki, `ship-helm-${suffix}`, `system:serviceaccount:${ns.name}:${sa}`, ['system:serviceaccounts', `system:serviceaccounts:${ns.name}`]);
    const kubeconfig = join(env.runDir, `ship-helm-${suffix}.kubeconfig`);
    await writeKubeconfig(kubeconfig, env.apiUrl, pki.caCrt, cert.crt, cert.key);
    // The router defaults the chart installed, read the way the pod reads its mount: a file and --router-defaults.
    const { core } = makeClients(kc);
    const defaultsCm = await core.readNamespacedConfigMap({ name: `${fullname}-router-defaults`, namespace: ns.name });
    const defaultsFile = join(env.runDir, `ship-helm-${suffix}-router-defaults.yaml`);
    writeFileSync(defaultsFile, defaultsCm.data?.['router-defaults.yaml'] ?? '');
    // Cluster-wide, like the chart's Deployment; the Lease in the release namespace (the pod's namespace).
    const op = await startOperator({ kubeconfig, leaseNamespace: ns.name, logDir: join(env.runDir, 'logs'), name: 'ship-helm-op', extraArgs: [`--router-defaults=${defaultsFile}`] });
    ops.push(op);
    await applyCr(kc, tiny.service, ns.name);
    const svc = await waitForService(kc, ns.name, 'svc', (s) => s.status?.observedGeneration === 1 && (!full || conditionOf(s, 'Ready')?.status === 'True'), 'Ready as the chart ServiceAccount', 90_000);
    expect(svc.status?.allocation?.[0]?.replicas).toBe(tinyReplicas(2));
    expect((await deploymentsOf(kc, ns.name, 'svc')).size).toBe(1);
    const { events, coordination, apps } = makeClients(kc);
    // spec.router.enabled defaults to true: the router Deployment, with the chart's defaults (operator image).
    const router = await waitFor(async () => ignoreNotFound(() => apps.readNamespacedDeployment({ name: 'svc-router', namespace: ns.name })), { what: 'Deployment svc-router', timeoutMs: 30_000 });
    const rc = router.spec?.template.spec?.containers[0];
    expect(rc?.image).toBe(`ghcr.io/melange-operator/melange-operator:0.1.0`);
    expect(rc?.command).toEqual(['node', '--max-semi-space-size=4', '/app/bin/melangectl.js', 'router']); // values.router.maxSemiSpaceSizeMiB
    expect(rc?.args).toEqual(expect.arrayContaining(['--port', '8080', '--metrics-port', '9090', '--shutdown-grace-ms', '30000']));
    expect(rc?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(rc?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(router.spec?.template.spec?.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(router.spec?.template.spec?.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(35);
    await waitFor(async () => (await events.listNamespacedEvent({ namespace: ns.name })).items.some((e) => e.reason === 'AllocationChanged' && e.regarding?.name === 'svc'), {
      what: 'AllocationChanged event',
      timeoutMs: 15_000,
    });
    expect((await coordination.readNamespacedLease({ name: 'melange-operator-leader', namespace: ns.name })).spec?.holderIdentity).toBe(op.identity);
    // Cluster-wide, it also sees other test files' services; a write into a namespace being deleted is refused
    // with 403 "… because it is being terminated", which is not an RBAC refusal.
    const denied = op.logs().filter((l) => (l.code === 403 || /HTTP 403|forbidden/i.test(String(l.err ?? ''))) && !/being terminated/.test(String(l.err ?? '')));
    expect(denied).toEqual([]);
    // ...and such a refusal is not a failed reconcile to retry (reconciler.ts: the namespace is being deleted).
    expect(op.logs().filter((l) => l.msg === 'reconcile failed; retrying' && /being terminated/.test(String(l.err ?? '')))).toEqual([]);
    expect(await op.terminate()).toBe(0);
  });

  it('helm uninstall removes what the release created (the CRDs were not part of this release)', async () => {
    await helm.ok(['uninstall', release, '--namespace', ns.name, '--kubeconfig', env.kubeconfig, '--wait', '--timeout', '60s']);
    installed = false;
    const { rbac, apps } = makeClients(kc);
    const name = fullname;
    for (const read of [() => rbac.readClusterRole({ name }), () => rbac.readClusterRoleBinding({ name }), () => apps.readNamespacedDeployment({ name, namespace: ns.name })]) {
      await expect(read()).rejects.toSatisfy(isNotFound);
    }
    const { apiext } = makeClients(kc);
    expect((await apiext.readCustomResourceDefinition({ name: 'llmservices.melange.dev' })).metadata?.name).toBe('llmservices.melange.dev');
  });
});
