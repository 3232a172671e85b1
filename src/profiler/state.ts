/**
 * The resumable checkpoint (`--state FILE`): everything a run has measured, written atomically after every
 * probe (write a temporary file in the same directory, fsync, rename over the old one), so a run killed at any
 * moment leaves either the previous or the new checkpoint, never a torn one. Resuming replays the recorded
 * probes through the pure search (search.ts), which then asks for exactly the probe that was interrupted.
 *
 * A checkpoint only continues a run with the same signature (model, GPU type, buckets, SLO, search and probe
 * parameters, API, seed): mixing measurements taken under different settings would be silently wrong. The URL
 * is NOT part of it — a restarted server usually has a new port.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ProbeSizing } from './plan.js';
import type { ProbeRecord, SearchConfig } from './search.js';

export const STATE_KIND = 'melange-profile-state';
export const STATE_VERSION = 1;

export interface StateSignature {
  model: string;
  gpuType: string;
  buckets: { inputEdges: number[]; outputEdges: number[] };
  sloTpotMillis: number;
  api: 'chat' | 'completions';
  seed: number;
  search: SearchConfig;
  sizing: ProbeSizing;
}

export interface BucketState {
  input: number;
  output: number;
  probes: ProbeRecord[];
}

export interface ProfilerState {
  kind: typeof STATE_KIND;
  version: typeof STATE_VERSION;
  signature: StateSignature;
  createdAt: string;
  updatedAt: string;
  /** Invocations that worked on this state (1 = never resumed). */
  runs: number;
  /** Wall seconds spent probing, over all runs. */
  probeWallSeconds: number;
  /** The endpoint of the last run (informational). */
  endpoint?: { url: string; emulator: string | null; timeScale: number; timing: 'server' | 'client' };
  /** Keyed `${input}x${output}`. */
  buckets: Record<string, BucketState>;
}

export class StateError extends Error {}

export function newState(signature: StateSignature, now: Date): ProfilerState {
  const t = now.toISOString();
  return { kind: STATE_KIND, version: STATE_VERSION, signature, createdAt: t, updatedAt: t, runs: 0, probeWallSeconds: 0, buckets: {} };
}

/** Stable JSON (sorted keys) for comparing signatures. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Fields where two signatures differ ([] = same). */
export function signatureDiff(a: StateSignature, b: StateSignature): string[] {
  const out: string[] = [];
  for (const k of Object.keys({ ...a, ...b }) as Array<keyof StateSignature>) {
    if (canonical(a[k]) !== canonical(b[k])) out.push(`${k}: ${canonical(a[k])} in the state file, ${canonical(b[k])} now`);
  }
  return out;
}

/** Reads a checkpoint; undefined when the file does not exist. Throws StateError when it is not one. */
export async function readState(path: string): Promise<ProfilerState | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new StateError(`${path}: not JSON (not a profiler state file?)`);
  }
  const s = obj as Partial<ProfilerState>;
  if (s?.kind !== STATE_KIND || s.version !== STATE_VERSION || typeof s.signature !== 'object' || typeof s.buckets !== 'object' || s.buckets === null) {
    throw new StateError(`${path}: not a ${STATE_KIND} v${STATE_VERSION} file`);
  }
  return s as ProfilerState;
}

let tmpCounter = 0;

/** Atomic replace: temp file in the same directory, fsync, rename. */
export async function writeStateAtomic(path: string, state: ProfilerState): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tmpCounter}.tmp`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(`${JSON.stringify(state, null, 1)}\n`, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
