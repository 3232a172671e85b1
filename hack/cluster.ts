/**
 * A long-lived test cluster for iterating on integration tests:
 *
 *   npm run cluster:up [-- --profile api|full]   start control plane + Prometheus, write .run/cluster.json
 *   npm run cluster:down                         stop exactly the recorded processes, remove the state
 *   tsx hack/cluster.ts status                   is the recorded cluster usable?
 *
 * Then: MELANGE_TEST_CLUSTER=.run/cluster.json npx vitest run --project integration
 * (the global setup reuses that cluster and leaves it running).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertClusterUsable, readClusterState, startTestCluster, stopTestCluster, writeClusterState } from '../test/support/cluster.js';
import type { Profile } from '../test/support/control-plane.js';
import { DEFAULT_STATE_FILE, repoPath } from '../test/support/paths.js';

const log = (msg: string) => process.stderr.write(`[cluster] ${msg}\n`);
const stateFile = process.env.MELANGE_TEST_CLUSTER_STATE ?? DEFAULT_STATE_FILE;

function binDir(): string {
  if (process.env.MELANGE_TEST_BIN_DIR) return process.env.MELANGE_TEST_BIN_DIR;
  // Builds on a cold machine (25-45 min, progress on stderr); prints the cached dir otherwise.
  return execFileSync('bash', [repoPath('hack', 'test-bins.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

function parseProfile(args: string[]): Profile {
  const i = args.indexOf('--profile');
  const v = i >= 0 ? args[i + 1] : (args.find((a) => a.startsWith('--profile='))?.slice('--profile='.length) ?? process.env.MELANGE_TEST_PROFILE ?? 'full');
  if (v !== 'api' && v !== 'full') throw new Error(`--profile must be api or full, got ${String(v)}`);
  return v;
}

function printEnv(s: Awaited<ReturnType<typeof readClusterState>>): void {
  process.stdout.write(
    [
      `export MELANGE_TEST_CLUSTER=${stateFile}`,
      `export KUBECONFIG=${s.kubeconfig}`,
      `export PROMETHEUS_URL=${s.prometheusUrl}`,
      `export MELANGE_TEST_FILE_SD_DIR=${s.fileSdDir}`,
      `export MELANGE_TEST_BIN_DIR=${s.binDir}`,
      '',
    ].join('\n'),
  );
}

async function up(args: string[]): Promise<void> {
  if (existsSync(stateFile)) {
    const old = await readClusterState(stateFile);
    try {
      await assertClusterUsable(old);
      log(`already running (${old.profile}): ${old.apiUrl}; state ${stateFile}`);
      printEnv(old);
      return;
    } catch (err) {
      log(`stale state (${(err as Error).message}); stopping its leftovers`);
      await stopTestCluster(old);
      await rm(stateFile, { force: true });
    }
  }
  const profile = parseProfile(args);
  const bins = binDir();
  const runDir = await mkdtemp(join(tmpdir(), 'melange-cluster-'));
  const t0 = Date.now();
  const state = await startTestCluster({ profile, binDir: bins, runDir, log });
  await writeClusterState(stateFile, state);
  log(`${profile} cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; logs in ${join(runDir, 'logs')}; state ${stateFile}`);
  log(`pids: ${state.processes.map((p) => `${p.name}=${p.pid}`).join(' ')}`);
  printEnv(state);
}

async function down(): Promise<void> {
  if (!existsSync(stateFile)) {
    log(`no cluster state at ${stateFile}; nothing to stop`);
    return;
  }
  const state = await readClusterState(stateFile);
  await stopTestCluster(state);
  await rm(stateFile, { force: true });
  log(`stopped ${state.processes.map((p) => `${p.name}=${p.pid}`).join(' ')}; none left`);
}

async function status(): Promise<void> {
  if (!existsSync(stateFile)) {
    log('no cluster');
    process.exitCode = 1;
    return;
  }
  const state = await readClusterState(stateFile);
  await assertClusterUsable(state);
  log(`running (${state.profile}) since ${state.startedAt}: ${state.apiUrl}, prometheus ${state.prometheusUrl}`);
  printEnv(state);
}

const [cmd, ...rest] = process.argv.slice(2);
const actions: Record<string, () => Promise<void>> = { up: () => up(rest), down, status };
const action = cmd ? actions[cmd] : undefined;
if (!action) {
  log('usage: tsx hack/cluster.ts up [--profile api|full] | down | status');
  process.exit(2);
}
action().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
