/**
 * Test-support API for integration tests (one import point). The cluster itself is started once
 * per run by global-setup.ts; tests read it with `testEnv()`.
 */
export { testEnv, type TestEnv } from './env.js';
export { loadKubeConfig, makeClients, type KubeClients, ssa, mergePatch, fromManifest, httpStatusOf, kubeStatusOf, expectApiError, isNotFound, isConflict, ignoreNotFound } from './kube.js';
export { useTestNamespace, createTestNamespace, deleteTestNamespace, uniqueName, type TestNamespace } from './namespace.js';
export { createGpuNode, deleteNode, waitForNodeReady, gpuNodeManifest, GPU_PRODUCT_LABEL, GPU_RESOURCE, type GpuNodeOptions } from './kwok-nodes.js';
export { applyCrd, applyCrdsFromDir, waitForCrdEstablished, readCrdManifests, readYamlDocuments, TEST_FIELD_MANAGER } from './crds.js';
export { writeScrapeTargets, removeScrapeTargets, queryInstant, waitForQuery, activeTargets, reloadPrometheus, type TargetGroup, type VectorSample } from './prometheus.js';
export { startExporter, startGaugeExporter, type TestExporter } from './test-exporter.js';
export { startProcess, stopProcess, stopProcesses, tailFile, type ProcessRecord, type ManagedProcess } from './processes.js';
export { freePort } from './ports.js';
export { waitFor, delay } from './wait.js';
export { signClientCert, writeKubeconfig, pkiPaths, type Pki } from './pki.js';
export { KUBE_VERSION, type Profile } from './control-plane.js';
export { REPO_ROOT, repoPath } from './paths.js';
