// Exactly the API access the code uses, one rule per need, with the call that needs it. deploy/rbac.yaml
// must match these (a unit test compares them), and the RBAC integration test runs the operator with them.

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export const OPERATOR_CLUSTER_RULES: readonly PolicyRule[] = [
  // informers (list + watch); reconcile reads the cache, never GETs
  { apiGroups: ['melange.dev'], resources: ['llmservices', 'gpuprofiles', 'gpupools'], verbs: ['list', 'watch'] },
  // status: JSON merge patch on /status
  { apiGroups: ['melange.dev'], resources: ['llmservices/status'], verbs: ['patch'] },
  // ownerReferences with blockOwnerDeletion: required where OwnerReferencesPermissionEnforcement is enabled
  { apiGroups: ['melange.dev'], resources: ['llmservices/finalizers'], verbs: ['update'] },
  // informer (list + watch, label-filtered); server-side apply (create when absent, patch otherwise)
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'watch', 'create', 'patch'] },
  // the router of spec.router.enabled services (router.ts): server-side apply of its ConfigMap, the per-pool
  // headless Services and the Service in front of it; never read back (the applied hash is remembered)
  { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['create', 'patch'] },
  // EventRecorder
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] },
  // spec.workload.prometheus.bearerTokenSecretRef / caSecretRef (workload.ts SecretCredentials): one GET of the
  // referenced Secret in the LLMService's namespace. Never list or watch (no Secret is cached or enumerated), and
  // a Secret is used only if it carries melange.dev/prometheus-credentials: "true", so an LLMService author
  // cannot send an arbitrary Secret of the namespace to a URL of their choosing (src/workload/secrets.ts).
  { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
];

/** A Role in the operator's namespace only: leader election reads, creates and renews one Lease. */
export const LEADER_ELECTION_RULES: readonly PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/**
 * The GPUPool reconciler (src/controller/gpupool-controller.ts; `--gpu-pools`, on by default unless the
 * operator watches one namespace). Part of the deployed ClusterRole (DEPLOYED_CLUSTER_RULES). Each verb is
 * shown to be needed by test/integration/pools-rbac.test.ts; the status and nodes verbs also by the
 * ship-lifecycle one-verb-removed scenario. A `Scale` provider needs get + patch on `<plural>/scale` of its
 * own kind, granted by whoever installs it.
 */
export const GPUPOOL_CLUSTER_RULES: readonly PolicyRule[] = [
  // status: JSON merge patch on /status, preconditioned on resourceVersion
  { apiGroups: ['melange.dev'], resources: ['gpupools/status'], verbs: ['patch'] },
  // a LIST per pool per resync, always with the pool's nodeSelector as labelSelector (never all Nodes)
  { apiGroups: [''], resources: ['nodes'], verbs: ['list'] },
  // ClusterAPI provider: read and merge-patch MachineDeployment /scale
  { apiGroups: ['cluster.x-k8s.io'], resources: ['machinedeployments/scale'], verbs: ['get', 'patch'] },
  // Karpenter provider: read the NodePool, server-side apply of spec.limits[<resourceName>] only
  { apiGroups: ['karpenter.sh'], resources: ['nodepools'], verbs: ['get', 'patch'] },
];

/** The operator's ClusterRole as deploy/10-rbac.yaml and the chart grant it. */
export const DEPLOYED_CLUSTER_RULES: readonly PolicyRule[] = [...OPERATOR_CLUSTER_RULES, ...GPUPOOL_CLUSTER_RULES];
