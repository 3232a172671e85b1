/**
 * The router's configuration file (JSON or YAML): schema, parsing and the diff between two versions.
 * Pure: no I/O here (the watcher lives in config-watch.ts).
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BucketsSchema } from '../api/buckets.js';
import { LatencyModelSchema } from '../api/latency.js';
import { DnsLabelSchema } from '../api/meta.js';

export const MAX_POOLS = 16;

const BackendUrlSchema = z
  .string()
  .max(2048)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && u.search === '' && u.hash === '';
    } catch {
      return false;
    }
  }, 'must be an http(s) base URL without query or fragment, e.g. http://10.0.0.7:8000');

export const PoolDiscoverySchema = z
  .object({
    namespace: z.string().min(1).max(253),
    service: z.string().min(1).max(253).describe('Headless Service of this pool; its EndpointSlices carry kubernetes.io/service-name=<service>.'),
    port: z
      .union([z.string().min(1).max(63), z.int().min(1).max(65535)])
      .optional()
      .describe('EndpointSlice port to use, by name or number; default: the port named "http", else the first port.'),
  })
  .describe(
    "Discover this pool's backends from the EndpointSlices of a headless Service (list + watch: the router's ServiceAccount needs get/list/watch on discovery.k8s.io endpointslices in the namespace).",
  );

/** DNS host names: labels of letters, digits and "-" (1–63 characters, not starting or ending with "-"), at most 253 characters; a trailing dot makes the name absolute. */
const DNS_NAME_RE = /^(?=.{1,253}\.?$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*\.?$/;

export const DEFAULT_DNS_REFRESH_MS = 5000;

export const PoolDnsSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(254)
      .regex(DNS_NAME_RE, 'must be a DNS name (labels of letters, digits and "-", at most 253 characters), e.g. chat-l4.llm.svc')
      .refine((s) => !/^\d{1,3}(\.\d{1,3}){3}\.?$/.test(s), 'must be a host name, not an IP address (use backends for fixed addresses)')
      .describe(
        'Host name whose A/AAAA records are the backends: a headless Service name, e.g. <svc>-<pool>.<namespace>.svc. ' +
          'Without a trailing dot it is expanded with the search domains of /etc/resolv.conf like any resolver does (in a pod: relative to the cluster domain).',
      ),
    port: z.int().min(1).max(65535).describe('Port of every backend (DNS A/AAAA records carry no port).'),
    refreshMs: z
      .int()
      .min(100)
      .max(3_600_000)
      .default(DEFAULT_DNS_REFRESH_MS)
      .describe('How often the name is resolved again (ms).'),
  })
  .describe("Discover this pool's backends by resolving a name (a headless Service: its ready endpoints); needs no Kubernetes API access.");
export type PoolDnsConfig = z.output<typeof PoolDnsSchema>;

/** The backend-source fields of a pool: exactly one of them is set. */
export const POOL_SOURCE_KINDS = ['backends', 'discovery', 'dns'] as const;

export const PoolSchema = z
  .object({
    name: DnsLabelSchema.describe('Pool name (the GPUPool); the keys of split weights.'),
    gpuType: z.string().min(1).max(63),
    backends: z.array(BackendUrlSchema).max(1024).optional().describe('Static backend base URLs (local runs, tests).'),
    discovery: PoolDiscoverySchema.optional(),
    dns: PoolDnsSchema.optional(),
    latency: LatencyModelSchema.optional().describe(
      "The GPU type's latency model (the GPUProfile's spec.latency): lets routing.sloGuard keep requests off this pool when even an idle replica would miss the SLO for them.",
    ),
  })
  .superRefine((p, ctx) => {
    const set = POOL_SOURCE_KINDS.filter((k) => p[k] !== undefined);
    if (set.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'set exactly one of backends, discovery or dns (none is set)', path: [] });
      return;
    }
    // Name each extra field, so the message points at what to remove.
    for (const k of set.slice(1)) {
      ctx.addIssue({ code: 'custom', message: `set exactly one of backends, discovery or dns; this pool also has ${set[0]}`, path: [k] });
    }
  });
export type PoolConfig = z.output<typeof PoolSchema>;

