import { z } from 'zod';
import { listMap } from './rules.js';

export const GROUP = 'melange.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;

// ---------------------------------------------------------------------------------------------
// Names. The regexes are the ones apimachinery uses, so offline validation agrees with the server.

export const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Names that end up inside other names and label values (Deployment `<service>-<pool>`), hence 63 chars. */
export const DnsLabelSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS_LABEL_RE, 'must be a DNS label: lowercase letters, digits and "-", starting and ending alphanumeric');
export const DnsSubdomainSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(DNS_SUBDOMAIN_RE, 'must be a DNS subdomain: lowercase letters, digits, "-" and ".", starting and ending alphanumeric');

export const StringMapSchema = z.record(z.string(), z.string());

export const SecretKeySelectorSchema = z
  .object({
    name: DnsSubdomainSchema.describe('Name of a Secret in the namespace of the referring object.'),
    key: z.string().min(1).max(253).regex(/^[-._a-zA-Z0-9]+$/).describe('Key inside the Secret.'),
  })
  .describe('A key of a Secret in the same namespace.');
export type SecretKeySelector = z.output<typeof SecretKeySelectorSchema>;

/**
 * What we read from `metadata`. Loose, because the API server owns this object and adds fields we
 * never look at (managedFields, ...); keeping them lets a read-modify-write round-trip intact.
 */
export const ObjectMetaSchema = z.looseObject({
  name: DnsSubdomainSchema,
  namespace: DnsLabelSchema.optional(),
  labels: StringMapSchema.optional(),
  annotations: StringMapSchema.optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.int().min(0).optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(z.looseObject({})).optional(),
});
export type ObjectMeta = z.output<typeof ObjectMetaSchema>;

// ---------------------------------------------------------------------------------------------
// Money: a decimal string, never a float field (API conventions). Up to 7 integer and 6 fractional
// digits, so micro-dollars fit a double exactly (< 2^53).

export const MONEY_RE = /^(0|[1-9][0-9]{0,6})(\.[0-9]{1,6})?$/;
const MICROS_PER_UNIT = 1_000_000;
const MAX_MONEY_MICROS = 9_999_999_999_999; // 9999999.999999

export const MoneySchema = z
  .string()
  .max(14)
  .regex(MONEY_RE, 'must be a decimal amount like "3.67" (at most 7 integer and 6 fractional digits)');

/** Exact value in millionths; use it to add amounts without float drift. Throws on malformed input. */
export function parseMoneyMicros(s: string): number {
  const m = MONEY_RE.exec(s);
  if (!m) throw new RangeError(`invalid money amount ${JSON.stringify(s)}`);
  const whole = Number(m[1]);
  const frac = (m[2] ?? '.').slice(1).padEnd(6, '0');
  return whole * MICROS_PER_UNIT + Number(frac);
}

export function parseMoney(s: string): number {
  return parseMoneyMicros(s) / MICROS_PER_UNIT;
}

/**
 * Rounds to the nearest millionth and prints at least 2 decimals ("3.00", "7.516"). Throws on
 * negative, non-finite or too-large values: a status field that fails the CRD pattern would make the
 * whole status write fail, so it is better to fail loudly at the source.
 */
export function formatMoney(n: number): string {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`cannot format ${n} as money`);
  const micros = Math.round(n * MICROS_PER_UNIT);
  if (micros > MAX_MONEY_MICROS) throw new RangeError(`money amount ${n} exceeds 9999999.999999`);
  const whole = Math.floor(micros / MICROS_PER_UNIT);
  const frac = String(micros % MICROS_PER_UNIT).padStart(6, '0').replace(/0{1,4}$/, '');
  return `${whole}.${frac}`;
}

/** Percent as status prints it ("24.1"); one decimal keeps `kubectl get` readable. */
export function formatPercent(n: number, digits = 1): string {
  if (!Number.isFinite(n)) throw new RangeError(`cannot format ${n} as a percentage`);
  const s = n.toFixed(digits);
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

// ---------------------------------------------------------------------------------------------
// Durations: a single positive number and unit. Compound Go durations ("1m30s") are rejected so the
// pattern stays readable and identical between CEL-free server validation and this parser.

export const DURATION_RE = /^[1-9][0-9]{0,8}(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

export const DurationSchema = z.string().max(11).regex(DURATION_RE, 'must be a duration like "30s", "5m" or "500ms"');

export function parseDurationMs(s: string): number {
  const m = /^([1-9][0-9]{0,8})(ms|s|m|h)$/.exec(s);
  if (!m) throw new RangeError(`invalid duration ${JSON.stringify(s)} (expected e.g. "30s", "5m", "500ms")`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

// ---------------------------------------------------------------------------------------------
// Conditions: metav1.Condition with the exact limits the upstream type declares (KEP-1623).

const CONDITION_TYPE_RE =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
export const CONDITION_REASON_RE = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
export const CONDITION_MESSAGE_MAX = 32768;

export const TimestampSchema = z.iso.datetime({ offset: true });

export const ConditionSchema = z.object({
  type: z.string().max(316).regex(CONDITION_TYPE_RE).describe('Condition type in CamelCase, e.g. Ready.'),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.int().min(0).optional().describe('metadata.generation the condition was computed from.'),
  lastTransitionTime: TimestampSchema.describe('When status last changed.'),
  reason: z.string().min(1).max(1024).regex(CONDITION_REASON_RE).describe('CamelCase reason for the last transition.'),
  message: z.string().max(CONDITION_MESSAGE_MAX).describe('Human-readable details.'),
});
export type Condition = z.output<typeof ConditionSchema>;
export type ConditionStatus = Condition['status'];

export const ConditionListSchema = listMap(z.array(ConditionSchema).max(32), 'type').describe('Current state, keyed by type. Ready summarises the others.');

export const ObservedGenerationSchema = z
  .int()
  .min(0)
  .describe('metadata.generation of the spec the status was computed from.');
