import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { KeepAliveAgents, makePooledApiClient } from './pooled-client.js';

// Client construction and error helpers, restricted to the API surface client-node 1.4 and 2.x share
// (object-parameter methods, ApiException.code, watch errors carrying statusCode).

/**
 * `path` (the --kubeconfig flag) wins; otherwise $KUBECONFIG / ~/.kube/config, and in a pod without
 * KUBECONFIG the in-cluster service account (its token file is re-read, so bound-token rotation works).
 */
export function loadKubeConfig(path?: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export interface KubeClients {
  kc: KubeConfig;
  apps: AppsV1Api;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  events: EventsV1Api;
  /** The keep-alive connections every client above shares (pooled-client.ts); destroy() on shutdown. */
  agents: KeepAliveAgents;
}

export function makeClients(kc: KubeConfig): KubeClients {
  const agents = new KeepAliveAgents();
  return {
    kc,
    apps: makePooledApiClient(kc, AppsV1Api, agents),
    core: makePooledApiClient(kc, CoreV1Api, agents),
    custom: makePooledApiClient(kc, CustomObjectsApi, agents),
    coordination: makePooledApiClient(kc, CoordinationV1Api, agents),
    events: makePooledApiClient(kc, EventsV1Api, agents),
    agents,
  };
}

/** Per-call options: `application/apply-patch+yaml` (the JSON body is valid YAML). */
export const serverSideApply = () => setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
/** Per-call options: `application/merge-patch+json`. */
export const mergePatch = () => setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** HTTP status of an API error (ApiException.code) or of a watch/informer error (statusCode). */
export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null && 'statusCode' in err) {
    const s = (err as { statusCode: unknown }).statusCode;
    return typeof s === 'number' ? s : undefined;
  }
  return undefined;
}

export const isNotFound = (e: unknown) => httpStatusOf(e) === 404;
export const isConflict = (e: unknown) => httpStatusOf(e) === 409;

/** A metav1.Status body of an API error: ApiException.body is raw JSON text or, by client version, parsed. */
function statusBodyOf(err: unknown): { message?: unknown; details?: { causes?: unknown } } | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const body: unknown = err.body;
  if (typeof body === 'object' && body !== null) return body as never;
  if (typeof body !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as never) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The API server refused to create an object because its namespace is being deleted: 403 with the status cause
 * `NamespaceTerminating` (client-go's errors.HasStatusCause(err, v1.NamespaceTerminatingCause)).
 */
export function isNamespaceTerminating(err: unknown): boolean {
  if (httpStatusOf(err) !== 403) return false;
  const causes = statusBodyOf(err)?.details?.causes;
  return Array.isArray(causes) && causes.some((c: unknown) => typeof c === 'object' && c !== null && (c as { reason?: unknown }).reason === 'NamespaceTerminating');
}

/** The API server's own message from a metav1.Status body (ApiException.body is raw JSON text). */
export function apiMessageOf(err: unknown): string {
  if (err instanceof ApiException) {
    const message = statusBodyOf(err)?.message;
    return typeof message === 'string' ? `HTTP ${err.code}: ${message}` : `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