export const SplitEntrySchema = z.object({
  input: z.int().min(0).describe('Input range index (0-based, as in LLMService status.split and the solver).'),
  output: z.int().min(0).describe('Output range index (0-based).'),
  weights: z
    .record(z.string(), z.number().min(0).max(1e9))
    .describe('Relative share of the bucket per pool (normalised); an entry with no positive weight is ignored.'),
});
export type SplitEntry = z.output<typeof SplitEntrySchema>;

export const DEFAULT_SLO_GUARD_THRESHOLD = 0.5;

export const SloGuardSchema = z
  .object({
    tpotMillis: z.int().min(1).max(60_000).describe("The service's mean-TPOT SLO (ms)."),
    threshold: z
      .number()
      .gt(0)
      .max(1)
      .default(DEFAULT_SLO_GUARD_THRESHOLD)
      .describe(
        'Share of the SLO a request may need on an IDLE replica of the pool the split picked (by the pool\'s latency model); ' +
          'above it the request goes to the pool where it is predicted fastest. Load only adds to the idle time, so a request ' +
          'that needs most of its SLO on an idle GPU misses it under load.',
      ),
  })
  .describe(
    'SLO guard: the split is per size bucket, but inside a bucket a 3-token answer to a 900-token prompt needs far more time per ' +
      'output token than a 90-token one. Needs a latency model on at least two pools; pools without one are never redirected to.',
  );
export type SloGuardConfig = z.output<typeof SloGuardSchema>;

export const RoutingSchema = z
  .object({
    strategy: z
      .enum(['smooth', 'random'])
      .default('smooth')
      .describe('smooth: smooth weighted round-robin per bucket (default); random: weighted random.'),
    defaultOutputTokens: z.int().min(1).max(10_000_000).default(256).describe('Output estimate before any request of an input range completed.'),
    outputMeanWindow: z.int().min(1).max(1_000_000).default(1000).describe('The running mean weighs at most this many past requests.'),
    maxAttempts: z.int().min(1).max(10).default(3).describe('Backends tried per request on connection failure.'),
    connectTimeoutMs: z.int().min(1).max(600_000).default(3000),
    ejectMs: z.int().min(0).max(3_600_000).default(5000).describe('A backend that refused a connection is avoided this long.'),
    sloGuard: SloGuardSchema.optional(),
  })
  .prefault({});
export type RoutingConfig = z.output<typeof RoutingSchema>;

export const RouterConfigSchema = z
  .object({
    service: z.object({ namespace: z.string().min(1).max(253), name: z.string().min(1).max(253) }),
    buckets: BucketsSchema,
    split: z.array(SplitEntrySchema).max(32 * 32).default([]),
    pools: z.array(PoolSchema).min(1).max(MAX_POOLS),
    routing: RoutingSchema,
  })
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.pools.forEach((p, i) => {
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', message: `duplicate pool "${p.name}"`, path: ['pools', i, 'name'] });
      names.add(p.name);
    });
    const nIn = Array.isArray(c.buckets?.inputEdges) ? c.buckets.inputEdges.length : Infinity;
    const nOut = Array.isArray(c.buckets?.outputEdges) ? c.buckets.outputEdges.length : Infinity;
    const seen = new Set<string>();
    c.split.forEach((s, i) => {
      if (s.input >= nIn) ctx.addIssue({ code: 'custom', message: `no input range ${s.input} (buckets.inputEdges has ${nIn})`, path: ['split', i, 'input'] });
      if (s.output >= nOut) ctx.addIssue({ code: 'custom', message: `no output range ${s.output} (buckets.outputEdges has ${nOut})`, path: ['split', i, 'output'] });
      const key = `${s.input}/${s.output}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `duplicate split entry for bucket (${s.input}, ${s.output})`, path: ['split', i] });
      seen.add(key);
      for (const pool of Object.keys(s.weights)) {
        if (!names.has(pool)) ctx.addIssue({ code: 'custom', message: `unknown pool "${pool}"`, path: ['split', i, 'weights', pool] });
      }
    });
  });
export type RouterConfig = z.output<typeof RouterConfigSchema>;
export type RouterConfigInput = z.input<typeof RouterConfigSchema>;

export type ConfigResult = { ok: true; config: RouterConfig } | { ok: false; errors: string[] };

const formatPath = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${String(seg)}` : String(seg)), '');

