/**
 * vitest globalSetup of the `integration` project: one real control plane + Prometheus per run.
 *
 *   MELANGE_TEST_PROFILE=api|full   (default full) which control plane to start
 *   MELANGE_TEST_CLUSTER=<file>     reuse the cluster described by a `npm run cluster:up` state file
 *                                   (e.g. .run/cluster.json) instead of starting one; it is left running
 *   MELANGE_TEST_BIN_DIR=<dir>      binaries (hack/test.sh exports it; else `hack/test-bins.sh --print`)
 *   MELANGE_TEST_KEEP_RUN=1         keep the run dir (logs, PKI, data) after teardown
 *
 * Tests get the cluster through `testEnv()` (test/support/env.ts), i.e. vitest `inject`, and the
 * same values as env vars (KUBECONFIG, PROMETHEUS_URL, …). Teardown stops exactly the processes
 * started here and fails the run if any of them is still alive.
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { locateBinDir } from './bins.js';
import { assertClusterUsable, readClusterState, startTestCluster, stopTestCluster, type TestClusterState } from './cluster.js';
import { testEnvVars, type TestEnv } from './env.js';
import { killTrackedOnExit, survivors } from './processes.js';

const log = (msg: string) => process.stderr.write(`[test-cluster] ${msg}\n`);

function toTestEnv(s: TestClusterState): TestEnv {
  return {
    profile: s.profile,
    kubeconfig: s.kubeconfig,
    apiUrl: s.apiUrl,
    prometheusUrl: s.prometheusUrl,
    fileSdDir: s.fileSdDir,
    binDir: s.binDir,
    runDir: s.runDir,
  };
}

function publish(project: TestProject, state: TestClusterState): void {
  const env = toTestEnv(state);
  project.provide('melangeTestEnv', env);
  Object.assign(process.env, testEnvVars(env));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reuse = process.env.MELANGE_TEST_CLUSTER;
  if (reuse) {
    const state = await readClusterState(reuse);
    await assertClusterUsable(state);
    log(`reusing ${state.profile} cluster from ${reuse} (${state.apiUrl}, prometheus ${state.prometheusUrl}); it stays running`);
    publish(project, state);
    return async () => {};
  }

  const profileEnv = process.env.MELANGE_TEST_PROFILE ?? 'full';
  if (profileEnv !== 'api' && profileEnv !== 'full') throw new Error(`MELANGE_TEST_PROFILE must be api or full, got ${profileEnv}`);
  const binDir = locateBinDir();
  const t0 = Date.now();
  log(`starting ${profileEnv} control plane + prometheus (bins: ${binDir})`);
  // Backstop for an interrupted run (also during startup): SIGKILL whatever we started on exit.
  const keep = process.env.MELANGE_TEST_KEEP_RUN === '1';
  const runDir = await mkdtemp(join(tmpdir(), 'melange-test-'));
  const uninstallKill = killTrackedOnExit();
  const removeRunDir = () => {
    if (!keep) rmSync(runDir, { recursive: true, force: true });
  };
  process.on('exit', removeRunDir);
  const uninstallBackstop = () => {
    uninstallKill();
    process.removeListener('exit', removeRunDir);
  };
  let state: TestClusterState;
  try {
    state = await startTestCluster({ profile: profileEnv, binDir, runDir, log });
  } catch (err) {
    // startTestCluster already stopped what it had started; keep the run dir: the error points at its logs.
    uninstallBackstop();
    throw err;
  }
  log(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${state.apiUrl}, prometheus ${state.prometheusUrl}, run dir ${state.runDir}`);

  publish(project, state);

  return async () => {
    // vitest gives the whole close (this teardown included) teardownTimeout (10 s) before it calls
    // process.exit(); the 'exit' handler stays registered until we are done, as a SIGKILL backstop.
    try {
      await stopTestCluster(state, keep, 4_000);
    } catch (err) {
      process.exitCode = 1;
      throw err;
    }
    // Hygiene: no recorded process may survive the run.
    const left = survivors(state.processes);
    if (left.length > 0) {
      process.exitCode = 1;
      throw new Error(`test cluster processes left running: ${left.map((p) => `${p.name}(pid ${p.pid})`).join(', ')}`);
    }
    uninstallBackstop();
    log(`stopped ${state.processes.length} processes (${state.processes.map((p) => `${p.name}:${p.pid}`).join(' ')}); none left${keep ? `; kept ${state.runDir}` : ''}`);
  };
}
