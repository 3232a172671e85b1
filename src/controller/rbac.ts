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
  // EventRecorder
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] },
];

/** A Role in the operator's namespace only: leader election reads, creates and renews one Lease. */
export const LEADER_ELECTION_RULES: readonly PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];