/** Validates an already parsed value. Errors are `path: message` lines. */
export function validateConfig(raw: unknown): ConfigResult {
  const r = RouterConfigSchema.safeParse(raw);
  if (r.success) return { ok: true, config: r.data };
  return { ok: false, errors: r.error.issues.map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`) };
}

/** Parses JSON or YAML text (YAML 1.2 is a superset of JSON) and validates it. */
export function parseConfigText(text: string): ConfigResult {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return { ok: false, errors: [`not valid JSON/YAML: ${(err as Error).message.split('\n')[0]}`] };
  }
  if (raw === null || raw === undefined) return { ok: false, errors: ['(root): the file is empty'] };
  return validateConfig(raw);
}

export interface ConfigDiff {
  unchanged: boolean;
  serviceChanged: boolean;
  inputEdgesChanged: boolean;
  outputEdgesChanged: boolean;
  /** Buckets ("input/output" indices) whose weights were added, removed or changed. */
  splitChanged: string[];
  poolsAdded: string[];
  poolsRemoved: string[];
  /** Pools whose backend source (static list, EndpointSlice or DNS discovery target) changed. */
  poolSourceChanged: string[];
  gpuTypeChanged: string[];
  /** Pools whose latency model (used by routing.sloGuard) was added, removed or changed. */
  latencyChanged: string[];
  routingChanged: boolean;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function normalisedWeights(w: Record<string, number>): Record<string, number> {
  const total = Object.values(w).reduce((a, b) => a + b, 0);
  const out: Record<string, number> = {};
  if (total <= 0) return out;
  for (const k of Object.keys(w).sort()) {
    const v = w[k] ?? 0;
    if (v > 0) out[k] = v / total;
  }
  return out;
}

/** What changed between two valid configs (pure), so a reload touches only what it must. */
export function diffConfig(prev: RouterConfig, next: RouterConfig): ConfigDiff {
  const prevSplit = new Map(prev.split.map((s) => [`${s.input}/${s.output}`, normalisedWeights(s.weights)]));
  const nextSplit = new Map(next.split.map((s) => [`${s.input}/${s.output}`, normalisedWeights(s.weights)]));
  const splitChanged: string[] = [];
  for (const k of new Set([...prevSplit.keys(), ...nextSplit.keys()])) {
    const a = prevSplit.get(k) ?? {};
    const b = nextSplit.get(k) ?? {};
    if (!sameJson(a, b)) splitChanged.push(k);
  }
  splitChanged.sort();
  const prevPools = new Map(prev.pools.map((p) => [p.name, p]));
  const nextPools = new Map(next.pools.map((p) => [p.name, p]));
  const poolsAdded = [...nextPools.keys()].filter((n) => !prevPools.has(n)).sort();
  const poolsRemoved = [...prevPools.keys()].filter((n) => !nextPools.has(n)).sort();
  const poolSourceChanged: string[] = [];
  const gpuTypeChanged: string[] = [];
  const latencyChanged: string[] = [];
  for (const [name, p] of nextPools) {
    const q = prevPools.get(name);
    if (!q) continue;
    if (POOL_SOURCE_KINDS.some((k) => !sameJson(q[k] ?? null, p[k] ?? null))) poolSourceChanged.push(name);
    if (q.gpuType !== p.gpuType) gpuTypeChanged.push(name);
    if (!sameJson(q.latency ?? null, p.latency ?? null)) latencyChanged.push(name);
  }
  poolSourceChanged.sort();
  gpuTypeChanged.sort();
  latencyChanged.sort();
  const diff: ConfigDiff = {
    unchanged: false,
    serviceChanged: !sameJson(prev.service, next.service),
    inputEdgesChanged: !sameJson(prev.buckets.inputEdges, next.buckets.inputEdges),
    outputEdgesChanged: !sameJson(prev.buckets.outputEdges, next.buckets.outputEdges),
    splitChanged,
    poolsAdded,
    poolsRemoved,
    poolSourceChanged,
    gpuTypeChanged,
    latencyChanged,
    routingChanged: !sameJson(prev.routing, next.routing),
  };
  diff.unchanged =
    !diff.serviceChanged && !diff.inputEdgesChanged && !diff.outputEdgesChanged && splitChanged.length === 0 &&
    poolsAdded.length === 0 && poolsRemoved.length === 0 && poolSourceChanged.length === 0 && gpuTypeChanged.length === 0 &&
    latencyChanged.length === 0 && !diff.routingChanged;
  return diff;
}
