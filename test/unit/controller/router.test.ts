import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/controller/logger.js';
import { Reconciler } from '../../../src/controller/reconciler.js';
import { routerDefaults } from '../../../src/controller/router-defaults.js';
import {
  ROUTER_CONFIG_KEY,
  buildPoolService,
  buildRouterConfigMap,
  buildRouterDeployment,
  buildRouterService,
  modelPort,
  routedSplit,
  routerConfig,
  type CoreManifest,
  type SplitEntry,
} from '../../../src/controller/router.js';
import type { GPUProfile, LatencyModel } from '../../../src/api/index.js';
import type { DeploymentManifest } from '../../../src/controller/desired.js';
import type { ObservedDeployment } from '../../../src/controller/view.js';
import { WorkloadSources } from '../../../src/controller/workload.js';
import { validateConfig } from '../../../src/router/config.js';
import { loadHighsEngine, solve } from '../../../src/solver/index.js';
import { POOLS, PROFILES, service } from './fixtures.js';

// Two GPU types' latency models (as melangectl profile fits them), deliberately different in every field.
const SMALL_LAT: LatencyModel = { overheadMillis: 40, prefillMillisPerToken: 0.5, decodeStepMillis: 30, decodeMillisPerContextToken: 0.01 };
const BIG_LAT: LatencyModel = { overheadMillis: 15, prefillMillisPerToken: 0.1, decodeStepMillis: 12, decodeMillisPerContextToken: 0.002 };
const withLatency = (p: GPUProfile, latency: LatencyModel): GPUProfile => ({ ...p, spec: { ...p.spec, latency } });

const POOL_REFS = [
  { name: 'small', gpuType: 'A10G' },
  { name: 'big', gpuType: 'A100' },
];
const SPLIT: SplitEntry[] = [
  { input: 0, output: 0, weights: { small: 0.75, big: 0.25 } },
  { input: 1, output: 0, weights: { big: 1 } },
];

describe('routedSplit: the solved split restricted to pools with ready capacity', () => {
  it('renormalises onto ready pools', () => {
    expect(routedSplit(SPLIT, { small: 2, big: 0 })).toEqual([
      { input: 0, output: 0, weights: { small: 1 } },
      // nothing of this bucket is ready: the ready capacity keeps serving it
      { input: 1, output: 0, weights: { small: 1 } },
    ]);
    expect(routedSplit(SPLIT, { small: 2, big: 1 })).toEqual(SPLIT);
  });
  it('falls back to the ready pools by ready replicas, and passes through when nothing is ready', () => {
    const only = [{ input: 0, output: 0, weights: { c: 1 } }];
    expect(routedSplit(only, { a: 1, b: 3 })).toEqual([{ input: 0, output: 0, weights: { a: 0.25, b: 0.75 } }]);
    expect(routedSplit(SPLIT, {})).toEqual(SPLIT);
  });
});

