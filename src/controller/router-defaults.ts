import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

// Operator-wide defaults of the router Deployment the operator runs for each LLMService with
// spec.router.enabled (router.ts buildRouterDeployment). `melangectl controller --router-defaults FILE` reads
// them once at start-up; the Helm chart renders the file into the ConfigMap <fullname>-router-defaults
// (values router.*) and deploy/20-operator.yaml ships the same ConfigMap.
//
// Precedence, per field: spec.router.* of the LLMService (image, replicas) > controller flags
// (--router-image) > this file > the built-in defaults below.

/** The log levels `melangectl router --log-level` accepts (src/cli/router.ts). */
export const ROUTER_LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Kubernetes resource.Quantity: the pattern the API server's OpenAPI schema uses. */
const QUANTITY = /^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/;
const Quantity = z.union([
  z.string().regex(QUANTITY, 'not a Kubernetes quantity (like 250m, 1, 128Mi, 1Gi)'),
  z.number().nonnegative('must not be negative'),
]);
const Quantities = z.record(z.string().min(1), Quantity);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DnsSubdomain = z.string().max(253).regex(DNS_SUBDOMAIN, 'not a DNS subdomain name (lower-case letters, digits, "-" and ".")');
const Port = z.int().min(1).max(65535);

export const RouterResourcesSchema = z
  .strictObject({
    requests: Quantities.optional(),
    limits: Quantities.optional(),
  })
  .describe('Router container resources (core/v1 ResourceRequirements: requests and limits).');
export type RouterResources = z.output<typeof RouterResourcesSchema>;

/** The built-in defaults: what applies when neither the LLMService, a flag nor the defaults file says. */
export const BUILTIN_ROUTER_DEFAULTS = {
  imagePullPolicy: 'IfNotPresent',
  replicas: 2,
  port: 8080,
  metricsPort: 9090,
  logLevel: 'info',
  /** = src/router/server.ts DEFAULT_MAX_BODY_BYTES (a unit test keeps them equal). */
  maxBodyBytes: 16 * 1024 * 1024,
  /** = src/router/server.ts DEFAULT_SHUTDOWN_GRACE_MS. */
  shutdownGraceMs: 30_000,
  preStopSleepSeconds: 5,
  workers: 1,
  /** docs/benchmarks.md: p99 added latency ~18% lower than with 16 (Node's choice on a large host), the same as 1 (its choice at 512Mi). */
  maxSemiSpaceSizeMiB: 4,
  resources: { requests: { cpu: '250m', memory: '128Mi' }, limits: { memory: '512Mi' } },
  serviceAccountName: '',
  imagePullSecrets: [] as Array<{ name: string }>,
} as const;

const B = BUILTIN_ROUTER_DEFAULTS;

/**
 * The fields of the defaults file, each with its built-in default. Shared with the chart's values.router
 * (src/chart/values.ts) so `helm install` rejects what the operator would refuse.
 */
export const RouterDefaultsFields = {
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default(B.imagePullPolicy),
  replicas: z
    .int()
    .min(0)
    .max(100)
    .default(B.replicas)
    .describe(
      'Router replicas of an LLMService without spec.router.replicas. The CRD defaults that field to 2, so a stored LLMService always has it: set it per service.',
    ),
  port: Port.default(B.port).describe('Router container port (`--port`, named http): the OpenAI-compatible API, /healthz and /readyz.'),
  metricsPort: Port.default(B.metricsPort).describe('Router metrics port (`--metrics-port`, named metrics): /metrics.'),
  logLevel: z.enum(ROUTER_LOG_LEVELS).default(B.logLevel).describe('Router `--log-level`.'),
  maxBodyBytes: z
    .int()
    .min(1024)
    .max(2 ** 30)
    .default(B.maxBodyBytes)
    .describe('Router `--max-body-bytes`: larger request bodies get 413.'),
  shutdownGraceMs: z
    .int()
    .min(0)
    .max(3_600_000)
    .default(B.shutdownGraceMs)
    .describe('Router `--shutdown-grace-ms`: how long in-flight requests may finish after SIGTERM. terminationGracePeriodSeconds is derived from it.'),
  preStopSleepSeconds: z
    .int()
    .min(0)
    .max(300)
    .default(B.preStopSleepSeconds)
    .describe('preStop sleep before SIGTERM, so endpoints and kube-proxy stop sending new connections before the router closes its listener; 0 disables.'),
  workers: z
    .int()
    .min(1)
    .max(64)
    .default(B.workers)
    .describe(
      'Router `--workers`: processes per router pod sharing its port (the primary sums their metrics). More than 1 spreads the relaying of hundreds of concurrent streams over several cores; give the pods as many CPUs (resources.requests.cpu).',
    ),
  maxSemiSpaceSizeMiB: z
    .int()
    .min(0)
    .max(256)
    .default(B.maxSemiSpaceSizeMiB)
    .describe(
      "V8 young-generation semi-space of each router process (`node --max-semi-space-size`, MiB). 0 leaves it to Node, which derives it from the container's memory limit: 1 MiB under the default 512Mi, 16 MiB from a few GiB up. Smaller means shorter but more frequent young-generation pauses, which a request arriving during one waits for: under 200 streams, 4 gave a lower p99 added latency than 16 in 4 of 4 paired runs (~18%) and about the same as 1 (docs/benchmarks.md); set, it keeps the router's pauses independent of the memory limit.",
    ),
  resources: RouterResourcesSchema.default(structuredClone(B.resources) as RouterResources),
  serviceAccountName: z
    .union([z.literal(''), DnsSubdomain])
    .default(B.serviceAccountName)
    .describe(
      "ServiceAccount of the router pods in each service's namespace. The operator's routers discover backends by DNS and need no API access, so by default no token is mounted; name one only for hand-written EndpointSlice discovery (it then needs get/list/watch on discovery.k8s.io endpointslices there).",
    ),
  imagePullSecrets: z
    .array(z.strictObject({ name: DnsSubdomain }))
    .max(16)
    .default([])
    .describe("Pull secrets of the router pods; the Secrets must exist in each service's namespace."),
};

