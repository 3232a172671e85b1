/**
 * Resolves Secret key references (spec.workload.prometheus.bearerTokenSecretRef / caSecretRef) to strings.
 *
 * Kept apart from the rest of src/workload, which knows nothing of Kubernetes: only the controller imports
 * this file, and hands the strings to PrometheusWorkloadSource through its `credentials` callback:
 *
 *   new PrometheusWorkloadSource({ credentials: (svc) => prometheusCredentials(core, svc) })
 *
 * Values are never logged or put into messages; errors name the Secret and key only.
 *
 * Opt-in label. The operator reads these Secrets with its own ServiceAccount (`secrets: get`, cluster-wide), on
 * behalf of whoever wrote the LLMService. Without a check, a user who may create LLMServices but not read
 * Secrets could point spec.workload.prometheus.url at a server of their own, reference any Secret of the
 * namespace as `bearerTokenSecretRef`, and receive its value in the Authorization header. So the operator
 * passes `{ requireLabel: PROMETHEUS_CREDENTIALS_OPT_IN }`: a Secret is used only if it carries
 * `melange.dev/prometheus-credentials: "true"`, which only someone allowed to write Secrets can set. A Secret
 * without it is refused before anything is sent (kind `NotOptedIn`).
 */
import { ApiException, type V1Secret } from '@kubernetes/client-node';
import type { LLMService } from '../api/llmservice.js';
import type { PrometheusCredentials } from './source.js';

export interface SecretKeyRef {
  name: string;
  key: string;
}

/** The part of CoreV1Api used here (a CoreV1Api from client-node satisfies it; tests pass a fake). */
export interface SecretReader {
  readNamespacedSecret(param: { name: string; namespace: string }): Promise<V1Secret>;
}

/** The label a Secret must carry (value "true") before the operator sends any of it to a Prometheus. */
export const PROMETHEUS_CREDENTIALS_LABEL = 'melange.dev/prometheus-credentials';
export const PROMETHEUS_CREDENTIALS_OPT_IN: Readonly<{ key: string; value: string }> = { key: PROMETHEUS_CREDENTIALS_LABEL, value: 'true' };

export type SecretRefErrorKind = 'NotFound' | 'Forbidden' | 'KeyMissing' | 'Invalid' | 'NotOptedIn' | 'ApiError';

