import { z } from 'zod';

/** An OpenAPI v3 schema node as JSON (what lands in `openAPIV3Schema`). */
export type JsonSchema = { [key: string]: unknown };

const isObj = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

// Readable, stable key order in the generated YAML (and therefore in diffs of it).
const KEY_ORDER = [
  'description', 'type', 'format', 'x-kubernetes-int-or-string', 'default', 'enum', 'minimum', 'exclusiveMinimum',
  'maximum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'minProperties',
  'maxProperties', 'nullable', 'properties', 'required', 'items', 'additionalProperties',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type', 'x-kubernetes-validations',
];
const rank = (k: string) => {
  const i = KEY_ORDER.indexOf(k);
  return i < 0 ? KEY_ORDER.length : i;
};

/**
 * zod -> structural OpenAPI v3 for a CRD. `io: 'input'` keeps defaulted fields out of `required` and
 * omits `additionalProperties: false` on plain objects; everything is inlined (no `$ref`).
 */
export function toStructural(schema: z.ZodType): JsonSchema {
  const raw = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    reused: 'inline',
    cycles: 'throw',
    unrepresentable: 'throw',
  });
  return clean(raw as JsonSchema);
}

function clean(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || k === 'propertyNames' || k === 'id' || k === '$id') continue;
    if (k === 'properties' && isObj(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [p, isObj(s) ? clean(s) : s]));
    } else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && isObj(v)) {
      out[k] = clean(v);
    } else if ((k === 'anyOf' || k === 'allOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map((s: unknown) => (isObj(s) ? clean(s) : s));
    } else {
      out[k] = v;
    }
  }
  if (out['x-kubernetes-int-or-string'] === true) {
    // zod emits anyOf[integer, string]; the extension alone says the same and is always structural.
    for (const k of Object.keys(out)) if (!['x-kubernetes-int-or-string', 'description', 'default'].includes(k)) delete out[k];
  }
  const ap = out.additionalProperties;
  if (isObj(ap) && Object.keys(ap).length === 0) {
    // z.looseObject / z.record(_, z.unknown()): "anything else is kept".
    delete out.additionalProperties;
    out['x-kubernetes-preserve-unknown-fields'] = true;
  } else if (out.properties !== undefined && ap !== undefined) {
    delete out.additionalProperties; // closed objects: the API server prunes unknown fields anyway
  }
  if (out.type === 'integer') {
    if (out.minimum === -Number.MAX_SAFE_INTEGER) delete out.minimum;
    if (out.maximum === Number.MAX_SAFE_INTEGER) delete out.maximum;
    if (out.maximum === 2147483647 && (out.minimum === -2147483648 || out.minimum === undefined)) {
      delete out.maximum;
      delete out.minimum;
      out.format = 'int32';
    }
  }
  if (out.format === 'date-time') delete out.pattern; // the server checks the format; zod's regex is 400 chars
  return Object.fromEntries(
    Object.entries(out)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => rank(a) - rank(b)),
  );
}
