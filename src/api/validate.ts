import type { z } from 'zod';
import { CRD_DEFINITIONS, openApiSchemaOf, type CrdDefinition } from './crd.js';
import { GPUPoolSchema, type GPUPool } from './gpupool.js';
import { GPUProfileSchema, type GPUProfile } from './gpuprofile.js';
import { LLMServiceSchema, type LLMService } from './llmservice.js';
import { API_VERSION } from './meta.js';
import type { JsonSchema } from './structural.js';

export type MelangeKind = 'LLMService' | 'GPUProfile' | 'GPUPool';
export type MelangeResource = LLMService | GPUProfile | GPUPool;

/** One problem, e.g. `{ path: 'spec.gpus[0].pool', message: 'required field is missing' }`. */
export interface FieldError {
  path: string;
  message: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

export interface ValidateOptions {
  /**
   * Report fields the CRD does not declare (the API server would drop them, or reject them under
   * kubectl's default strict field validation). Default true: in a hand-written manifest an unknown
   * field is almost always a typo.
   */
  strict?: boolean;
}

const SCHEMAS = {
  LLMService: LLMServiceSchema,
  GPUProfile: GPUProfileSchema,
  GPUPool: GPUPoolSchema,
} as const satisfies Record<MelangeKind, z.ZodType>;

export const MELANGE_KINDS = Object.keys(SCHEMAS) as MelangeKind[];

const isKind = (k: unknown): k is MelangeKind => typeof k === 'string' && k in SCHEMAS;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const parseLLMService = (obj: unknown, opts?: ValidateOptions): Validated<LLMService> =>
  run(LLMServiceSchema, 'LLMService', obj, opts);
export const parseGPUProfile = (obj: unknown, opts?: ValidateOptions): Validated<GPUProfile> =>
  run(GPUProfileSchema, 'GPUProfile', obj, opts);
export const parseGPUPool = (obj: unknown, opts?: ValidateOptions): Validated<GPUPool> =>
  run(GPUPoolSchema, 'GPUPool', obj, opts);

/** Validates any melange.dev object; without `kind` it is taken from the object itself. */
export function validateManifest(obj: unknown, kind?: MelangeKind, opts?: ValidateOptions): Validated<MelangeResource> {
  if (!isObj(obj)) return fail('', 'a manifest must be a YAML/JSON object');
  const k = kind ?? obj.kind;
  if (!isKind(k)) {
    return fail('kind', `unsupported kind ${JSON.stringify(obj.kind)} (expected one of ${MELANGE_KINDS.join(', ')})`);
  }
  return run<MelangeResource>(SCHEMAS[k] as z.ZodType<MelangeResource>, k, obj, opts);
}

function run<T>(schema: z.ZodType<T>, kind: MelangeKind, obj: unknown, opts: ValidateOptions = {}): Validated<T> {
  const errors: FieldError[] = [];
  if (isObj(obj)) {
    // Report these first and plainly: a wrong apiVersion/kind explains every other error.
    if (obj.apiVersion !== API_VERSION) errors.push({ path: 'apiVersion', message: `must be ${API_VERSION}` });
    if (obj.kind !== kind) errors.push({ path: 'kind', message: `must be ${kind}` });
  }
  const r = schema.safeParse(obj);
  if (!r.success) {
    for (const issue of r.error.issues) {
      const path = formatPath(issue.path);
      if ((path === 'apiVersion' || path === 'kind') && errors.some((e) => e.path === path)) continue;
      errors.push({ path, message: messageOf(issue) });
    }
  }
  if (opts.strict !== false && isObj(obj)) errors.push(...unknownFields(obj, schemaFor(kind)));
  if (errors.length > 0 || !r.success) return { ok: false, errors: dedupe(errors) };
  return { ok: true, value: r.data };
}

function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) return 'required field is missing';
  return issue.message.replace(/^Invalid input: /, '');
}

const fail = (path: string, message: string): Validated<never> => ({ ok: false, errors: [{ path, message }] });

function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.path}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** ['spec', 'gpus', 0, 'pool'] -> 'spec.gpus[0].pool'; map keys that are not identifiers are quoted. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** One line per error: `file: spec.gpus[0].pool: required field is missing`. */
export function formatFieldErrors(errors: readonly FieldError[], source?: string): string[] {
  return errors.map((e) => [source, e.path || '(root)', e.message].filter((p) => p !== undefined).join(': '));
}

// ---------------------------------------------------------------------------------------------
// Unknown fields, found by walking the same structural schema the CRD carries, so "unknown" means
// exactly what the API server would prune.

const structuralCache = new Map<MelangeKind, JsonSchema>();
function schemaFor(kind: MelangeKind): JsonSchema {
  let s = structuralCache.get(kind);
  if (!s) {
    const def = CRD_DEFINITIONS.find((d: CrdDefinition) => d.kind === kind);
    if (!def) throw new Error(`no CRD definition for ${kind}`);
    s = openApiSchemaOf(def);
    structuralCache.set(kind, s);
  }
  return s;
}

export function unknownFields(value: unknown, schema: JsonSchema, path: PropertyKey[] = []): FieldError[] {
  if (schema['x-kubernetes-preserve-unknown-fields'] === true && !isObj(schema.properties)) return [];
  const out: FieldError[] = [];
  if (Array.isArray(value) && isObj(schema.items)) {
    value.forEach((v, i) => out.push(...unknownFields(v, schema.items as JsonSchema, [...path, i])));
  } else if (isObj(value)) {
    const props = isObj(schema.properties) ? (schema.properties as Record<string, JsonSchema>) : undefined;
    const extra = isObj(schema.additionalProperties) ? (schema.additionalProperties as JsonSchema) : undefined;
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    for (const [k, v] of Object.entries(value)) {
      if (path.length === 0 && k === 'metadata') continue; // ObjectMeta is the API server's, not ours
      const child = props?.[k] ?? extra;
      if (child) out.push(...unknownFields(v, child, [...path, k]));
      else if (!preserve) out.push({ path: formatPath([...path, k]), message: `unknown field ${JSON.stringify(k)}` });
    }
  }
  return out;
}
