/**
 * Resolves Secret key references (spec.workload.prometheus.bearerTokenSecretRef / caSecretRef) to strings.
 *
 * Kept apart from the rest of src/workload, which knows nothing of Kubernetes: only the controller imports
 * this file, and hands the strings to PrometheusWorkloadSource through its `credentials` callback:
 *
 *   new PrometheusWorkloadSource({ credentials: (svc) => prometheusCredentials(core, svc) })
 *
 * Values are never logged or put into messages; errors name the Secret and key only.
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

export type SecretRefErrorKind = 'NotFound' | 'Forbidden' | 'KeyMissing' | 'Invalid' | 'ApiError';

export class SecretRefError extends Error {
  override name = 'SecretRefError';
  constructor(
    readonly kind: SecretRefErrorKind,
    readonly namespace: string,
    readonly ref: SecretKeyRef,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Secret ${namespace}/${ref.name} key "${ref.key}": ${detail}`, options);
  }
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
    let secret: V1Secret;
    try {
      secret = await pending;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) throw new SecretRefError('NotFound', namespace, ref, 'Secret not found', { cause: err });
      if (status === 403 || status === 401) {
        throw new SecretRefError('Forbidden', namespace, ref, `the operator may not read it (HTTP ${status})`, { cause: err });
      }
      throw new SecretRefError('ApiError', namespace, ref, `cannot read it: ${status ? `HTTP ${status}` : String(err)}`, { cause: err });
    }
    const encoded = secret.data?.[ref.key];
    const plain = (secret as { stringData?: Record<string, string> }).stringData?.[ref.key];
    if (encoded === undefined && plain === undefined) {
      throw new SecretRefError('KeyMissing', namespace, ref, `no such key (has: ${Object.keys(secret.data ?? {}).join(', ') || 'none'})`);
    }
    out[name] = encoded !== undefined ? Buffer.from(encoded, 'base64').toString('utf8') : plain;
  }
  return out;
}

/**
 * spec.workload.prometheus credentials of `service`: the bearer token (surrounding whitespace trimmed —
 * Secrets made from files usually end with a newline) and the PEM CA bundle (must contain a certificate).
 */
export async function prometheusCredentials(core: SecretReader, service: LLMService): Promise<PrometheusCredentials> {
  const p = service.spec.workload.prometheus;
  if (!p || (!p.bearerTokenSecretRef && !p.caSecretRef)) return {};
  const namespace = service.metadata.namespace ?? 'default';
  const v = await resolveSecretRefs(core, namespace, { bearerToken: p.bearerTokenSecretRef, caPem: p.caSecretRef });
  const out: PrometheusCredentials = {};
  if (v.bearerToken !== undefined && p.bearerTokenSecretRef) {
    const token = v.bearerToken.trim();
    if (token === '' || /[\s\x00-\x1f\x7f]/.test(token)) {
      throw new SecretRefError('Invalid', namespace, p.bearerTokenSecretRef, 'the bearer token is empty or contains whitespace');
    }
    out.bearerToken = token;
  }
  if (v.caPem !== undefined && p.caSecretRef) {
    if (!v.caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new SecretRefError('Invalid', namespace, p.caSecretRef, 'not a PEM certificate bundle');
    }
    out.caPem = v.caPem;
  }
  return out;
}
