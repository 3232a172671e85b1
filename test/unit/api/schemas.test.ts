import { describe, expect, it } from 'vitest';
import {
  GPUPoolSchema,
  GPUProfileSchema,
  LLMServiceSchema,
  formatFieldErrors,
  formatPath,
  melangeCrds,
  parseGPUPool,
  parseGPUProfile,
  parseLLMService,
  validateManifest,
  type FieldError,
  type Validated,
} from '../../../src/api/index.js';

const minimalService = () => ({
  apiVersion: 'melange.dev/v1alpha1',
  kind: 'LLMService',
  metadata: { name: 'chat', namespace: 'ml' },
  spec: {
    model: 'm',
    slo: { tpotMillis: 120 },
    buckets: { inputEdges: [100, 1000], outputEdges: [100] },
    gpus: [{ pool: 'a10g', profile: 'p-a10g' }],
    workload: { static: { requestsPerSecond: 2, distribution: [[1], [0]] } },
    template: { spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai' }] } },
  },
});

const minimalProfile = () => ({
  apiVersion: 'melange.dev/v1alpha1',
  kind: 'GPUProfile',
  metadata: { name: 'p-a10g' },
  spec: {
    model: 'm',
    gpuType: 'A10G',
    slo: { tpotMillis: 120 },
    buckets: { inputEdges: [100, 1000], outputEdges: [100, 500] },
    maxThroughput: [[2, 1], [0.5, 0]],
  },
});

const minimalPool = () => ({
  apiVersion: 'melange.dev/v1alpha1',
  kind: 'GPUPool',
  metadata: { name: 'a10g' },
  spec: { gpuType: 'A10G', costPerGPUHour: '1.01', gpusPerNode: 1 },
});

function errorsOf<T>(r: Validated<T>): FieldError[] {
  if (r.ok) throw new Error('expected validation to fail');
  return r.errors;
}

describe('defaults', () => {
  it('a minimal LLMService gets the defaults the API server would apply', () => {
    const s = LLMServiceSchema.parse(minimalService());
    expect(s.spec.gpus[0]).toEqual({ pool: 'a10g', profile: 'p-a10g', gpusPerReplica: 1, minReplicas: 0 });
    expect(s.spec.workload.source).toBe('Static');
    expect(s.spec.policy).toEqual({
      solveInterval: '60s',
      headroomPercent: 10,
      mode: 'fractional',
      sliceFactor: 8,
      minSavingsPercent: 5,
      minTotalReplicas: 1,
      scaleDown: { stabilization: '60s', maxStep: 2, stepInterval: '10s' },
      provisioningTimeout: '10m',
    });
    expect(s.spec.priority).toBe(0);
    expect(s.spec.router).toEqual({ enabled: true, replicas: 2 });
    expect(s.status).toBeUndefined();
  });

  it('prometheus window defaults to 5m', () => {
    const obj = minimalService();
    const s = LLMServiceSchema.parse({ ...obj, spec: { ...obj.spec, workload: { source: 'Prometheus', prometheus: {} } } });
    expect(s.spec.workload.prometheus?.window).toBe('5m');
  });

  it('a minimal GPUPool gets resourceName, minNodes and provider None', () => {
    const p = GPUPoolSchema.parse(minimalPool());
    expect(p.spec.resourceName).toBe('nvidia.com/gpu');
    expect(p.spec.minNodes).toBe(0);
    expect(p.spec.provider).toEqual({ type: 'None' });
  });

  it('metadata keeps fields the schema does not name (round-trip safety)', () => {
    const obj = { ...minimalPool(), metadata: { name: 'a10g', managedFields: [{ manager: 'kubectl' }] } };
    expect(GPUPoolSchema.parse(obj).metadata.managedFields).toEqual([{ manager: 'kubectl' }]);
  });

  it('the template spec keeps every PodSpec field', () => {
    const obj = minimalService();
    obj.spec.template.spec = { containers: [{ name: 'vllm', image: 'x', args: ['--a'] }], nodeSelector: { a: 'b' } } as never;
    const s = LLMServiceSchema.parse(obj);
    expect(s.spec.template.spec).toMatchObject({ nodeSelector: { a: 'b' }, containers: [{ args: ['--a'] }] });
  });
});

/** The CEL message for a rule, looked up in the generated CRDs, so both layers are held to one text. */
function celMessages(): string[] {
  const msgs: string[] = [];
  JSON.stringify(melangeCrds(), (k, v: unknown) => {
    if (k === 'x-kubernetes-validations' && Array.isArray(v)) for (const r of v) msgs.push((r as { message: string }).message);
    return v;
  });
  return msgs;
}

describe('cross-field rules (same message as the CEL rule, on the offending field)', () => {
  const cel = celMessages();
  type Case = [string, () => unknown, string, RegExp];
  const svc = (edit: (s: ReturnType<typeof minimalService>['spec']) => void) => () => {
    const o = minimalService();
    edit(o.spec);
    return o;
  };
  const prof = (edit: (s: ReturnType<typeof minimalProfile>['spec']) => void) => () => {
    const o = minimalProfile();
    edit(o.spec);
    return o;
  };
  const pool = (edit: (s: Record<string, unknown>) => void) => () => {
    const o = minimalPool();
    edit(o.spec as Record<string, unknown>);
    return o;
  };
  const cases: Case[] = [
    ['input edges not increasing', svc((s) => (s.buckets.inputEdges = [1000, 100])), 'spec.buckets.inputEdges', /strictly increasing/],
    ['duplicate output edges', prof((s) => (s.buckets.outputEdges = [100, 100])), 'spec.buckets.outputEdges', /strictly increasing/],
    ['minReplicas > maxReplicas', svc((s) => Object.assign(s.gpus[0] ?? {}, { minReplicas: 3, maxReplicas: 2 })), 'spec.gpus[0].maxReplicas', /maxReplicas/],
    ['source Static without static', svc((s) => (s.workload = {} as never)), 'spec.workload.static', /source Static requires static/],
    ['distribution row count', svc((s) => (s.workload.static.distribution = [[1]])), 'spec.workload.static.distribution', /one row per input range/],
    ['distribution row length', svc((s) => (s.workload.static.distribution = [[1, 2], [0, 0]])), 'spec.workload.static.distribution', /one entry per output range/],
    ['all-zero distribution', svc((s) => (s.workload.static.distribution = [[0], [0]])), 'spec.workload.static.distribution', /at least one positive weight/],
    ['maxThroughput row count', prof((s) => (s.maxThroughput = [[1, 1]])), 'spec.maxThroughput', /one row per input range/],
    ['maxThroughput row length', prof((s) => (s.maxThroughput = [[1], [1, 2]])), 'spec.maxThroughput', /one entry per output range/],
    ['minNodes > maxNodes', pool((s) => Object.assign(s, { minNodes: 4, maxNodes: 1 })), 'spec.maxNodes', /maxNodes/],
    ['Karpenter without karpenter', pool((s) => (s.provider = { type: 'Karpenter' })), 'spec.provider.karpenter', /type Karpenter requires karpenter/],
    ['ClusterAPI without clusterAPI', pool((s) => (s.provider = { type: 'ClusterAPI' })), 'spec.provider.clusterAPI', /requires clusterAPI/],
    ['Scale without scale', pool((s) => (s.provider = { type: 'Scale' })), 'spec.provider.scale', /requires scale/],
    ['a pool name that is not a DNS label', () => ({ ...minimalPool(), metadata: { name: 'a.b' } }), 'metadata.name', /DNS labels/],
  ];

  it.each(cases)('%s', (_, make, path, message) => {
    const errors = errorsOf(validateManifest(make()));
    const hit = errors.find((e) => e.path === path && message.test(e.message));
    expect(hit, JSON.stringify(errors)).toBeDefined();
    expect(cel).toContain(hit?.message);
  });

  it('the valid baselines pass', () => {
    expect(parseLLMService(minimalService()).ok).toBe(true);
    expect(parseGPUProfile(minimalProfile()).ok).toBe(true);
    expect(parseGPUPool(minimalPool()).ok).toBe(true);
    expect(parseGPUPool({ ...minimalPool(), spec: { ...minimalPool().spec, provider: { type: 'Karpenter', karpenter: { nodePool: 'gpu' } } } }).ok).toBe(true);
  });

  it('reports field errors and cross-field errors in one pass', () => {
    const o = minimalService();
    o.spec.buckets.inputEdges = [5, 1];
    (o.spec as Record<string, unknown>).model = '';
    const paths = errorsOf(parseLLMService(o)).map((e) => e.path);
    expect(paths).toContain('spec.model');
    expect(paths).toContain('spec.buckets.inputEdges');
  });
});

describe('validateManifest', () => {
  it('names missing fields by path', () => {
    const o = minimalService();
    delete (o.spec.gpus[0] as Partial<{ pool: string }>).pool;
    expect(errorsOf(parseLLMService(o))).toContainEqual({ path: 'spec.gpus[0].pool', message: 'required field is missing' });
  });

  it('reports unknown (typo) fields, and can be told not to', () => {
    const o = minimalService();
    (o.spec.slo as Record<string, unknown>).tpotMilis = 5;
    expect(errorsOf(parseLLMService(o))).toContainEqual({ path: 'spec.slo.tpotMilis', message: 'unknown field "tpotMilis"' });
    expect(parseLLMService(o, { strict: false }).ok).toBe(true);
  });

  it('does not call preserved pod-spec fields or metadata unknown', () => {
    const o = { ...minimalService(), metadata: { name: 'x', resourceVersion: '5', whatever: 1 } };
    (o.spec.template.spec as Record<string, unknown>).volumes = [{ name: 'v', emptyDir: {} }];
    expect(parseLLMService(o).ok).toBe(true);
  });

  it('rejects wrong apiVersion and unsupported kinds plainly', () => {
    expect(errorsOf(validateManifest({ ...minimalPool(), apiVersion: 'melange.dev/v1' }))).toContainEqual({
      path: 'apiVersion',
      message: 'must be melange.dev/v1alpha1',
    });
    expect(errorsOf(validateManifest({ kind: 'Deployment' }))[0]?.path).toBe('kind');
    expect(errorsOf(validateManifest('nope'))[0]?.message).toMatch(/must be a YAML\/JSON object/);
    expect(errorsOf(validateManifest(minimalPool(), 'GPUProfile'))).toContainEqual({ path: 'kind', message: 'must be GPUProfile' });
  });

  it('rejects bad money, durations and names with readable messages', () => {
    const p = minimalPool();
    p.spec.costPerGPUHour = '1.5$';
    expect(errorsOf(parseGPUPool(p))[0]?.message).toMatch(/decimal amount/);
    const s = minimalService();
    (s.spec as Record<string, unknown>).policy = { solveInterval: '1m30s' };
    s.spec.gpus[0] = { pool: 'A10G', profile: 'p' };
    const errs = errorsOf(parseLLMService(s));
    expect(errs.find((e) => e.path === 'spec.policy.solveInterval')?.message).toMatch(/duration like/);
    expect(errs.find((e) => e.path === 'spec.gpus[0].pool')?.message).toMatch(/DNS label/);
  });

  it('bounds spec.priority and the scale-down policy', () => {
    const s = minimalService();
    Object.assign(s.spec, { priority: 1001, policy: { scaleDown: { stabilization: '0s', maxStep: 0 } } });
    const errs = errorsOf(parseLLMService(s));
    expect(errs.map((e) => e.path).sort()).toEqual(['spec.policy.scaleDown.maxStep', 'spec.policy.scaleDown.stabilization', 'spec.priority']);
    Object.assign(s.spec, { priority: -5, policy: { scaleDown: { stabilization: '5m' } } });
    const ok = parseLLMService(s);
    expect(ok.ok && ok.value.spec.policy.scaleDown).toEqual({ stabilization: '5m', maxStep: 2, stepInterval: '10s' });
    expect(ok.ok && ok.value.spec.priority).toBe(-5);
  });

  it('formats one line per error', () => {
    expect(formatFieldErrors([{ path: 'spec.gpus[0].pool', message: 'required field is missing' }], 'svc.yaml')).toEqual([
      'svc.yaml: spec.gpus[0].pool: required field is missing',
    ]);
    expect(formatFieldErrors([{ path: '', message: 'bad' }])).toEqual(['(root): bad']);
    expect(formatPath(['metadata', 'labels', 'app.kubernetes.io/name'])).toBe('metadata.labels["app.kubernetes.io/name"]');
    expect(formatPath(['spec', 'm', 0, 1])).toBe('spec.m[0][1]');
  });

  it('GPUProfile rejects negative throughput', () => {
    const p = minimalProfile();
    p.spec.maxThroughput = [[2, -1], [0.5, 0]];
    expect(errorsOf(parseGPUProfile(p))[0]?.path).toBe('spec.maxThroughput[0][1]');
    expect(GPUProfileSchema.safeParse(minimalProfile()).success).toBe(true);
  });
});

describe('list-map keys', () => {
  it('rejects two gpus entries for the same pool, on the duplicate', () => {
    const o = minimalService();
    o.spec.gpus.push({ pool: 'a10g', profile: 'other' });
    expect(errorsOf(parseLLMService(o))).toContainEqual({ path: 'spec.gpus[1].pool', message: 'duplicate pool "a10g"' });
  });
});
