/** Bounded polling. Readiness is always a real check repeated until it holds, never a fixed sleep. */

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

export interface WaitOptions {
  /** What is being waited for, used in the timeout message. */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** Called before each attempt; throw from it to abort early (e.g. the process under test exited). */
  abortIf?: () => void;
}

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `probe` until it returns a value other than `undefined`/`false`, and returns that value.
 * Errors thrown by `probe` count as "not yet" (the last one is reported on timeout).
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 200;
  let lastError: unknown;
  for (;;) {
    opts.abortIf?.();
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : lastError !== undefined ? `; last error: ${String(lastError)}` : '';
      throw new WaitTimeoutError(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${detail}`);
    }
    await delay(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
}

/** waitFor for a synchronous condition polled every 10 ms (in-process state: a router's backends, a source's list). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  await waitFor(cond, { what, timeoutMs, intervalMs: 10 });
}
