import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  ILLUSTRATIVE_ANNOTATION,
  PAPER_BUCKETS,
  builtinCatalog,
  melangeCrds,
  parseMoney,
  validateManifest,
  type GPUProfile,
  type LLMService,
  type MelangeResource,
} from '../../../src/api/index.js';

const examplesDir = join(import.meta.dirname, '..', '..', '..', 'examples');
const exampleFiles = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));

function load(file: string): unknown[] {
  return parseAllDocuments(readFileSync(join(examplesDir, file), 'utf8'))
    .map((d) => d.toJS() as unknown)
    .filter((d) => d !== null);
}

const parsed = (file: string): MelangeResource[] =>
  load(file).map((doc) => {
    const r = validateManifest(doc);
    if (!r.ok) throw new Error(`${file}: ${r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
    return r.value;
  });

describe('examples/', () => {
  it('has the documented files', () => {
    expect(exampleFiles).toEqual(
      expect.arrayContaining(['gpupools.yaml', 'gpuprofiles-llama2-7b.yaml', 'llmservice-chat.yaml', 'llmservice-long-docs.yaml']),
    );
  });

  it.each(exampleFiles)('%s parses, strictly, with no unknown fields', (file) => {
    const docs = parsed(file);
    expect(docs.length).toBeGreaterThan(0);
  });

  // The CRD's OpenAPI schema is a second, independent validator of the same manifests: if zod and the
  // generated schema disagree (a regex mangled in translation, a field required in one only), this fails.
  it.each(exampleFiles)('%s is accepted by the generated CRD schema too', (file) => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat('date-time', true);
    const validators = new Map(
      melangeCrds().map((c) => [c.spec.names.kind, ajv.compile(c.spec.versions[0]?.schema.openAPIV3Schema ?? {})]),
    );
    for (const doc of load(file)) {
      const validate = validators.get((doc as { kind: string }).kind);
      expect(validate).toBeDefined();
      expect(validate?.(doc), JSON.stringify(validate?.errors)).toBe(true);
    }
  });

  it('the CRD schema rejects what zod rejects (a bad pool name, bad money)', () => {
    const ajv = new Ajv({ strict: false });
    ajv.addFormat('date-time', true);
    const pool = melangeCrds().find((c) => c.spec.names.kind === 'GPUPool');
    const validate = ajv.compile(pool?.spec.versions[0]?.schema.openAPIV3Schema ?? {});
    const good = builtinCatalog().manifests.pools[0];
    expect(validate(good)).toBe(true);
    expect(validate({ ...good, spec: { ...good?.spec, costPerGPUHour: '1.5$' } })).toBe(false);
    expect(validateManifest({ ...good, spec: { ...good?.spec, costPerGPUHour: '1.5$' } }).ok).toBe(false);
  });

  it('services reference pools and profiles that exist in the examples, with matching buckets and SLO', () => {
    const pools = new Set(parsed('gpupools.yaml').map((p) => p.metadata.name));
    const profiles = new Map(
      (parsed('gpuprofiles-llama2-7b.yaml') as GPUProfile[]).map((p) => [p.metadata.name, p] as const),
    );
    for (const file of ['llmservice-chat.yaml', 'llmservice-long-docs.yaml']) {
      for (const svc of parsed(file) as LLMService[]) {
        for (const g of svc.spec.gpus) {
          expect(pools.has(g.pool), `${file}: pool ${g.pool}`).toBe(true);
          const prof = profiles.get(g.profile);
          expect(prof, `${file}: profile ${g.profile}`).toBeDefined();
          expect(prof?.spec.buckets).toEqual(svc.spec.buckets);
          expect(prof?.spec.slo.tpotMillis).toBe(svc.spec.slo.tpotMillis);
          expect(prof?.spec.model).toBe(svc.spec.model);
        }
      }
    }
  });

  it('the chat example is the one the brief describes', () => {
    const [chat] = parsed('llmservice-chat.yaml') as LLMService[];
    expect(chat?.spec.model).toBe('meta-llama/Llama-2-7b-hf');
    expect(chat?.spec.slo.tpotMillis).toBe(120);
    expect(chat?.spec.buckets).toEqual(PAPER_BUCKETS);
    expect(chat?.spec.workload.static?.requestsPerSecond).toBe(8);
    expect(chat?.spec.gpus.map((g) => g.pool)).toEqual(['l4', 'a10g', 'a100', 'h100']);
    // weighted to short requests: most weight in inputs <= 500 and outputs <= 250
    const d = chat?.spec.workload.static?.distribution ?? [];
    const total = d.flat().reduce((a, b) => a + b, 0);
    const short = d.slice(0, 4).flatMap((r) => r.slice(0, 3)).reduce((a, b) => a + b, 0);
    expect(short / total).toBeGreaterThan(0.6);
  });
});

describe('built-in catalog', () => {
  const cat = builtinCatalog();
  const prof = (pool: string) => cat.profiles.find((p) => p.metadata.name === `llama2-7b-${pool}`);
  const price = (pool: string) => parseMoney(cat.pools.find((p) => p.metadata.name === pool)?.spec.costPerGPUHour ?? 'x');

  it('is marked illustrative, as a whole and per object', () => {
    expect(cat.illustrative).toBe(true);
    for (const o of [...cat.pools, ...cat.profiles]) expect(o.metadata.annotations?.[ILLUSTRATIVE_ANNOTATION]).toBe('true');
  });

  it('agrees with the example files', () => {
    expect(load('gpupools.yaml')).toEqual(cat.manifests.pools);
    expect(load('gpuprofiles-llama2-7b.yaml')).toEqual(cat.manifests.profiles);
  });

  it('has the paper prices', () => {
    expect(['l4', 'a10g', 'a100', 'h100'].map(price)).toEqual([0.7, 1.01, 3.67, 7.516]);
  });

  it('L4 and A10G cannot serve the 12k and 16k input buckets; A100 and H100 can', () => {
    for (const pool of ['l4', 'a10g']) {
      const m = prof(pool)?.spec.maxThroughput ?? [];
      expect(m.slice(8).flat().every((x) => x === 0)).toBe(true);
      expect(m.slice(0, 8).flat().every((x) => x > 0)).toBe(true);
    }
    for (const pool of ['a100', 'h100']) expect(prof(pool)?.spec.maxThroughput.flat().every((x) => x > 0)).toBe(true);
  });

  it('throughput falls as requests grow', () => {
    for (const p of cat.profiles) {
      const m = p.spec.maxThroughput;
      m.forEach((row, i) =>
        row.forEach((x, j) => {
          if (x === 0) return;
          expect(x).toBeLessThanOrEqual(m[i]?.[j - 1] ?? Infinity);
          expect(x).toBeLessThanOrEqual(m[i - 1]?.[j] ?? Infinity);
        }),
      );
    }
  });

  it('cheap GPUs are the most cost-efficient on short requests, big GPUs on long ones', () => {
    const perDollar = (pool: string, i: number, j: number) => (prof(pool)?.spec.maxThroughput[i]?.[j] ?? 0) / price(pool);
    const best = (i: number, j: number) =>
      ['l4', 'a10g', 'a100', 'h100'].reduce((a, b) => (perDollar(b, i, j) > perDollar(a, i, j) ? b : a));
    expect(['l4', 'a10g']).toContain(best(0, 0));
    expect(['l4', 'a10g']).toContain(best(1, 1));
    expect(['a100', 'h100']).toContain(best(7, 3));
    expect(['a100', 'h100']).toContain(best(9, 5));
  });

  it('A100 is several times A10G around 1k in / 500 out (the paper reports ≈5x)', () => {
    const ratio = (prof('a100')?.spec.maxThroughput[4]?.[3] ?? 0) / (prof('a10g')?.spec.maxThroughput[4]?.[3] ?? 1);
    expect(ratio).toBeGreaterThan(3);
    expect(ratio).toBeLessThan(8);
  });
});
