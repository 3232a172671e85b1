/**
 * Issue 5: the operator publishes the routing split. With --router-defaults / --router-image, an LLMService with
 * spec.router.enabled gets a ConfigMap `<svc>-router` (a router config the router's own validateConfig
 * accepts, split = status.split restricted to ready pools), one headless Service per pool, the router
 * Deployment and the Service `<svc>`, all owned by the LLMService. Real API server; the operator as a process.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/router/config.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, deploymentsOf, replicasByPool, waitForService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
const LATENCY = { overheadMillis: 30, prefillMillisPerToken: 0.4618, decodeStepMillis: 53, decodeMillisPerContextToken: 0.003333 };

describe('operator: publishes the router (ConfigMap, per-pool Services, Deployment, Service)', () => {
  const ns = useTestNamespace('op-router');
  const suffix = uniqueName('rt').slice(3);
  const tiny = tinyService('svc', suffix);
  const ops: OperatorProcess[] = [];
  let kc: KubeConfig;

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCr(kc, tiny.pool);
    // With a latency model: it must survive the API server (no pruning by the CRD schema) into the router config.
    await applyCr(kc, { ...tiny.profile, spec: { ...(tiny.profile.spec as Record<string, unknown>), latency: LATENCY } }, ns.name);
  });
  afterAll(async () => {
    await stopOperators(ops);
    if (!kc) return;
    await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }));
  });

  it('the ConfigMap parses with the router validateConfig and its split matches status.split', async () => {
    const defaultsFile = join(env.runDir, `op-router-${suffix}-router-defaults.yaml`);
    writeFileSync(
      defaultsFile,
      ['image: registry.invalid/from-file:1', 'replicas: 4', 'logLevel: debug', 'shutdownGraceMs: 20000', 'resources: {requests: {cpu: 100m, memory: 64Mi}}', ''].join('\n'),
    );
    const op = await startOperator({
      kubeconfig: env.kubeconfig,
      leaseNamespace: ns.name,
      watchNamespace: ns.name,
      logDir: `${env.runDir}/logs`,
      name: `op-router-${suffix}`,
      // The file's image is overridden by --router-image; its other fields apply; spec.router.replicas wins.
      extraArgs: ['--router-defaults', defaultsFile, '--router-image', 'registry.invalid/melange-operator:test'],
    });
    ops.push(op);
    const spec = tiny.service.spec as Record<string, unknown>;
    await applyCr(kc, { ...tiny.service, spec: { ...spec, router: { enabled: true, replicas: 1 } } }, ns.name);
    const svc = await waitForService(kc, ns.name, 'svc', (s) => (s.status?.split?.length ?? 0) > 0, 'a split in status', 60_000);
    const { core, apps } = makeClients(kc);
    const cm = await waitFor(async () => ignoreNotFound(() => core.readNamespacedConfigMap({ name: 'svc-router', namespace: ns.name })), { what: 'ConfigMap svc-router', timeoutMs: 30_000 });
    const v = validateConfig(parseYaml(cm.data?.['config.yaml'] ?? ''));
    if (!v.ok) throw new Error(`router config invalid: ${v.errors.join('; ')}`);
    expect(v.config.service).toEqual({ namespace: ns.name, name: 'svc' });
    expect(v.config.buckets).toEqual({ inputEdges: [1000], outputEdges: [500] });
    // DNS discovery of the pool's headless Service, relative to the cluster domain, on the port it publishes
    // (the template names no port: 8000).
    expect(v.config.pools).toEqual([{ name: tiny.poolName, gpuType: 'TINY', dns: { name: `svc-${tiny.poolName}.${ns.name}.svc`, port: 8000, refreshMs: 5000 }, latency: LATENCY }]);
    // one pool with a model: nowhere to redirect to, so no SLO guard
    expect(v.config.routing.sloGuard).toBeUndefined();
    expect(v.config.split).toEqual(svc.status?.split);

    const uid = svc.metadata.uid;
    const owned = (o: { metadata?: { ownerReferences?: Array<{ uid?: string; controller?: boolean }> } }) => o.metadata?.ownerReferences?.some((r) => r.uid === uid && r.controller) ?? false;
    expect(owned(cm)).toBe(true);
    const poolSvc = await core.readNamespacedService({ name: `svc-${tiny.poolName}`, namespace: ns.name });
    expect(poolSvc.spec?.clusterIP).toBe('None');
    expect(poolSvc.spec?.selector).toEqual({ 'melange.dev/service': 'svc', 'melange.dev/pool': tiny.poolName });
    expect(poolSvc.spec?.publishNotReadyAddresses ?? false).toBe(false); // omitted when false
    expect(poolSvc.spec?.ports?.map((p) => [p.name, p.port, p.targetPort])).toEqual([['http', 8000, 8000]]);
    expect(owned(poolSvc)).toBe(true);
    const front = await core.readNamespacedService({ name: 'svc', namespace: ns.name });
    expect(owned(front)).toBe(true);
    const router = await apps.readNamespacedDeployment({ name: 'svc-router', namespace: ns.name });
    expect(owned(router)).toBe(true);
    const rc = router.spec?.template.spec?.containers[0];
    expect(rc?.image).toBe('registry.invalid/melange-operator:test');
    expect(router.spec?.replicas).toBe(1);
    expect(rc?.args).toEqual(expect.arrayContaining(['--log-level', 'debug', '--shutdown-grace-ms', '20000']));
    expect(rc?.resources).toEqual({ requests: { cpu: '100m', memory: '64Mi' } });
    expect(rc?.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    expect(rc?.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(rc?.lifecycle?.preStop?.sleep?.seconds).toBe(5); // accepted by the API server (PodLifecycleSleepAction)
    expect(router.spec?.template.spec?.terminationGracePeriodSeconds).toBe(5 + 20 + 5);
    expect(router.spec?.template.metadata?.annotations?.['melange.dev/router-settings-hash']).toMatch(/^[0-9a-f]{16}$/);
    expect(router.spec?.template.spec?.volumes?.[0]?.configMap?.name).toBe('svc-router');
    // No API access needed (DNS discovery): no ServiceAccount token, as stored by the API server.
    expect(router.spec?.template.spec?.automountServiceAccountToken).toBe(false);
    expect(router.spec?.template.spec?.serviceAccountName ?? 'default').toBe('default');
    expect(front.spec?.selector).toEqual(router.spec?.selector?.matchLabels);
    // The router Deployment is not a pool: the model-server Deployments are untouched by it.
    expect(replicasByPool(await deploymentsOf(kc, ns.name, 'svc'))).toEqual({ [tiny.poolName]: tinyReplicas(2) });
    expect(op.logs().filter((l) => l.code === 403 || l.level === 'error' || (typeof l.level === 'number' && l.level >= 50))).toEqual([]);
  });
});
