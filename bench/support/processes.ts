/**
 * Real `melangectl emulate` and `melangectl router` processes for the benchmarks, on 127.0.0.1 only.
 *
 * Each runs in its own process group
 * (test/support/processes.ts: detached, group-leader, pid + start time recorded), with `--port 0`; the URL is
 * read from the process's own "listening" log line, so there is no free-port race. `stopAll()` stops exactly
 * the groups started here (SIGTERM, then SIGKILL after the grace period); `killTrackedOnExit()` is the backstop
 * if the benchmark is interrupted.
 *
 * What runs (BENCH_BUILD): `dist` (default) compiles bench/support/melangectl.ts and bare-relay.ts with the sources
 * they import by tsc (bench/tsconfig.processes.json, ~10 s, once per run, into node_modules/.cache so that the
 * packages resolve) and runs the JavaScript under plain node, as the image does; `tsx` runs the TypeScript
 * sources under tsx (its transform adds a naming helper call per closure; the router's CPU per request measured
 * the same either way, but what is measured should be what ships).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { routerNodeFlags } from '../../src/controller/router.js';
import { routerDefaults } from '../../src/controller/router-defaults.js';
import { REPO_ROOT, repoPath } from '../../test/support/paths.js';
import { killTrackedOnExit, liveGroupMembers, startProcess, stopProcess, type ManagedProcess } from '../../test/support/processes.js';
import { waitFor } from '../../test/support/wait.js';

export interface BenchProcess {
  name: string;
  proc: ManagedProcess;
  url: string;
  pid: number;
}

const started: BenchProcess[] = [];
let uninstall: (() => void) | undefined;

type Build = 'dist' | 'tsx';
const BUILD: Build = (() => {
  const v = process.env['BENCH_BUILD'] ?? 'dist';
  if (v !== 'dist' && v !== 'tsx') throw new Error(`BENCH_BUILD: expected "dist" or "tsx", got "${v}"`);
  return v;
})();
let compiledDir: string | undefined;

function removeCompiled(): void {
  if (compiledDir !== undefined) rmSync(compiledDir, { recursive: true, force: true });
  compiledDir = undefined;
}

/** How to start a script of bench/support (`name` without extension): node arguments before the script's own. */
function scriptArgs(name: string): string[] {
  if (BUILD === 'tsx') return ['--import', 'tsx', repoPath('bench', 'support', `${name}.ts`)];
  if (compiledDir === undefined) {
    const cache = repoPath('node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    const out = mkdtempSync(join(cache, 'melange-bench-'));
    compiledDir = out; // before compiling: cleanup() removes it even if tsc fails or a signal comes meanwhile
    process.stdout.write('compiling the emulator, router and bare relay with tsc (BENCH_BUILD=dist) ...\n');
    execFileSync(process.execPath, [repoPath('node_modules', 'typescript', 'bin', 'tsc'), '-p', repoPath('bench', 'tsconfig.processes.json'), '--outDir', out], { cwd: REPO_ROOT, stdio: 'inherit' });
  }
  return [join(compiledDir, 'bench', 'support', `${name}.js`)];
}

/** Node arguments that load a script of bench/support before the main one (`node --import`). */
function preloadArgs(name: string): string[] {
  const args = scriptArgs(name); // [...loader flags (tsx), the script]
  return [...args.slice(0, -1), '--import', args.at(-1) as string];
}

/** A scratch directory for logs and config files (removed by `cleanup()` unless BENCH_KEEP=1). */
export function benchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `melange-bench-${prefix}-`));
}

function startCli(name: string, args: string[], logDir: string, nodeArgs: string[] = []): ManagedProcess {
  uninstall ??= killTrackedOnExit();
  return startProcess({
    name,
    command: process.execPath,
    args: [...nodeArgs, ...scriptArgs('melangectl'), ...args],
    logFile: join(logDir, `${name}.log`),
    cwd: REPO_ROOT,
    env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
  });
}

