import type { CoreV1Api } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/index.js';
import { FIELD_MANAGER, PLURALS } from './constants.js';
import type { DeploymentManifest } from './desired.js';
import type { CoreManifest } from './router.js';
import { mergePatch, serverSideApply, type KubeClients } from './kube.js';

// The executor: the only place the reconciler writes to the API. Deployments by server-side apply (force:
// the operator owns these fields), status by a JSON merge patch on /status carrying the resourceVersion it
// was computed from (a stale cache gets a 409 and the key is retried, never a blind overwrite).

export interface ClusterWriter {
  applyDeployment(d: DeploymentManifest): Promise<void>;
  /** Only replicas, for a Deployment whose pool left spec.gpus (nothing else to apply it from). */
  scaleDeployment(namespace: string, name: string, replicas: number): Promise<void>;
  /** Returns the object's new resourceVersion. */
  patchServiceStatus(namespace: string, name: string, resourceVersion: string | undefined, status: unknown): Promise<{ resourceVersion?: string; status?: unknown }>;
  /** Server-side apply of a ConfigMap or Service (the router's objects). Absent: the router is not managed. */
  applyCore?(m: CoreManifest): Promise<void>;
}

export class KubeWriter implements ClusterWriter {
  constructor(
    private readonly clients: Pick<KubeClients, 'apps' | 'custom'>,
    private readonly core?: CoreV1Api,
  ) {
    if (!core) this.applyCore = undefined;
  }

  applyCore?: (m: CoreManifest) => Promise<void> = async (m) => {
    const core = this.core as CoreV1Api;
    const opts = { name: m.metadata.name, namespace: m.metadata.namespace, body: m, fieldManager: FIELD_MANAGER, force: true, fieldValidation: 'Strict' };
    if (m.kind === 'ConfigMap') await core.patchNamespacedConfigMap(opts, serverSideApply());
    else await core.patchNamespacedService(opts, serverSideApply());
  };

  async applyDeployment(d: DeploymentManifest): Promise<void> {
    await this.clients.apps.patchNamespacedDeployment(
      { name: d.metadata.name, namespace: d.metadata.namespace, body: d, fieldManager: FIELD_MANAGER, force: true, fieldValidation: 'Strict' },
      serverSideApply(),
    );
  }

  async scaleDeployment(namespace: string, name: string, replicas: number): Promise<void> {
    await this.clients.apps.patchNamespacedDeployment({ name, namespace, body: { spec: { replicas } }, fieldManager: FIELD_MANAGER }, mergePatch());
  }

  async patchServiceStatus(namespace: string, name: string, resourceVersion: string | undefined, status: unknown) {
    const res: unknown = await this.clients.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURALS.llmservices,
        namespace,
        name,
        body: { ...(resourceVersion ? { metadata: { resourceVersion } } : {}), status },
        fieldManager: FIELD_MANAGER,
      },
      mergePatch(),
    );
    const o = (typeof res === 'object' && res !== null ? res : {}) as { metadata?: { resourceVersion?: string }; status?: unknown };
    return { ...(o.metadata?.resourceVersion ? { resourceVersion: o.metadata.resourceVersion } : {}), status: o.status };
  }
}
