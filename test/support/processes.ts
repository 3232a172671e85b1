/**
 * Detached child processes in their own process groups, with a serializable record so that another
 * process (e.g. `npm run cluster:down`) can stop exactly those groups later.
 *
 * Every process is started with `detached: true` (setsid: it leads a new session and process
 * group), stdout/stderr go to a log file, and the record keeps pid, pgid and the kernel start time
 * of the pid. Stopping signals the *group* only if the pid still belongs to the same process (same
 * start time), so a recycled pid is never killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { delay } from './wait.js';

export interface ProcessRecord {
  name: string;
  pid: number;
  /** Process group id; equal to pid because every process is started as a group leader. */
  pgid: number;
  /** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), to detect pid reuse. */
  startTime?: string | undefined;
  logFile: string;
  command: string[];
}

export interface ManagedProcess {
  readonly record: ProcessRecord;
  /** The exit code/signal once the process has exited (only known in the process that started it). */
  readonly exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Throws (with the log tail) if the process has exited; use as `abortIf` while waiting for readiness. */
  assertRunning(): void;
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const LOG_TAIL_LINES = 30;

/** The last `n` lines of a file ('' if it does not exist). */
export function tailFile(file: string, n = LOG_TAIL_LINES): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** An error for a component that failed to start, carrying the last ~30 lines of its log. */
export class ComponentStartError extends Error {
  override name = 'ComponentStartError';
  constructor(
    readonly component: string,
    reason: string,
    readonly logFile: string,
  ) {
    const tail = tailFile(logFile, LOG_TAIL_LINES);
    super(`${component} failed to start: ${reason}\n--- last ${LOG_TAIL_LINES} lines of ${logFile} ---\n${tail || '(log is empty)'}\n--- end of ${component} log ---`);
  }
}

interface ProcStat {
  state: string;
  pgrp: number;
  startTime: string;
}

function readStat(pid: number): ProcStat | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), rest[2] field 5 (pgrp), rest[19] field 22 (starttime).
  const state = rest[0];
  const pgrp = Number(rest[2]);
  const startTime = rest[19];
  if (state === undefined || startTime === undefined || !Number.isInteger(pgrp)) return undefined;
  return { state, pgrp, startTime };
}

/** True if `pid` exists and is not a zombie. */
export function isPidAlive(pid: number): boolean {
  const st = readStat(pid);
  if (st) return st.state !== 'Z' && st.state !== 'X';
  try {
    process.kill(pid, 0);
    return true; // no /proc (non-Linux): best effort
  } catch {
    return false;
  }
}

/** Live (non-zombie) members of process group `pgid`. */
export function liveGroupMembers(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch {
    return []; // ESRCH: the group is gone
  }
  if (!existsSync('/proc/self/stat')) return [pgid];
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const st = readStat(pid);
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') members.push(pid);
  }
  return members;
}

/** True if the record still describes the same live process (pid not recycled). */
export function isSameProcess(rec: ProcessRecord): boolean {
  const st = readStat(rec.pid);
  if (!st) return isPidAlive(rec.pid) && rec.startTime === undefined;
  if (st.state === 'Z' || st.state === 'X') return false;
  return rec.startTime === undefined || st.startTime === rec.startTime;
}

/**
 * Live members of the recorded process group. Linux never reuses a pid while a process group of
 * that id exists, so if the pid now belongs to a different process, the group we started is empty.
 */
export function recordedGroupMembers(rec: ProcessRecord): number[] {
  const st = readStat(rec.pid);
  if (st && rec.startTime !== undefined && st.startTime !== rec.startTime) return [];
  return liveGroupMembers(rec.pgid);
}

/** Processes started by this Node process and not yet seen to exit or stopped. */
const tracked = new Map<number, ProcessRecord>();

/** Records of the processes this Node process started that may still be running. */
export function trackedProcesses(): ProcessRecord[] {
  return [...tracked.values()];
}

/**
 * Installs a process 'exit' handler that SIGKILLs every process group this Node process started and
 * has not stopped yet — the backstop for an interrupted test run (vitest turns SIGINT/SIGTERM into
 * process.exit()). Returns the function that uninstalls it. Not for `cluster:up`, whose processes
 * must outlive it.
 */
