// The controller layer: informers, work queue, reconcile, leader election, events, status writing.
export * from './constants.js';
export { loadKubeConfig, makeClients, httpStatusOf, isNotFound, isConflict, isNamespaceTerminating, apiMessageOf, type KubeClients } from './kube.js';
export { startInformer, keyOf, splitKey, type Informer, type InformerOptions } from './informer.js';
export { WorkQueue, runWorkers, type ReconcileResult, type WorkerOptions } from './workqueue.js';
export { LeaderElector, withTimeout, type LeaderElectorConfig, type LeadershipEnd } from './leader.js';
export { EventRecorder, type EventSink, type EventType } from './events.js';
export { createMetrics, forgetService, type Metrics, type SolveOutcome } from './metrics.js';
export { parseAddress, startProbeServer, startMetricsServer, type Endpoint } from './http.js';
export { createLogger, LOG_LEVELS, type LogLevel, type Logger } from './logger.js';
export { buildDeployment, deploymentName, selectorLabels, labelValue, appliedHash, canonicalJson, type DeploymentManifest, type DesiredDeploymentInput } from './desired.js';
export { planTransition, IMMEDIATE, type PoolObservation, type TransitionPlan, type Shortfall, type DrainPolicy, type DrainState } from './transition.js';
export { SharedPools, type Share, type SharedPoolsDeps } from './shared-pools.js';
export { decideAllocation, withMinTotal, costOf, totalOf, sameReplicas, type AllocationDecision, type Replicas, type DecideArgs } from './allocation.js';
export { buildStatus, statusEqual, mergePatchOf, type PlanOutcome, type SolveRecord, type StatusInputs } from './status.js';
export { noticesFor, type Notice } from './notices.js';
export { StaticWorkloadSource, WorkloadSources, ObservedWorkloadSource, defaultBackoffFor, unresolvedCredentials, type WorkloadObserver, type ObservedWorkloadOptions, type WorkloadSource, type WorkloadEstimate, type WorkloadSourceName, type MetricsConditionUpdate } from './workload.js';
export { InformerView, observeDeployment, type ClusterView, type ObservedDeployment } from './view.js';
export { KubeWriter, type ClusterWriter } from './writer.js';
export { Reconciler, type ReconcilerDeps } from './reconciler.js';
export { Planner, classifyReferenceErrors, type PlanResult, type PlannerDeps } from './planner.js';
export { Manager, type ManagerOptions, type LeaderElectionOptions } from './manager.js';
export { OPERATOR_CLUSTER_RULES, LEADER_ELECTION_RULES, GPUPOOL_CLUSTER_RULES, DEPLOYED_CLUSTER_RULES, type PolicyRule } from './rbac.js';
// GPU pools
export { GPUPoolController, kubeGPUPoolClient, type GPUPoolClient, type GPUPoolControllerDeps, type PoolReconcileResult } from './gpupool-controller.js';
export {
  buildRouterConfigMap,
  buildRouterDeployment,
  buildRouterService,
  buildPoolService,
  routerConfig,
  routedSplit,
  routerName,
  poolServiceName,
  ROUTER_CONFIG_KEY,
  type CoreManifest,
  type RouterPool,
} from './router.js';