describe('router builders', () => {
  const svc = service();

  it('the ConfigMap holds a router config that validateConfig accepts, pools discovered by DNS from <svc>-<pool>', () => {
    const cm = buildRouterConfigMap(svc, routerConfig(svc, POOL_REFS, SPLIT));
    expect(cm.metadata).toMatchObject({ name: 'chat-router', namespace: 'ml', ownerReferences: [{ kind: 'LLMService', name: 'chat', uid: 'uid-chat', controller: true }] });
    const v = validateConfig(parseYaml(cm.data?.[ROUTER_CONFIG_KEY] ?? ''));
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.config.service).toEqual({ namespace: 'ml', name: 'chat' });
    expect(v.config.buckets).toEqual({ inputEdges: [100, 1000], outputEdges: [100, 500] });
    expect(v.config.split).toEqual(SPLIT);
    // Relative to the cluster domain (the router expands it with its pod's DNS search list); the port is
    // the one the headless Service publishes, which is the model container's.
    expect(v.config.pools).toEqual([
      { name: 'small', gpuType: 'A10G', dns: { name: 'chat-small.ml.svc', port: 8000, refreshMs: 5000 } },
      { name: 'big', gpuType: 'A100', dns: { name: 'chat-big.ml.svc', port: 8000, refreshMs: 5000 } },
    ]);
    expect(v.config.pools.every((p) => p.discovery === undefined && !p.dns?.name.includes('cluster.local'))).toBe(true);
  });

  it('the DNS port is the port the pool\'s headless Service publishes (the model container\'s http port)', () => {
    const withPort = service({ spec: { template: { spec: { containers: [{ name: 'vllm', image: 'v', ports: [{ name: 'metrics', containerPort: 9000 }, { name: 'http', containerPort: 7000 }] }] } } } });
    const c = routerConfig(withPort, POOL_REFS, SPLIT);
    const poolSvc = buildPoolService(withPort, POOL_REFS[0]!);
    const ports = (poolSvc.spec as { ports: Array<{ port: number; targetPort: number }> }).ports;
    expect(ports).toEqual([expect.objectContaining({ name: 'http', port: 7000, targetPort: 7000 })]);
    // DNS of a headless Service gives pod IPs: the router dials the targetPort, which equals port here.
    expect(c.pools.map((p) => p.dns)).toEqual([
      { name: `${poolSvc.metadata.name}.ml.svc`, port: ports[0]!.targetPort },
      { name: 'chat-big.ml.svc', port: 7000 },
    ]);
    expect((poolSvc.spec as { publishNotReadyAddresses: boolean }).publishNotReadyAddresses).toBe(false);
  });

  it('drops weights on pools the config does not list (the router would reject the file)', () => {
    const c = routerConfig(svc, [POOL_REFS[0]!], SPLIT);
    expect(c.split).toEqual([{ input: 0, output: 0, weights: { small: 0.75 } }]);
    expect(validateConfig(c).ok).toBe(true);
  });

  it('pools carry their latency model; with models on two pools routing.sloGuard is on at the service\'s TPOT SLO', () => {
    const slo73 = service({ spec: { slo: { tpotMillis: 73 } } });
    const pools = [
      { ...POOL_REFS[0]!, latency: SMALL_LAT },
      { ...POOL_REFS[1]!, latency: BIG_LAT },
    ];
    const c = routerConfig(slo73, pools, SPLIT);
    expect(c.pools.map((p) => p.latency)).toEqual([SMALL_LAT, BIG_LAT]);
    expect(c.routing).toEqual({ sloGuard: { tpotMillis: 73 } });
    // What the router reads from the ConfigMap: the models and the guard, with the router's default threshold.
    const v = validateConfig(parseYaml(buildRouterConfigMap(slo73, c).data![ROUTER_CONFIG_KEY]!));
    if (!v.ok) throw new Error(v.errors.join('; '));
    expect(v.config.pools.map((p) => [p.name, p.latency])).toEqual([
      ['small', SMALL_LAT],
      ['big', BIG_LAT],
    ]);
    expect(v.config.routing.sloGuard).toEqual({ tpotMillis: 73, threshold: 0.5 });
  });

  it('with a model on fewer than two pools: no routing key at all (no guard); pools without a model carry none', () => {
    const one = routerConfig(svc, [{ ...POOL_REFS[0]!, latency: SMALL_LAT }, POOL_REFS[1]!], SPLIT);
    expect(one.pools.map((p) => p.latency)).toEqual([SMALL_LAT, undefined]);
    expect('latency' in one.pools[1]!).toBe(false);
    expect('routing' in one).toBe(false);
    const v = validateConfig(one);
    expect(v.ok && v.config.routing.sloGuard).toBeUndefined();
    expect(v.ok).toBe(true);
    // No model anywhere (also `latency: undefined`): the same file, byte for byte, as a pool list without the field.
    const none = routerConfig(svc, POOL_REFS.map((p) => ({ ...p, latency: undefined })), SPLIT);
    expect(none.pools.some((p) => 'latency' in p)).toBe(false);
    expect('routing' in none).toBe(false);
    expect(buildRouterConfigMap(svc, none)).toEqual(buildRouterConfigMap(svc, routerConfig(svc, POOL_REFS, SPLIT)));
  });

  it('the ConfigMap is deterministic: same inputs, same text and hash, whatever the key order of the models', () => {
    const pools = [
      { ...POOL_REFS[0]!, latency: SMALL_LAT },
      { ...POOL_REFS[1]!, latency: BIG_LAT },
    ];
    // The same models with their keys in the opposite order (as another source might build them).
    const reversed = (m: LatencyModel) => Object.fromEntries(Object.entries(m).reverse()) as LatencyModel;
    expect(Object.keys(reversed(SMALL_LAT))).not.toEqual(Object.keys(SMALL_LAT));
    const a = buildRouterConfigMap(svc, routerConfig(svc, pools, SPLIT));
    const b = buildRouterConfigMap(svc, routerConfig(svc, pools, SPLIT));
    const c = buildRouterConfigMap(svc, routerConfig(svc, pools.map((p) => ({ ...p, latency: reversed(p.latency) })), SPLIT));
    expect(b.data).toEqual(a.data);
    expect(c.data![ROUTER_CONFIG_KEY]).toBe(a.data![ROUTER_CONFIG_KEY]);
    expect(c.metadata.annotations).toEqual(a.metadata.annotations);
    // The hash does follow the content: another model is another ConfigMap.
    const d = buildRouterConfigMap(svc, routerConfig(svc, [pools[0]!, { ...pools[1]!, latency: { ...BIG_LAT, decodeStepMillis: 13 } }], SPLIT));
    expect(d.metadata.annotations['melange.dev/applied-hash']).not.toBe(a.metadata.annotations['melange.dev/applied-hash']);
  });

  it('per-pool headless Services select exactly the pool Deployment pods', () => {
    const s = buildPoolService(svc, POOL_REFS[0]!);
    expect(s.metadata.name).toBe('chat-small');
    expect(s.spec).toMatchObject({ clusterIP: 'None', selector: { 'melange.dev/service': 'chat', 'melange.dev/pool': 'small' }, ports: [{ name: 'http', port: 8000 }] });
    const withPort = service({ spec: { template: { spec: { containers: [{ name: 'vllm', image: 'v', ports: [{ name: 'metrics', containerPort: 9000 }, { name: 'http', containerPort: 7000 }] }] } } } });
    expect(modelPort(withPort)).toBe(7000);
  });

  it('the router Deployment mounts the ConfigMap and runs melangectl router; the Service <svc> fronts it', () => {
    const d = buildRouterDeployment(svc, routerDefaults({ image: 'img:1' }));
    expect(d.metadata.name).toBe('chat-router');
    expect(d.metadata.labels['melange.dev/service']).toBeUndefined(); // not a model-server Deployment
    expect(d.metadata.labels['melange.dev/pool']).toBeUndefined();
    expect(d.spec.replicas).toBe(2);
    const c = (d.spec.template.spec.containers as Array<Record<string, unknown>>)[0]!;
    expect(c.image).toBe('img:1');
    expect([...(c.command as string[]), ...(c.args as string[])]).toEqual(expect.arrayContaining(['router', '--config', '/etc/melange-router/config.yaml']));
    expect(d.spec.template.spec.volumes).toContainEqual({ name: 'config', configMap: { name: 'chat-router' } });
    // DNS discovery needs no API access: no ServiceAccount token in the pod.
    expect(d.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(d.spec.template.spec.serviceAccountName).toBeUndefined();
    expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
    const s = buildRouterService(svc);
    expect(s.metadata.name).toBe('chat');
    expect(s.spec?.selector).toEqual(d.spec.selector.matchLabels);
    expect(s.metadata.ownerReferences).toEqual(d.metadata.ownerReferences);
  });
});

