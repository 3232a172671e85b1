/**
 * client-node factories and small helpers for tests, written against the API shared by
 * @kubernetes/client-node 1.4.x and 2.x (object-parameter methods, no `.body`).
 */
import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  VersionApi,
  loadYaml,
  setHeaderOptions,
} from '@kubernetes/client-node';

/** Loads the test cluster's kubeconfig (default: $KUBECONFIG as provided by the global setup). */
export function loadKubeConfig(path?: string): KubeConfig {
  const file = path ?? process.env.KUBECONFIG;
  if (!file) throw new Error('no kubeconfig: pass a path or set KUBECONFIG (the integration global setup provides one)');
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

export interface KubeClients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  custom: CustomObjectsApi;
  apiext: ApiextensionsV1Api;
  events: EventsV1Api;
  coordination: CoordinationV1Api;
  rbac: RbacAuthorizationV1Api;
  version: VersionApi;
}

/** Typed API clients for one kubeconfig. */
export function makeClients(kc: KubeConfig): KubeClients {
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    batch: kc.makeApiClient(BatchV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    apiext: kc.makeApiClient(ApiextensionsV1Api),
    events: kc.makeApiClient(EventsV1Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    version: kc.makeApiClient(VersionApi),
  };
}

/**
 * Converts a raw manifest (parsed YAML/JSON, wire field names) into client-node's model form.
 *
 * PITFALL (client-node 1.x and 2.x): typed *create/replace* methods serialize `body` through the
 * model's attribute map, which uses TypeScript names (`x_kubernetes_validations`, `_default`,
 * `$ref`…); a raw object with wire names (`x-kubernetes-validations`) silently loses those fields.
 * Run raw manifests through this (or client-node's `loadYaml`) before create/replace. *Patch*
 * methods are the opposite: their body is `any` and goes out verbatim, so pass the raw wire-format
 * manifest (model-form objects would send `x_kubernetes_validations` and be rejected).
 */
export function fromManifest<T>(raw: unknown): T {
  if (typeof raw !== 'object' || raw === null) throw new Error('manifest must be an object');
  return loadYaml<T>(JSON.stringify(raw));
}

/** Per-call options selecting server-side apply (`application/apply-patch+yaml`). */
export const ssa = () => setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
/** Per-call options selecting a JSON merge patch (`application/merge-patch+json`). */
export const mergePatch = () => setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** HTTP status of a client-node error (ApiException.code, or statusCode of watch errors). */
export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null) {
    const o = err as { code?: unknown; statusCode?: unknown };
    if (typeof o.statusCode === 'number') return o.statusCode;
    if (typeof o.code === 'number') return o.code;
  }
  return undefined;
}

export interface KubeStatus {
  reason?: string;
  message?: string;
  code?: number;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

/** The metav1.Status carried by an ApiException (its body is raw JSON text), if any. */
export function kubeStatusOf(err: unknown): KubeStatus | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const body: unknown = err.body;
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  return typeof parsed === 'object' && parsed !== null ? (parsed as KubeStatus) : undefined;
}

/**
 * Runs `fn` and returns the error it throws; fails if it resolves. Handy with `httpStatusOf`:
 * `expect(httpStatusOf(await expectApiError(() => ...))).toBe(409)`.
 */
export async function expectApiError(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the API call to fail, but it succeeded');
}

export const isNotFound = (e: unknown) => httpStatusOf(e) === 404;
export const isConflict = (e: unknown) => httpStatusOf(e) === 409;

/** Ignores 404 from `fn` (for cleanups). */
export async function ignoreNotFound<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
