// Names the operator stamps on what it owns and reports. One place, so RBAC, labels, events and tests agree.

export const OPERATOR_NAME = 'melange-operator';
/** Server-side apply field manager of every write the operator makes. */
export const FIELD_MANAGER = OPERATOR_NAME;
/** controller-runtime's `controller` log key and metric label. */
export const CONTROLLER_NAME = 'llmservice';
/** events.k8s.io `reportingController`. */
export const REPORTING_CONTROLLER = 'melange.dev/melange-operator';
export const DEFAULT_LEASE_NAME = 'melange-operator-leader';

export const PLURALS = { llmservices: 'llmservices', gpuprofiles: 'gpuprofiles', gpupools: 'gpupools' } as const;

export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  managedBy: 'app.kubernetes.io/managed-by',
  service: 'melange.dev/service',
  pool: 'melange.dev/pool',
  gpuType: 'melange.dev/gpu-type',
} as const;

/** The only Deployments the operator caches: never all Deployments of the cluster. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${OPERATOR_NAME}`;

/** Hash of everything the operator applied except replicas: lets a reconcile skip an identical apply. */
export const APPLIED_HASH_ANNOTATION = 'melange.dev/applied-hash';
