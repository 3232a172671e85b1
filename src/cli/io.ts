/** Where a command writes; injected so tests capture output without spawning a process. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (t) => { process.stdout.write(`${t}\n`); },
  err: (t) => { process.stderr.write(`${t}\n`); },
};

export const EXIT = { ok: 0, noPlan: 1, usage: 2 } as const;

/** Bad flags or arguments: printed as one line with the command's usage hint, exit code 2. */
export class UsageError extends Error {}