/** Waits for the JSON log line whose `msg` matches and that carries a loopback `url`; returns the URL. */
async function urlFromLog(proc: ManagedProcess, msg: RegExp, what: string): Promise<string> {
  return waitFor(
    () => {
      proc.assertRunning();
      let text = '';
      try {
        text = readFileSync(proc.record.logFile, 'utf8');
      } catch {
        return undefined;
      }
      for (const line of text.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const j = JSON.parse(line) as { msg?: string; url?: string };
          if (typeof j.msg === 'string' && msg.test(j.msg) && typeof j.url === 'string' && /^http:\/\/127\.0\.0\.1:\d+$/.test(j.url)) return j.url;
        } catch {
          /* partial line */
        }
      }
      return undefined;
    },
    { what, timeoutMs: 60_000, intervalMs: 100 },
  );
}

export interface EmulatorProcessOptions {
  name: string;
  gpu: string;
  /** Emulated seconds per real second (`--speed`), default 1. */
  speed?: number;
  logDir: string;
  extraArgs?: string[];
}

/** One `melangectl emulate` process (one replica of one GPU type) on 127.0.0.1, a free port. */
export async function startEmulatorProcess(o: EmulatorProcessOptions): Promise<BenchProcess> {
  const args = ['emulate', '--gpu', o.gpu, '--host', '127.0.0.1', '--port', '0', '--speed', String(o.speed ?? 1), '--drain-timeout', '1', ...(o.extraArgs ?? [])];
  const proc = startCli(o.name, args, o.logDir);
  const p: BenchProcess = { name: o.name, proc, url: '', pid: proc.record.pid };
  started.push(p);
  p.url = await urlFromLog(proc, /^listening on /, `emulator ${o.name}`);
  return p;
}

/**
 * Node flags of the router and the bare relay, for finding what a relay spends its time on:
 * BENCH_ROUTER_CPU_PROF=DIR writes a V8 CPU profile to DIR when it stops (chrome://inspect);
 * BENCH_HEAP_SURVIVORS=DIR preloads survivor-sampler.ts (what the young-generation collections copy, by
 * allocating function, written to DIR); BENCH_RELAY_NODE_ARGS adds flags, space-separated (e.g. `--trace-gc-nvp`:
 * every GC with its phases, in the process's log).
 */
export function relayNodeArgs(): string[] {
  const dir = process.env['BENCH_ROUTER_CPU_PROF'];
  // The node flags router pods run with (the operator's router defaults), for the bare relay too: the same
  // runtime for both; a flag repeated in BENCH_RELAY_NODE_ARGS, later on the command line, wins.
  const shipped = routerNodeFlags(routerDefaults());
  const extra = (process.env['BENCH_RELAY_NODE_ARGS'] ?? '').split(' ').filter((x) => x !== '');
  const survivors = process.env['BENCH_HEAP_SURVIVORS'] ? preloadArgs('survivor-sampler') : [];
  return [...shipped, ...extra, ...survivors, ...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [])];
}

export interface RouterProcessOptions {
  name: string;
  configFile: string;
  logDir: string;
  /** Seed of routing.strategy=random. */
  seed?: number;
  /** `--workers N` (> 1 also opens a metrics port, which the primary needs). */
  workers?: number;
}

/** One `melangectl router` process on 127.0.0.1, a free port; resolves once /readyz says ready. */
export async function startRouterProcess(o: RouterProcessOptions): Promise<BenchProcess> {
  const args = ['router', '--config', o.configFile, '--host', '127.0.0.1', '--port', '0', '--log-level', 'info', '--shutdown-grace-ms', '1000'];
  if (o.seed !== undefined) args.push('--seed', String(o.seed));
  if (o.workers !== undefined && o.workers > 1) args.push('--workers', String(o.workers), '--metrics-port', '0');
  const proc = startCli(o.name, args, o.logDir, relayNodeArgs());
  const p: BenchProcess = { name: o.name, proc, url: '', pid: proc.record.pid };
  started.push(p);
  p.url = await urlFromLog(proc, /^router listening$/, `router ${o.name}`);
  await waitFor(
    async () => {
      proc.assertRunning();
      const r = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await r.arrayBuffer();
      return r.status === 200;
    },
    { what: `router ${o.name} ready`, timeoutMs: 30_000, intervalMs: 100 },
  );
  return p;
}

