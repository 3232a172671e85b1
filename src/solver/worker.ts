import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SolveFailure, SolveInput, SolveResult } from './types.js';

export interface SolverWorkerOptions {
  /** Hard wall-clock deadline per solve; past it the worker is terminated and a Timeout result returned. */
  deadlineMs?: number;
  engineName?: string;
}

interface Pending {
  input: SolveInput;
  deadlineMs: number;
  resolve: (r: SolveResult) => void;
}

// Compiled code runs the .js sibling. Tests and tsx run straight from the TypeScript source, where the worker
// first registers tsx's loader (a dev dependency, absent from production images, which never take this path).
function spawnWorker(): Worker {
  const js = new URL('./worker-entry.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js);
  const ts = new URL('./worker-entry.ts', import.meta.url);
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const bootstrap = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); })`;
  return new Worker(bootstrap, { eval: true });
}

/**
 * Solves in a dedicated worker thread, one instance at a time, each under a deadline. The engine's own time
 * limit is set below the deadline so it usually returns its best incumbent; the deadline is the backstop
 * that kills a solve which ignores it. Never rejects: failures come back as typed `error` results.
 */
export class SolverWorker {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private active: (Pending & { id: number; timer: NodeJS.Timeout }) | undefined;
  private nextId = 1;
  private closed = false;
  private readonly deadlineMs: number;

  constructor(private readonly options: SolverWorkerOptions = {}) {
    this.deadlineMs = options.deadlineMs ?? 10_000;
  }

  solve(input: SolveInput, deadlineMs = this.deadlineMs): Promise<SolveResult> {
    return new Promise((resolve) => {
      if (this.closed) {
        resolve(this.failure(input, 'SolverError', 'solver worker is closed', 0));
        return;
      }
      this.queue.push({ input, deadlineMs, resolve });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve(this.failure(p.input, 'SolverError', 'solver worker closed', 0));
    if (this.active) this.finish(this.failure(this.active.input, 'SolverError', 'solver worker closed', 0));
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private pump(): void {
    if (this.active || this.closed) return;
    const next = this.queue.shift();
    if (!next) return;
    const id = this.nextId++;
    const started = performance.now();
    const timer = setTimeout(() => {
      // The WASM solve cannot be interrupted from outside: terminate the thread, start a fresh one next time.
      const w = this.worker;
      this.worker = undefined;
      void w?.terminate();
      this.finish(this.failure(next.input, 'Timeout', `solve exceeded its ${next.deadlineMs} ms deadline`, performance.now() - started));
    }, next.deadlineMs);
    this.active = { ...next, id, timer };
    // Leave the engine 20% of the deadline to return its incumbent before the backstop fires.
    const engineLimit = Math.min(next.input.timeLimitMs ?? Infinity, next.deadlineMs * 0.8);
    this.ensureWorker().postMessage({ id, input: { ...next.input, timeLimitMs: engineLimit } });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = spawnWorker();
    w.unref();
    w.on('message', (msg: { id: number; result: SolveResult }) => {
      if (this.active?.id === msg.id) this.finish(msg.result);
    });
    w.on('error', (err) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      if (this.active) this.finish(this.failure(this.active.input, 'SolverError', `solver worker failed: ${err.message}`, 0));
    });
    w.on('exit', () => {
      if (this.worker !== w) return;
      this.worker = undefined;
      if (this.active) this.finish(this.failure(this.active.input, 'SolverError', 'solver worker exited', 0));
    });
    this.worker = w;
    return w;
  }

  private finish(result: SolveResult): void {
    const a = this.active;
    if (!a) return;
    clearTimeout(a.timer);
    this.active = undefined;
    a.resolve(result);
    this.pump();
  }

  private failure(input: SolveInput, reason: SolveFailure['reason'], message: string, ms: number): SolveFailure {
    const mode = input?.mode ?? 'fractional';
    return {
      status: 'error', reason, message, baselines: [],
      stats: { engine: this.options.engineName ?? 'highs', mode, status: 'error', ms, variables: 0, constraints: 0 },
    };
  }
}
