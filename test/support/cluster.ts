/**
 * The whole test environment — control plane (api|full profile) plus Prometheus — as one unit with
 * a JSON-serializable state, shared by the vitest global setup and `npm run cluster:up|down`.
 */
import { mkdtemp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { startControlPlane, type Profile } from './control-plane.js';
import { httpGet } from './http.js';
import { pkiPaths } from './pki.js';
import { startPrometheus } from './prometheus.js';
import { recordedGroupMembers, stopProcesses, survivors, type ProcessRecord } from './processes.js';

export interface TestClusterState {
  version: 1;
  profile: Profile;
  runDir: string;
  binDir: string;
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  apiUrl: string;
  etcdUrl: string;
  controllerManagerUrl?: string | undefined;
  schedulerUrl?: string | undefined;
  /** http://127.0.0.1:<port> */
  prometheusUrl: string;
  /** Directory whose *.json files are Prometheus file_sd target lists (refreshed every 1 s). */
  fileSdDir: string;
  prometheusConfig: string;
  processes: ProcessRecord[];
  startedAt: string;
}

const ProcessRecordSchema = z.object({
  name: z.string(),
  pid: z.number().int(),
  pgid: z.number().int(),
  startTime: z.string().optional(),
  logFile: z.string(),
  command: z.array(z.string()),
});
const StateSchema = z.object({
  version: z.literal(1),
  profile: z.enum(['api', 'full']),
  runDir: z.string(),
  binDir: z.string(),
  kubeconfig: z.string(),
  apiUrl: z.string(),
  etcdUrl: z.string(),
  controllerManagerUrl: z.string().optional(),
  schedulerUrl: z.string().optional(),
  prometheusUrl: z.string(),
  fileSdDir: z.string(),
  prometheusConfig: z.string(),
  processes: z.array(ProcessRecordSchema),
  startedAt: z.string(),
});

export interface StartTestClusterOptions {
  profile: Profile;
  binDir: string;
  /** Defaults to a fresh mkdtemp under the OS temp dir. */
  runDir?: string;
  log?: (msg: string) => void;
}

/** Starts control plane + Prometheus; on failure, stops whatever was started and rethrows. */
export async function startTestCluster(opts: StartTestClusterOptions): Promise<TestClusterState> {
  const runDir = opts.runDir ?? (await mkdtemp(join(tmpdir(), 'melange-test-')));
  await mkdir(runDir, { recursive: true });
  const cp = await startControlPlane({ binDir: opts.binDir, profile: opts.profile, runDir, log: opts.log });
  let prom;
  try {
    prom = await startPrometheus({ runDir });
  } catch (err) {
    await stopProcesses(cp.processes).catch(() => {});
    throw err;
  }
  opts.log?.(`prometheus pid ${prom.process.pid} on ${prom.url}`);
  return {
    version: 1,
    profile: cp.profile,
    runDir,
    binDir: cp.binDir,
    kubeconfig: cp.kubeconfig,
    apiUrl: cp.apiUrl,
    etcdUrl: cp.etcdUrl,
    controllerManagerUrl: cp.controllerManagerUrl,
    schedulerUrl: cp.schedulerUrl,
    prometheusUrl: prom.url,
    fileSdDir: prom.fileSdDir,
    prometheusConfig: prom.configFile,
    processes: [...cp.processes, prom.process],
    startedAt: new Date().toISOString(),
  };
}

/**
 * Stops exactly the recorded process groups (verifying none is left) and removes the run dir
 * unless `keepRunDir`. Throws if a recorded process survives.
 */
export async function stopTestCluster(state: Pick<TestClusterState, 'processes' | 'runDir'>, keepRunDir = false, graceMs = 10_000): Promise<void> {
  await stopProcesses(state.processes, graceMs);
  const left = survivors(state.processes);
  if (left.length > 0) throw new Error(`processes still alive after stop: ${left.map((p) => `${p.name}(${p.pid})`).join(', ')}`);
  if (!keepRunDir && state.runDir.includes('melange-')) await rm(state.runDir, { recursive: true, force: true });
}

export async function writeClusterState(file: string, state: TestClusterState): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export async function readClusterState(file: string): Promise<TestClusterState> {
  const raw: unknown = JSON.parse(await readFile(file, 'utf8'));
  return StateSchema.parse(raw);
}

/** Throws unless every recorded process is alive and the API server and Prometheus answer ready. */
export async function assertClusterUsable(state: TestClusterState): Promise<void> {
  const dead = state.processes.filter((p) => recordedGroupMembers(p).length === 0);
  if (dead.length > 0) throw new Error(`cluster processes not running: ${dead.map((p) => p.name).join(', ')}`);
  const pki = pkiPaths(join(state.runDir, 'pki'));
  const r = await httpGet(`${state.apiUrl}/readyz`, { ca: pki.caCrt, cert: pki.adminCrt, key: pki.adminKey });
  if (r.status !== 200) throw new Error(`kube-apiserver /readyz -> ${r.status}: ${r.body}`);
  const p = await httpGet(`${state.prometheusUrl}/-/ready`);
  if (p.status !== 200) throw new Error(`prometheus /-/ready -> ${p.status}`);
}