export class SecretRefError extends Error {
  override name = 'SecretRefError';
  constructor(
    readonly kind: SecretRefErrorKind,
    readonly namespace: string,
    readonly ref: SecretKeyRef,
    detail: string,
    options?: { cause?: unknown; /** The spec field of the reference, e.g. spec.workload.prometheus.bearerTokenSecretRef. */ field?: string },
  ) {
    const where = options?.field ? `${options.field}.${SecretRefError.fieldPart(kind)}: ` : '';
    super(`${where}Secret ${namespace}/${ref.name} key "${ref.key}": ${detail}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = options?.field;
  }

  readonly field: string | undefined;

  /** Which part of the reference to fix: the key for a missing or unusable value, else the Secret's name. */
  static fieldPart(kind: SecretRefErrorKind): 'name' | 'key' {
    return kind === 'KeyMissing' || kind === 'Invalid' ? 'key' : 'name';
  }
}

export interface ResolveOptions {
  /** Use a Secret only if it carries this label with this value (see the opt-in note at the top). */
  requireLabel?: { key: string; value: string };
}

function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'number') {
    return (err as { code: number }).code;
  }
  return undefined;
}

/**
 * Reads every referenced key (each Secret once) and returns the decoded UTF-8 values under the same names.
 * Undefined refs are skipped. Throws SecretRefError on the first problem.
 */
export async function resolveSecretRefs<K extends string>(
  core: SecretReader,
  namespace: string,
  refs: { readonly [P in K]?: SecretKeyRef | undefined },
  options: ResolveOptions & { fields?: { readonly [P in K]?: string } } = {},
): Promise<{ [P in K]?: string }> {
  const secrets = new Map<string, Promise<V1Secret>>();
  const out: { [P in K]?: string } = {};
  for (const [name, ref] of Object.entries(refs) as [K, SecretKeyRef | undefined][]) {
    if (!ref) continue;
    let pending = secrets.get(ref.name);
    if (!pending) {
      pending = core.readNamespacedSecret({ name: ref.name, namespace });
      pending.catch(() => {}); // awaited below; avoid an unhandled rejection if an earlier key throws first
      secrets.set(ref.name, pending);
    }
    const field = options.fields?.[name];
    const opts = (cause?: unknown) => ({ ...(cause === undefined ? {} : { cause }), ...(field ? { field } : {}) });
    let secret: V1Secret;
    try {
      secret = await pending;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) throw new SecretRefError('NotFound', namespace, ref, 'Secret not found', opts(err));
      if (status === 403 || status === 401) {
        throw new SecretRefError('Forbidden', namespace, ref, `the operator may not read it (HTTP ${status}; it needs secrets: get)`, opts(err));
      }
      throw new SecretRefError('ApiError', namespace, ref, `cannot read it: ${status ? `HTTP ${status}` : String(err)}`, opts(err));
    }
    const want = options.requireLabel;
    if (want && secret.metadata?.labels?.[want.key] !== want.value) {
      throw new SecretRefError(
        'NotOptedIn',
        namespace,
        ref,
        `the Secret is not labelled ${want.key}: "${want.value}"; the operator only uses Secrets that opt in with this label ` +
          `(so that referencing a Secret in a spec cannot send it to an arbitrary URL); nothing was sent`,
        opts(),
      );
    }
    const encoded = secret.data?.[ref.key];
    const plain = (secret as { stringData?: Record<string, string> }).stringData?.[ref.key];
    if (encoded === undefined && plain === undefined) {
      throw new SecretRefError('KeyMissing', namespace, ref, `no such key (has: ${Object.keys(secret.data ?? {}).join(', ') || 'none'})`, opts());
    }
    out[name] = encoded !== undefined ? Buffer.from(encoded, 'base64').toString('utf8') : plain;
  }
  return out;
}

export const BEARER_TOKEN_FIELD = 'spec.workload.prometheus.bearerTokenSecretRef';
export const CA_FIELD = 'spec.workload.prometheus.caSecretRef';

/**
 * spec.workload.prometheus credentials of `service`: the bearer token (surrounding whitespace trimmed —
 * Secrets made from files usually end with a newline) and the PEM CA bundle (must contain a certificate).
 * Errors name the spec field to fix (`spec.workload.prometheus.bearerTokenSecretRef.key: Secret …`).
 * The operator passes `{ requireLabel: PROMETHEUS_CREDENTIALS_OPT_IN }` (see the note at the top).
 */
export async function prometheusCredentials(core: SecretReader, service: LLMService, options: ResolveOptions = {}): Promise<PrometheusCredentials> {
  const p = service.spec.workload.prometheus;
  if (!p || (!p.bearerTokenSecretRef && !p.caSecretRef)) return {};
  const namespace = service.metadata.namespace ?? 'default';
  const v = await resolveSecretRefs(
    core,
    namespace,
    { bearerToken: p.bearerTokenSecretRef, caPem: p.caSecretRef },
    { ...options, fields: { bearerToken: BEARER_TOKEN_FIELD, caPem: CA_FIELD } },
  );
  const out: PrometheusCredentials = {};
  if (v.bearerToken !== undefined && p.bearerTokenSecretRef) {
    const token = v.bearerToken.trim();
    if (token === '' || /[\s\x00-\x1f\x7f]/.test(token)) {
      throw new SecretRefError('Invalid', namespace, p.bearerTokenSecretRef, 'the bearer token is empty or contains whitespace', { field: BEARER_TOKEN_FIELD });
    }
    out.bearerToken = token;
  }
  if (v.caPem !== undefined && p.caSecretRef) {
    if (!v.caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new SecretRefError('Invalid', namespace, p.caSecretRef, 'not a PEM certificate bundle', { field: CA_FIELD });
    }
    out.caPem = v.caPem;
  }
  return out;
}
