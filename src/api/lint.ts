import type { JsonSchema } from './structural.js';

const isObj = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

// The lint: the rules apiextensions-apiserver applies when a CRD is created (structural schema,
// OpenAPI subset, list/map extensions, CEL rule shape), so a bad schema fails a unit test rather
// than `kubectl apply`.

type Level = 'root' | 'field' | 'item';

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const UNSUPPORTED: Record<string, string> = {
  $ref: '$ref is not supported',
  $schema: '$schema is not supported',
  definitions: 'definitions is not supported',
  $defs: 'definitions is not supported',
  id: 'id is not supported',
  $id: 'id is not supported',
  dependencies: 'dependencies is not supported',
  patternProperties: 'patternProperties is not supported',
  additionalItems: 'additionalItems is not supported',
  propertyNames: 'propertyNames is not supported',
  const: 'const is not supported (use enum)',
};
const JUNCTORS = ['allOf', 'anyOf', 'oneOf', 'not'] as const;
// What a schema under a junctor must not carry to stay structural.
const FORBIDDEN_IN_JUNCTOR = [
  'type', 'additionalProperties', 'default', 'description', 'title', 'nullable',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-validations',
];
const RULE_REASONS = new Set(['FieldValueInvalid', 'FieldValueRequired', 'FieldValueForbidden', 'FieldValueDuplicate']);
// Go's regexp (RE2) has no lookaround and no backreferences.
const NON_RE2 = /\(\?[=!]|\(\?<[=!]|\\[1-9]|\\k</;

/** Every violation as "path: problem"; [] means the API server will accept the schema. */
export function structuralErrors(schema: unknown, path = 'openAPIV3Schema'): string[] {
  const errs: string[] = [];
  if (!isObj(schema)) return [`${path}: must be an object`];
  walk(schema, path, 'root', errs);
  return errs;
}

function walk(s: JsonSchema, path: string, level: Level, errs: string[], inRootMeta = false): void {
  const err = (msg: string, at = path) => errs.push(`${at}: ${msg}`);
  checkGeneric(s, path, errs);

  const type = s.type;
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  if (type === undefined && !intOrString && !preserve) {
    err(level === 'root' ? 'type must not be empty at the root' : `type must not be empty for specified ${level === 'item' ? 'array items' : 'object fields'}`);
  }
  if (level === 'root' && type !== undefined && type !== 'object') err('type must be object at the root');
  if (intOrString && preserve) err('x-kubernetes-preserve-unknown-fields must be false if x-kubernetes-int-or-string is true');
  if (intOrString && type !== undefined) err('type must be empty if x-kubernetes-int-or-string is true');
  if (type === 'array' && !isObj(s.items)) err('items must be specified for arrays (as a single schema)');

  const props = isObj(s.properties) ? s.properties : undefined;
  if (s.additionalProperties !== undefined) {
    if (level === 'root') err('additionalProperties must not be used at the root');
    if (props && Object.keys(props).length > 0) err('additionalProperties and properties are mutually exclusive');
    if (s.additionalProperties === false) err('additionalProperties cannot be false (unknown fields are pruned instead)');
  }
  if (Array.isArray(s.required) && props) {
    for (const r of s.required) if (typeof r !== 'string' || !(r in props)) err(`required field ${String(r)} is not a property`);
  }

  checkListAndMap(s, path, errs);
  checkJunctors(s, path, errs);

  if (props) {
    for (const [name, child] of Object.entries(props)) {
      const at = `${path}.properties[${name}]`;
      if (!isObj(child)) {
        err('must be a schema object', at);
        continue;
      }
      const meta = level === 'root' && name === 'metadata';
      if (level === 'root' && (name === 'apiVersion' || name === 'kind') && child.type !== 'string') err('must be type string', at);
      if (meta) checkRootMetadata(child, at, errs);
      walk(child, at, 'field', errs, meta || inRootMeta);
    }
  }
  if (isObj(s.items)) walk(s.items, `${path}.items`, 'item', errs, inRootMeta);
  if (isObj(s.additionalProperties)) walk(s.additionalProperties, `${path}.additionalProperties`, 'field', errs, inRootMeta);
  if (inRootMeta && s.default !== undefined) err('default must not be set inside metadata');
}

function checkGeneric(s: JsonSchema, path: string, errs: string[]): void {
  const err = (msg: string) => errs.push(`${path}: ${msg}`);
  for (const [k, msg] of Object.entries(UNSUPPORTED)) if (k in s) err(msg);
  if (s.uniqueItems === true) err('uniqueItems cannot be set to true (use x-kubernetes-list-type: set)');
  if (s.type === 'null') err('type cannot be null, use nullable');
  if (s.type !== undefined && (typeof s.type !== 'string' || !TYPES.has(s.type))) err(`unsupported type ${JSON.stringify(s.type)}`);
  if (Array.isArray(s.items)) err('items must be a schema object and not an array');
  if ('x-kubernetes-preserve-unknown-fields' in s && s['x-kubernetes-preserve-unknown-fields'] !== true) {
    err('x-kubernetes-preserve-unknown-fields must be true or undefined');
  }
  for (const k of ['exclusiveMinimum', 'exclusiveMaximum'] as const) {
    if (k in s && typeof s[k] !== 'boolean') err(`${k} must be a boolean (OpenAPI v3.0), not a number`);
  }
  if (typeof s.pattern === 'string' && NON_RE2.test(s.pattern)) err('pattern uses lookaround or backreferences, which RE2 does not support');
  if (s.default !== undefined && !matchesType(s, s.default)) err(`default ${JSON.stringify(s.default)} does not match the schema`);
  if (Array.isArray(s.enum)) for (const v of s.enum) if (!matchesType(s, v)) err(`enum value ${JSON.stringify(v)} does not match type ${String(s.type)}`);
  const rules = s['x-kubernetes-validations'];
  if (rules !== undefined) {
    if (!Array.isArray(rules)) err('x-kubernetes-validations must be a list');
    else rules.forEach((r: unknown, i) => checkRule(r, `${path}.x-kubernetes-validations[${i}]`, errs));
  }
}

function checkRule(r: unknown, path: string, errs: string[]): void {
  const err = (msg: string): void => void errs.push(`${path}: ${msg}`);
  if (!isObj(r)) return err('must be an object');
  if (typeof r.rule !== 'string' || r.rule.trim() === '') err('rule must be a non-empty CEL expression');
  if (r.message !== undefined && (typeof r.message !== 'string' || /[\r\n]/.test(r.message))) err('message must be a single line');
  if (r.fieldPath !== undefined && (typeof r.fieldPath !== 'string' || !r.fieldPath.startsWith('.'))) err('fieldPath must start with "."');
  if (r.reason !== undefined && !RULE_REASONS.has(String(r.reason))) err(`unsupported reason ${JSON.stringify(r.reason)}`);
  for (const k of Object.keys(r)) {
    if (!['rule', 'message', 'messageExpression', 'fieldPath', 'reason', 'optionalOldSelf'].includes(k)) err(`unknown key ${k}`);
  }
}

function checkListAndMap(s: JsonSchema, path: string, errs: string[]): void {
  const err = (msg: string) => errs.push(`${path}: ${msg}`);
  const listType = s['x-kubernetes-list-type'];
  const keys = s['x-kubernetes-list-map-keys'];
  const items = isObj(s.items) ? s.items : undefined;
  if (listType !== undefined) {
    if (s.type !== 'array') err('type must be array if x-kubernetes-list-type is specified');
    if (!['atomic', 'set', 'map'].includes(String(listType))) err(`unsupported x-kubernetes-list-type ${String(listType)}`);
  }
  if (keys !== undefined && listType !== 'map') err('x-kubernetes-list-type must be map if x-kubernetes-list-map-keys is set');
  if (listType === 'map') {
    if (!Array.isArray(keys) || keys.length === 0) err('x-kubernetes-list-map-keys must not be empty for list-type map');
    if (!items || items.type !== 'object') err('items must be objects for list-type map');
    const itemProps = items && isObj(items.properties) ? items.properties : {};
    const required = new Set(Array.isArray(items?.required) ? items.required : []);
    for (const k of Array.isArray(keys) ? keys : []) {
      const p = itemProps[String(k)];
      if (!isObj(p)) err(`list map key ${String(k)} is not an item property`);
      else if (p.type === 'object' || p.type === 'array') err(`list map key ${String(k)} must be a scalar`);
      else if (!required.has(k) && p.default === undefined) err(`list map key ${String(k)} must be required or have a default`);
      else if (p.nullable === true) err(`list map key ${String(k)} cannot be nullable`);
    }
  }
  if (listType === 'set' && items && (items.type === 'object' && items['x-kubernetes-map-type'] !== 'atomic')) {
    err('items of a list-type set must be scalars or atomic');
  }
  const mapType = s['x-kubernetes-map-type'];
  if (mapType !== undefined) {
    if (s.type !== 'object') err('type must be object if x-kubernetes-map-type is specified');
    if (mapType !== 'atomic' && mapType !== 'granular') err(`unsupported x-kubernetes-map-type ${String(mapType)}`);
  }
}

const isIntOrStringAnyOf = (s: JsonSchema) =>
  s['x-kubernetes-int-or-string'] === true &&
  Array.isArray(s.anyOf) &&
  s.anyOf.length === 2 &&
  isObj(s.anyOf[0]) && s.anyOf[0].type === 'integer' &&
  isObj(s.anyOf[1]) && s.anyOf[1].type === 'string';

function checkJunctors(s: JsonSchema, path: string, errs: string[]): void {
  for (const j of JUNCTORS) {
    const v = s[j];
    if (v === undefined) continue;
    if (j === 'anyOf' && isIntOrStringAnyOf(s)) continue;
    const branches = j === 'not' ? [v] : Array.isArray(v) ? v : [];
    branches.forEach((b: unknown, i) => {
      if (isObj(b)) checkNested(b, s, j === 'not' ? `${path}.not` : `${path}.${j}[${i}]`, errs);
    });
  }
}

/** Inside a junctor only value validations are allowed, on fields that are also declared outside it. */
function checkNested(n: JsonSchema, outer: JsonSchema | undefined, path: string, errs: string[]): void {
  const err = (msg: string) => errs.push(`${path}: ${msg}`);
  for (const k of FORBIDDEN_IN_JUNCTOR) if (k in n) err(`${k} must not be set inside allOf/anyOf/oneOf/not to be structural`);
  for (const k of Object.keys(UNSUPPORTED)) if (k in n) err(UNSUPPORTED[k] ?? `${k} is not supported`);
  const outerProps = outer && isObj(outer.properties) ? outer.properties : {};
  if (isObj(n.properties)) {
    for (const [name, child] of Object.entries(n.properties)) {
      if (name === 'metadata') err('metadata must not be specified in a nested context');
      if (!(name in outerProps) && outer?.['x-kubernetes-preserve-unknown-fields'] !== true) {
        err(`property ${name} must also be specified outside the junctor`);
      }
      if (isObj(child)) checkNested(child, isObj(outerProps[name]) ? outerProps[name] : undefined, `${path}.properties[${name}]`, errs);
    }
  }
  if (isObj(n.items)) {
    if (!outer || !isObj(outer.items)) err('items must also be specified outside the junctor');
    checkNested(n.items, outer && isObj(outer.items) ? outer.items : undefined, `${path}.items`, errs);
  }
  for (const j of JUNCTORS) {
    const v = n[j];
    const branches = v === undefined ? [] : j === 'not' ? [v] : Array.isArray(v) ? v : [];
    branches.forEach((b: unknown, i) => {
      if (isObj(b)) checkNested(b, outer, j === 'not' ? `${path}.not` : `${path}.${j}[${i}]`, errs);
    });
  }
}

function checkRootMetadata(m: JsonSchema, path: string, errs: string[]): void {
  if (m.type !== 'object') errs.push(`${path}: metadata must be type object`);
  const props = isObj(m.properties) ? Object.keys(m.properties) : [];
  const extra = Object.keys(m).filter((k) => k !== 'type' && k !== 'properties'); // even a description breaks it
  const extraProps = props.filter((p) => p !== 'name' && p !== 'generateName');
  if (extra.length > 0 || extraProps.length > 0) {
    errs.push(`${path}: must not specify anything other than restrictions on name and generateName`);
  }
}

/** Shallow-deep type check used for defaults and enum values. */
function matchesType(s: JsonSchema, v: unknown): boolean {
  if (s['x-kubernetes-int-or-string'] === true) return typeof v === 'string' || Number.isInteger(v);
  if (v === null) return s.nullable === true;
  switch (s.type) {
    case 'string': return typeof v === 'string' && (!Array.isArray(s.enum) || s.enum.includes(v));
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    case 'array': return Array.isArray(v) && (!isObj(s.items) || v.every((x) => matchesType(s.items as JsonSchema, x)));
    case 'object': {
      if (!isObj(v)) return false;
      const props = isObj(s.properties) ? s.properties : undefined;
      return Object.entries(v).every(([k, x]) => {
        const p = props?.[k] ?? s.additionalProperties;
        return isObj(p) ? matchesType(p, x) : props === undefined || s['x-kubernetes-preserve-unknown-fields'] === true;
      });
    }
    default: return true;
  }
}