export function killTrackedOnExit(): () => void {
  const handler = () => killGroupsSync(trackedProcesses());
  process.on('exit', handler);
  return () => process.removeListener('exit', handler);
}

/** Starts a detached process in its own process group, logging to `logFile`. */
export function startProcess(opts: StartOptions): ManagedProcess {
  if (!existsSync(opts.command)) {
    throw new Error(`${opts.name}: binary not found: ${opts.command}`);
  }
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.command, opts.args, {
      detached: true, // setsid(): own session and process group
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new ComponentStartError(opts.name, `spawn of ${opts.command} failed`, opts.logFile);
  }
  let exit: ManagedProcess['exit'];
  let spawnError: Error | undefined;
  child.on('error', (err) => {
    spawnError = err;
  });
  child.on('exit', (code, signal) => {
    exit = { code, signal };
    if (recordedGroupMembers(record).length === 0) tracked.delete(pid);
  });
  child.unref(); // the processes must be able to outlive a short-lived starter (cluster:up)
  const record: ProcessRecord = {
    name: opts.name,
    pid,
    pgid: pid,
    startTime: readStat(pid)?.startTime,
    logFile: opts.logFile,
    command: [opts.command, ...opts.args],
  };
  tracked.set(pid, record);
  return {
    record,
    get exit() {
      return exit;
    },
    assertRunning() {
      if (spawnError) throw new ComponentStartError(opts.name, `spawn error: ${spawnError.message}`, opts.logFile);
      if (exit) {
        const how = exit.signal ? `signal ${exit.signal}` : `exit code ${String(exit.code)}`;
        throw new ComponentStartError(opts.name, `process exited early (${how})`, opts.logFile);
      }
    },
  };
}

async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (liveGroupMembers(pgid).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await delay(100);
  }
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * Stops one recorded process group: SIGTERM, wait up to `graceMs`, then SIGKILL, and verifies the
 * group is gone. Does nothing if the pid now belongs to another process (recycled).
 */
export async function stopProcess(rec: ProcessRecord, graceMs = 10_000): Promise<void> {
  if (recordedGroupMembers(rec).length > 0) {
    signalGroup(rec.pgid, 'SIGTERM');
    if (!(await waitGroupGone(rec.pgid, graceMs))) {
      signalGroup(rec.pgid, 'SIGKILL');
      await waitGroupGone(rec.pgid, 5_000);
    }
  }
  if (recordedGroupMembers(rec).length === 0) {
    tracked.delete(rec.pid);
    return;
  }
  throw new Error(`${rec.name} (pgid ${rec.pgid}) is still alive after SIGKILL: ${liveGroupMembers(rec.pgid).join(',')}`);
}

/**
 * Stops recorded processes in reverse start order, in stages: everything except the storage/API
 * core first (in parallel), then kube-apiserver, then etcd. Throws if any recorded group survives.
 */
export async function stopProcesses(records: readonly ProcessRecord[], graceMs = 10_000): Promise<void> {
  const order = (r: ProcessRecord) => (r.name === 'etcd' ? 2 : r.name === 'kube-apiserver' ? 1 : 0);
  const errors: string[] = [];
  for (const stage of [0, 1, 2]) {
    const batch = records.filter((r) => order(r) === stage);
    const results = await Promise.allSettled(batch.map((r) => stopProcess(r, graceMs)));
    for (const res of results) if (res.status === 'rejected') errors.push(String(res.reason));
  }
  const left = survivors(records);
  if (left.length > 0) errors.push(`still alive after stop: ${left.map((r) => `${r.name}(pid ${r.pid})`).join(', ')}`);
  if (errors.length > 0) throw new Error(errors.join('\n'));
}

/** Recorded processes whose group still has live members. */
export function survivors(records: readonly ProcessRecord[]): ProcessRecord[] {
  return records.filter((r) => recordedGroupMembers(r).length > 0);
}

/** Synchronous last-resort kill (SIGKILL to each recorded group), for process 'exit' handlers. */
export function killGroupsSync(records: readonly ProcessRecord[]): void {
  for (const r of records) if (recordedGroupMembers(r).length > 0) signalGroup(r.pgid, 'SIGKILL');
}
