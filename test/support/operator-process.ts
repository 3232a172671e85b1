/**
 * The operator under test, run as its own process through the CLI (`melangectl controller`), exactly as a
 * user runs it. By default from the TypeScript sources through tsx (no build step, always the code under
 * test); MELANGE_OPERATOR_ENTRY=dist runs the compiled `bin/melangectl.js` instead (as after `npm ci`), and
 * MELANGE_OPERATOR_ENTRY=/abs/path/cli/main.js any other compiled build (e.g. for measurements).
 * Every endpoint binds 127.0.0.1 on a free port. The process leads its own process group (see processes.ts),
 * so stop/kill reach the solver worker thread too, and nothing outlives the test.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { httpGet } from './http.js';
import { REPO_ROOT, repoPath } from './paths.js';
import { freePort } from './ports.js';
import { startProcess, stopProcess, type ManagedProcess, type ProcessRecord } from './processes.js';
import { delay, waitFor } from './wait.js';

export interface OperatorOptions {
  kubeconfig: string;
  /** Namespace of the leader-election Lease. */
  leaseNamespace: string;
  /** Restrict reconciling to one namespace (keeps tests from touching each other's objects). */
  watchNamespace?: string;
  /** Directory for the log file (e.g. the run dir's logs). */
  logDir: string;
  /** Distinguishes several operators in one test (log file name, identity). */
  name?: string;
  leaderElect?: boolean;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wait until /readyz answers 200 (caches synced). Default true. */
  waitReady?: boolean;
}

export interface LogLine {
  level?: string;
  msg?: string;
  time?: string;
  [k: string]: unknown;
}

export interface OperatorProcess {
  name: string;
  identity: string;
  record: ProcessRecord;
  logFile: string;
  healthUrl: string;
  metricsUrl: string;
  /** Exit code/signal once it exited. */
  readonly exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  alive(): boolean;
  /** Parsed JSON log lines so far (non-JSON lines are skipped). */
  logs(): LogLine[];
  waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** The /metrics text. */
  metrics(): Promise<string>;
  /** SIGTERM and wait for the exit (the graceful path); resolves with the exit code. */
  terminate(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL to the whole group: a crash, no cleanup. */
  kill(): Promise<void>;
}

/**
 * The node arguments that run `melangectl controller`. A tiny entry module (written next to the logs) imports
 * the CLI: not `--eval`, because worker threads inherit execArgv and `--input-type`/`--eval` would break the
 * solver's file-based worker in a compiled build.
 */
function entryArgs(entryDir: string, name: string, args: string[]): string[] {
  const entry = process.env.MELANGE_OPERATOR_ENTRY;
  if (entry === 'dist') return [repoPath('bin', 'melangectl.js'), 'controller', ...args];
  const mainModule = entry?.endsWith('.js') ? entry : repoPath('src', 'cli', 'main.ts');
  const file = join(entryDir, `${name}-entry.mjs`);
  writeFileSync(
    file,
    `import { main } from ${JSON.stringify(pathToFileURL(mainModule).href)};\n` +
      'main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });\n',
  );
  return [...(mainModule.endsWith('.ts') ? ['--import', 'tsx'] : []), file, 'controller', ...args];
}

export async function startOperator(o: OperatorOptions): Promise<OperatorProcess> {
  const name = o.name ?? 'operator';
  const identity = `${name}-${process.pid}-${Date.now().toString(36)}`;
  const [healthPort, metricsPort] = [await freePort(), await freePort()];
  const args = [
    `--kubeconfig=${o.kubeconfig}`,
    `--namespace=${o.leaseNamespace}`,
    `--leader-elect=${o.leaderElect === false ? 'false' : 'true'}`,
    `--identity=${identity}`,
    `--health-addr=127.0.0.1:${healthPort}`,
    `--metrics-addr=127.0.0.1:${metricsPort}`,
    '--log-level=debug',
    ...(o.watchNamespace ? [`--watch-namespace=${o.watchNamespace}`] : []),
    ...(o.extraArgs ?? []),
  ];
  const logFile = join(o.logDir, `${name}-${Date.now().toString(36)}.log`);
  const proc: ManagedProcess = startProcess({
    name,
    command: process.execPath,
    args: entryArgs(o.logDir, name, args),
    logFile,
    cwd: REPO_ROOT,
    env: { ...process.env, ...o.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
  });
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const logs = (): LogLine[] => {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').flatMap((line) => {
      if (!line.startsWith('{')) return [];
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
  };
  const alive = () => proc.exit === undefined;
  const op: OperatorProcess = {
    name,
    identity,
    record: proc.record,
    logFile,
    healthUrl,
    metricsUrl,
    get exit() {
      return proc.exit;
    },
    alive,
    logs,
    waitForLog: (pred, what, timeoutMs = 60_000) =>
      waitFor(() => logs().find(pred), { what: `${name} log: ${what}`, timeoutMs, intervalMs: 200, abortIf: () => proc.assertRunning() }),
    metrics: async () => (await httpGet(`${metricsUrl}/metrics`)).body,
    terminate: async (timeoutMs = 30_000) => {
      if (alive()) process.kill(-proc.record.pgid, 'SIGTERM');
      await waitFor(() => !alive(), { what: `${name} to exit after SIGTERM`, timeoutMs, intervalMs: 100 });
      await stopProcess(proc.record, 1_000); // reap anything left in the group (nothing, normally)
      return proc.exit?.code ?? null;
    },
    kill: async () => {
      if (alive()) process.kill(-proc.record.pgid, 'SIGKILL');
      await waitFor(() => !alive(), { what: `${name} to die after SIGKILL`, timeoutMs: 10_000, intervalMs: 50 });
      await stopProcess(proc.record, 1_000);
    },
  };
  if (o.waitReady ?? true) {
    try {
      await waitFor(async () => (await httpGet(`${healthUrl}/readyz`, {}, 2_000)).status === 200, {
        what: `${name} /readyz`,
        timeoutMs: 60_000,
        intervalMs: 250,
        abortIf: () => proc.assertRunning(),
      });
    } catch (err) {
      await stopProcess(proc.record, 2_000).catch(() => {});
      throw err;
    }
  }
  return op;
}

/** Stops every given operator that still runs (SIGTERM, then SIGKILL); for afterAll/afterEach. */
export async function stopOperators(ops: Iterable<OperatorProcess | undefined>): Promise<void> {
  await Promise.all(
    [...ops].map(async (op) => {
      if (!op) return;
      await stopProcess(op.record, 10_000).catch(() => {});
    }),
  );
  await delay(0);
}