const engine = await loadHighsEngine();

describe('reconciler publishes the router', () => {
  function world(opts: { image?: string; spec?: Record<string, unknown>; profiles?: GPUProfile[] } = {}) {
    let svc = JSON.parse(JSON.stringify(service(opts.spec ? { spec: opts.spec } : {}))) as Record<string, unknown>;
    const view = { profiles: opts.profiles ?? PROFILES };
    const deps = new Map<string, ObservedDeployment>();
    const core: CoreManifest[] = [];
    const applies: DeploymentManifest[] = [];
    let rv = 10;
    const r = new Reconciler({
      view: { service: () => structuredClone(svc), profiles: () => view.profiles, pools: () => POOLS, deployments: () => [...deps.values()] },
      writer: {
        applyDeployment: async (d) => {
          applies.push(d);
          const pool = d.metadata.labels['melange.dev/pool'];
          if (pool) deps.set(pool, { name: d.metadata.name, pool, exists: true, replicas: d.spec.replicas, readyReplicas: deps.get(pool)?.readyReplicas ?? 0, observed: true, appliedHash: d.metadata.annotations['melange.dev/applied-hash']! });
          else deps.set(d.metadata.name, { name: d.metadata.name, pool: '', exists: true, replicas: d.spec.replicas, readyReplicas: 0, observed: true });
        },
        scaleDeployment: async () => {},
        patchServiceStatus: async (_ns, _n, _rv, patch) => {
          const status = { ...((svc.status as object) ?? {}), ...(patch as object) };
          svc = { ...svc, metadata: { ...(svc.metadata as object), resourceVersion: String(++rv) }, status };
          return { resourceVersion: String(rv), status };
        },
        applyCore: async (m) => {
          core.push(m);
        },
      },
      events: { emit: async () => {} },
      workload: new WorkloadSources(),
      solve: async (i) => solve(i, engine),
      log: createLogger('silent'),
      ...(opts.image ? { router: routerDefaults({ image: opts.image }) } : {}),
    });
    return { r, deps, core, applies, view, status: () => svc.status as Record<string, unknown> };
  }

  it('without an image (no --router-image, no spec.router.image) no router objects are made', async () => {
    const w = world();
    await w.r.reconcile('ml/chat');
    expect(w.core).toEqual([]);
    expect(w.applies.every((d) => d.metadata.name !== 'chat-router')).toBe(true);
  });

  it('applies ConfigMap, per-pool Services, Service and Deployment once; the split follows readiness; the router Deployment is never treated as a pool', async () => {
    const w = world({ image: 'img:1' });
    await w.r.reconcile('ml/chat');
    expect(w.core.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(['ConfigMap/chat-router', 'Service/chat', 'Service/chat-big', 'Service/chat-small']);
    expect(w.applies.map((d) => d.metadata.name)).toContain('chat-router');
    const split = w.status().split as Array<{ input: number; output: number; weights: Record<string, number> }>;
    expect(split.length).toBeGreaterThan(0);
    // Nothing ready yet: the solved split is passed through.
    const cfg = () => {
      const cms = w.core.filter((m) => m.kind === 'ConfigMap');
      const v = validateConfig(parseYaml(cms.at(-1)!.data![ROUTER_CONFIG_KEY]!));
      if (!v.ok) throw new Error(v.errors.join('; '));
      return v.config;
    };
    expect(cfg().split).toEqual(split.filter((s) => Object.keys(s.weights).length > 0));
    // Second pass on the same world: nothing re-applied.
    const n = w.core.length;
    const nd = w.applies.length;
    await w.r.reconcile('ml/chat');
    expect(w.core.length).toBe(n);
    expect(w.applies.length).toBe(nd);
    // The solved pool becomes ready: the ConfigMap follows (already routed there, so no change in content).
    for (const d of w.deps.values()) if (d.pool !== '') d.readyReplicas = d.replicas;
    await w.r.reconcile('ml/chat');
    expect(cfg().split).toEqual(split.filter((s) => Object.keys(s.weights).length > 0));
    // The router Deployment was never scaled as a pool "no longer in spec.gpus".
    expect(w.applies.filter((d) => d.metadata.name === 'chat-router').every((d) => d.spec.replicas === 2)).toBe(true);
  });

  it('make before break: while the solved pool is not ready, traffic stays on the ready old pool', async () => {
    const w = world({ image: 'img:1' });
    // An older allocation: "small" has a ready replica; the solve moves everything to "big".
    w.deps.set('small', { name: 'chat-small', pool: 'small', exists: true, replicas: 1, readyReplicas: 1, observed: true });
    await w.r.reconcile('ml/chat');
    const last = () => validateConfig(parseYaml(w.core.filter((m) => m.kind === 'ConfigMap').at(-1)!.data![ROUTER_CONFIG_KEY]!));
    const split = w.status().split as SplitEntry[];
    expect(split.every((s) => Object.keys(s.weights).every((p) => p === 'big'))).toBe(true);
    let v = last();
    expect(v.ok && v.config.split.every((s) => Object.keys(s.weights).join() === 'small')).toBe(true);
    const big = w.deps.get('big')!;
    big.readyReplicas = big.replicas;
    await w.r.reconcile('ml/chat');
    v = last();
    expect(v.ok && v.config.split).toEqual(split);
  });

  it('the router Deployment gets the operator defaults; spec.router.image alone (no defaults) uses the built-ins', async () => {
    const w = world({ image: 'img:1' });
    await w.r.reconcile('ml/chat');
    const router = w.applies.find((d) => d.metadata.name === 'chat-router')!;
    const c = (router.spec.template.spec.containers as Array<Record<string, unknown>>)[0]!;
    expect(c).toMatchObject({ image: 'img:1', readinessProbe: { httpGet: { path: '/readyz', port: 'http' } } });
    expect(router.spec.template.spec.terminationGracePeriodSeconds).toBe(40);
    const own = world({ spec: { router: { image: 'spec:9', replicas: 3 } } });
    await own.r.reconcile('ml/chat');
    const r2 = own.applies.find((d) => d.metadata.name === 'chat-router')!;
    expect((r2.spec.template.spec.containers as Array<Record<string, unknown>>)[0]!.image).toBe('spec:9');
    expect(r2.spec.replicas).toBe(3);
  });

  it("fills pools[].latency from each pool's GPUProfile and turns the SLO guard on; a missing profile or one without a model leaves that pool without", async () => {
    const lastCfg = (w: ReturnType<typeof world>) => {
      const v = validateConfig(parseYaml(w.core.filter((m) => m.kind === 'ConfigMap').at(-1)!.data![ROUTER_CONFIG_KEY]!));
      if (!v.ok) throw new Error(v.errors.join('; '));
      return v.config;
    };
    const both = [withLatency(PROFILES[0]!, SMALL_LAT), withLatency(PROFILES[1]!, BIG_LAT)];
    // A looser SLO than the profiles' (measured at 100 ms) still plans; the guard takes the service's.
    const w = world({ image: 'img:1', spec: { slo: { tpotMillis: 120 } }, profiles: both });
    await w.r.reconcile('ml/chat');
    let cfg = lastCfg(w);
    expect(Object.fromEntries(cfg.pools.map((p) => [p.name, p.latency]))).toEqual({ small: SMALL_LAT, big: BIG_LAT });
    expect(cfg.routing.sloGuard).toEqual({ tpotMillis: 120, threshold: 0.5 });
    // One profile without a model: that pool has none, and one model is no guard.
    const only = world({ image: 'img:1', profiles: [PROFILES[0]!, withLatency(PROFILES[1]!, BIG_LAT)] });
    await only.r.reconcile('ml/chat');
    cfg = lastCfg(only);
    expect(Object.fromEntries(cfg.pools.map((p) => [p.name, p.latency]))).toEqual({ small: undefined, big: BIG_LAT });
    expect(cfg.routing.sloGuard).toBeUndefined();
    // The profile of "big" disappears from the view: the reconcile goes on (the last split stays routed), the
    // ConfigMap just loses that pool's model and the guard.
    const n = w.core.length;
    w.view.profiles = [both[0]!];
    await expect(w.r.reconcile('ml/chat')).resolves.toBeDefined();
    expect(w.core.length).toBeGreaterThan(n);
    cfg = lastCfg(w);
    expect(Object.fromEntries(cfg.pools.map((p) => [p.name, p.latency]))).toEqual({ small: SMALL_LAT, big: undefined });
    expect(cfg.routing.sloGuard).toBeUndefined();
  });

  it('a profile of another GPU type than its pool gives that pool no model', async () => {
    const w = world({ image: 'img:1', profiles: [withLatency(PROFILES[0]!, SMALL_LAT), withLatency(PROFILES[1]!, BIG_LAT)] });
    await w.r.reconcile('ml/chat');
    const n = w.core.length;
    // "big"'s profile now claims A10G (its pool is A100): the planner reports it; the router must not use its model.
    w.view.profiles = [w.view.profiles[0]!, { ...w.view.profiles[1]!, spec: { ...w.view.profiles[1]!.spec, gpuType: 'A10G' } }];
    await w.r.reconcile('ml/chat');
    expect(w.core.length).toBeGreaterThan(n);
    const v = validateConfig(parseYaml(w.core.filter((m) => m.kind === 'ConfigMap').at(-1)!.data![ROUTER_CONFIG_KEY]!));
    expect(v.ok && v.config.pools.map((p) => [p.name, p.latency])).toEqual([
      ['small', SMALL_LAT],
      ['big', undefined],
    ]);
  });

  it('spec.router.enabled=false: no router objects', async () => {
    const w = world({ image: 'img:1', spec: { router: { enabled: false } } });
    await w.r.reconcile('ml/chat');
    expect(w.core).toEqual([]);
  });
});
