import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CONTROLLER_NAME, OPERATOR_NAME } from './constants.js';

// The operator's own metrics, on a private registry (never prom-client's global one). Controller and queue
// metrics reuse controller-runtime's names so existing dashboards work; domain metrics are `llmservice_*`.
// Label cardinality is bounded: at most one series per LLMService, never per request.

export type SolveOutcome = 'optimal' | 'feasible-with-gap' | 'infeasible' | 'error' | 'timeout' | 'unchanged';

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  registry.setDefaultLabels({ app: OPERATOR_NAME });
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'melange_operator_' });
  const controller = ['controller'] as const;
  const m = {
    registry,
    reconcileTotal: new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total reconciliations per controller and result (success, error, requeue_after).',
      labelNames: ['controller', 'result'] as const,
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total reconciliation errors per controller.',
      labelNames: controller,
      registers: [registry],
    }),
    reconcileTime: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller.',
      labelNames: controller,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    queueDepth: new Gauge({ name: 'workqueue_depth', help: 'Current depth of the work queue.', labelNames: ['name'] as const, registers: [registry] }),
    queueAdds: new Counter({ name: 'workqueue_adds_total', help: 'Total adds handled by the work queue.', labelNames: ['name'] as const, registers: [registry] }),
    queueRetries: new Counter({ name: 'workqueue_retries_total', help: 'Total retries (rate-limited re-adds) of the work queue.', labelNames: ['name'] as const, registers: [registry] }),
    leader: new Gauge({ name: 'leader_election_master_status', help: '1 while this instance leads, else 0.', labelNames: ['name'] as const, registers: [registry] }),
    solveDuration: new Histogram({
      name: 'llmservice_solver_duration_seconds',
      help: 'Wall time of Mélange solves (in the worker thread, deadline included).',
      labelNames: ['outcome'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    solves: new Counter({
      name: 'llmservice_solves_total',
      help: 'Solve decisions per outcome; "unchanged" = instance identical to the last one solved, solver not run.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    cost: new Gauge({ name: 'llmservice_hourly_cost_dollars', help: 'Cost of the allocation the operator runs ($/h).', labelNames: ['namespace', 'name'] as const, registers: [registry] }),
    savings: new Gauge({ name: 'llmservice_savings_percent', help: 'Savings of the allocation against the best single GPU type (%).', labelNames: ['namespace', 'name'] as const, registers: [registry] }),
    replicas: new Gauge({ name: 'llmservice_replicas', help: 'Planned model-server replicas per service.', labelNames: ['namespace', 'name'] as const, registers: [registry] }),
    ready: new Gauge({ name: 'llmservice_ready', help: '1 when the Ready condition is True.', labelNames: ['namespace', 'name'] as const, registers: [registry] }),
    apiErrors: new Counter({ name: 'melange_operator_api_errors_total', help: 'Kubernetes API errors by operation and HTTP status.', labelNames: ['operation', 'code'] as const, registers: [registry] }),
  };
  m.queueDepth.set({ name: CONTROLLER_NAME }, 0);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Drops the per-service series of a deleted LLMService (keeps cardinality bounded by live objects). */
export function forgetService(m: Metrics, namespace: string, name: string): void {
  for (const g of [m.cost, m.savings, m.replicas, m.ready]) g.remove({ namespace, name });
}