/** Any TypeScript file of the repository as a process (tsx), in its own process group; stopped by stopAll(). */
export function startScriptProcess(name: string, file: string, args: string[], logDir: string): BenchProcess {
  return startNodeProcess(name, ['--import', 'tsx', file, ...args], logDir);
}

function startNodeProcess(name: string, argv: string[], logDir: string): BenchProcess {
  uninstall ??= killTrackedOnExit();
  const proc = startProcess({
    name,
    command: process.execPath,
    args: argv,
    logFile: join(logDir, `${name}.log`),
    cwd: REPO_ROOT,
    env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
  });
  const p: BenchProcess = { name, proc, url: '', pid: proc.record.pid };
  started.push(p);
  return p;
}

/**
 * The router-overhead benchmark's floor (bench/support/bare-relay.ts: a minimal Node relay, none of the router's
 * work) as a process on 127.0.0.1, a free port; resolves with its URL once it listens.
 */
export async function startBareRelayProcess(o: { name: string; probeUrl: string; backgroundUrls: string[]; logDir: string }): Promise<BenchProcess> {
  const p = startNodeProcess(o.name, [...relayNodeArgs(), ...scriptArgs('bare-relay'), o.probeUrl, ...o.backgroundUrls], o.logDir);
  p.url = await urlFromLog(p.proc, /^listening on /, `bare relay ${o.name}`);
  return p;
}

/** Stops one process started here (its whole process group). */
export async function stopBenchProcess(p: BenchProcess): Promise<void> {
  const i = started.indexOf(p);
  if (i >= 0) started.splice(i, 1);
  await stopProcess(p.proc.record, 5_000);
}

/** Stops every process group started here, in reverse order; returns the errors (empty when all are gone). */
export async function stopAll(): Promise<string[]> {
  const errors: string[] = [];
  for (const p of [...started].reverse()) {
    try {
      await stopBenchProcess(p);
    } catch (err) {
      errors.push(`${p.name}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/** Stops everything and removes `dir` (kept with BENCH_KEEP=1, e.g. to read the logs). */
export async function cleanup(dir: string | undefined): Promise<string[]> {
  const errors = await stopAll();
  uninstall?.();
  uninstall = undefined;
  removeCompiled();
  if (dir && process.env['BENCH_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true });
  return errors;
}

/**
 * On SIGINT/SIGTERM: stop every process group started here, then exit (130). Without this, a signal would end
 * the benchmark without running its cleanup and leave the emulators and routers running.
 */
export function stopAllOnSignal(): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${sig}: stopping the benchmark's processes\n`);
    void stopAll().finally(() => {
      removeCompiled();
      process.exit(130);
    });
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

/** The CPUs this process may run on (its cpuset, e.g. in a container), from /proc/self/status. */
export function allowedCpus(): number[] {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('Cpus_allowed_list:'));
  const cpus: number[] = [];
  for (const part of (line?.split(':')[1] ?? '').trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a)) continue;
    for (let c = a; c <= (Number.isInteger(b) ? b! : a); c++) cpus.push(c);
  }
  return cpus;
}

/**
 * Pins a process group (every process and thread in it: a --workers router's workers too) to the CPUs in
 * `cpus` (taskset syntax, e.g. "1" or "0,1"). For benchmarks that give a process a core of its own, as a pod
 * with its own CPU request would have; `process.pid` pins the benchmark itself.
 */
export function pinToCpus(pgidOrPid: number, cpus: string): void {
  const members = pgidOrPid === process.pid ? [process.pid] : liveGroupMembers(pgidOrPid);
  if (members.length === 0) throw new Error(`pinToCpus: no live process in group ${pgidOrPid}`);
  for (const pid of members) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/**
 * Cumulative CPU seconds of a process started here and everything in its process group (a --workers router's
 * workers inherit the primary's group); undefined if the group is gone.
 */
export function cpuSecondsOfGroup(pgid: number): number | undefined {
  const members = liveGroupMembers(pgid);
  if (members.length === 0) return undefined;
  return members.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
}

/** Cumulative CPU seconds (user + system) of a live process, from /proc; undefined if unreadable. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}
