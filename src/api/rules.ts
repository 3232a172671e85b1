import type { z } from 'zod';

/** The reasons a CRD validation rule may report (apiextensions `ValidationRule.reason`). */
export type RuleReason = 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueForbidden' | 'FieldValueDuplicate';

/**
 * One cross-field rule written twice: as Kubernetes CEL for the API server and as a TypeScript
 * predicate for offline validation (`melangectl plan`). Keeping both in one object is what makes the
 * two layers report the same message on the same field.
 */
export interface CrossRule<T> {
  /** CEL, evaluated with `self` bound to the value of the schema the rule is attached to. */
  rule: string;
  message: string;
  /** Relative JSON path of the offending field (`.workload.static`), so errors name the field, not the parent. */
  fieldPath?: string;
  reason?: RuleReason;
  /** Path zod reports when fieldPath cannot be used in the CRD (e.g. metadata.name); defaults to fieldPath. */
  offlinePath?: string[];
  /** The same rule in TypeScript. It may see partially invalid input (other fields failed), so it must not assume shape. */
  holds: (self: T) => boolean;
}

export interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: RuleReason;
}

export function celOf<T>(r: CrossRule<T>): CelValidation {
  const out: CelValidation = { rule: r.rule, message: r.message };
  if (r.fieldPath !== undefined) out.fieldPath = r.fieldPath;
  if (r.reason !== undefined) out.reason = r.reason;
  return out;
}

/** `.a.b` -> ['a', 'b'] (CRD fieldPath allows only property names, no indexes). */
export function fieldPathSegments(fieldPath: string | undefined): string[] {
  if (!fieldPath) return [];
  return fieldPath.split('.').filter((s) => s.length > 0);
}

/**
 * Attaches the rules to a schema: as `x-kubernetes-validations` for the CRD generator and as refinements
 * for zod. Refinements run even when sibling fields failed (`when: () => true`) so a user sees every
 * problem in one pass; a predicate that throws on malformed input counts as passing because the shape
 * error is already reported. Call it once per schema: a second call's metadata replaces the first's rules.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: ReadonlyArray<CrossRule<z.output<S>>>): S {
  let out = schema;
  for (const r of rules) {
    out = out.refine(
      (v: z.output<S>) => {
        try {
          return r.holds(v);
        } catch {
          return true;
        }
      },
      { message: r.message, path: r.offlinePath ?? fieldPathSegments(r.fieldPath), when: () => true },
    ) as S;
  }
  return out.meta({ 'x-kubernetes-validations': rules.map(celOf) }) as S;
}

/** Loose object access for predicates that must tolerate malformed input. */
export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A list keyed like a map (`x-kubernetes-list-type: map`). The API server rejects duplicate keys on
 * its own; the refinement makes offline validation reject them too, on the duplicate's key field.
 */
export function listMap<S extends z.ZodArray>(schema: S, key: string): S {
  return schema
    .superRefine((items: unknown[], ctx) => {
      const seen = new Set<unknown>();
      items.forEach((item, i) => {
        const k = isRecord(item) ? item[key] : undefined;
        if (k === undefined) return;
        if (seen.has(k)) ctx.addIssue({ code: 'custom', message: `duplicate ${key} ${JSON.stringify(k)}`, path: [i, key] });
        seen.add(k);
      });
    })
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': [key] }) as S;
}