export const RouterDefaultsSchema = z
  .strictObject({
    image: z
      .string()
      .min(1)
      .max(512)
      .regex(/^\S+$/, 'must not contain whitespace')
      .optional()
      .describe('Router image (it must contain /app/bin/melangectl.js, like the operator image). None: only services with spec.router.image get a router.'),
    ...RouterDefaultsFields,
  })
  .superRefine((d, ctx) => {
    if (d.port === d.metricsPort) ctx.addIssue({ code: 'custom', path: ['metricsPort'], message: `must differ from port (${d.port})` });
  })
  .describe('Defaults of the per-LLMService router Deployment (melangectl controller --router-defaults).');

/** Resolved defaults (built-ins filled in). */
export type RouterDefaults = z.output<typeof RouterDefaultsSchema>;
export type RouterDefaultsInput = z.input<typeof RouterDefaultsSchema>;

const formatPath = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${String(seg)}` : String(seg)), '');

/** One `field: reason` line per problem; an unknown key is named as its own field. */
function issueLines(error: z.ZodError): string[] {
  return error.issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${formatPath([...i.path, k])}: unknown field`);
    return [`${formatPath(i.path) || '(root)'}: ${i.message}`];
  });
}

export type RouterDefaultsResult = { ok: true; defaults: RouterDefaults } | { ok: false; errors: string[] };

/** Validates a parsed defaults document (null/undefined = an empty file = the built-ins). */
export function validateRouterDefaults(raw: unknown): RouterDefaultsResult {
  const r = RouterDefaultsSchema.safeParse(raw ?? {});
  return r.success ? { ok: true, defaults: r.data } : { ok: false, errors: issueLines(r.error) };
}

/** Parses YAML (or JSON) text and validates it. */
export function parseRouterDefaults(text: string): RouterDefaultsResult {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return { ok: false, errors: [`not valid YAML: ${(err as Error).message.split('\n')[0]}`] };
  }
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) return { ok: false, errors: ['(root): must be a mapping of field: value'] };
  return validateRouterDefaults(raw);
}

/** A defaults file that cannot be used: `file: field: reason` lines. */
export class RouterDefaultsError extends Error {
  constructor(
    readonly file: string,
    readonly lines: string[],
  ) {
    super(`${file}: ${lines.join('; ')}`);
    this.name = 'RouterDefaultsError';
  }
}

/** Reads and validates a defaults file; throws RouterDefaultsError naming the file, the field and the reason. */
export function loadRouterDefaultsFile(file: string, read: (f: string) => string = (f) => readFileSync(f, 'utf8')): RouterDefaults {
  let text: string;
  try {
    text = read(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new RouterDefaultsError(file, [`cannot read: ${e.code ?? e.message}`]);
  }
  const r = parseRouterDefaults(text);
  if (!r.ok) throw new RouterDefaultsError(file, r.errors);
  return r.defaults;
}

/**
 * The operator-wide defaults: the file's (or the built-ins), then the flags on top. Throws a plain Error
 * naming the flag when a flag value is invalid.
 */
export function resolveRouterDefaults(opts: { file?: RouterDefaults; routerImage?: string } = {}): RouterDefaults {
  const merged = { ...(opts.file ?? {}), ...(opts.routerImage !== undefined ? { image: opts.routerImage } : {}) };
  const r = validateRouterDefaults(merged);
  if (!r.ok) throw new Error(r.errors.map((l) => (l.startsWith('image:') ? `--router-image: ${l.slice('image: '.length)}` : l)).join('; '));
  return r.defaults;
}

/** The built-in defaults, optionally with some fields set (tests, embedding). */
export const routerDefaults = (over: RouterDefaultsInput = {}): RouterDefaults => RouterDefaultsSchema.parse(over);
