/**
 * What the proxied response body passes through: scanners that forward bytes as they come and read the
 * usage the backend reports on the way. They work on Buffers (no decode/re-encode of passthrough bytes);
 * server.ts drives them with manual backpressure, the Transform wrappers serve tests and stream users.
 */
import { Transform, type TransformCallback } from 'node:stream';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** OpenAI `usage` → Usage, if both counts are non-negative numbers. */
export function usageOf(v: unknown): Usage | undefined {
  if (!isObj(v)) return undefined;
  const p = v.prompt_tokens;
  const c = v.completion_tokens;
  if (typeof p !== 'number' || typeof c !== 'number' || !(p >= 0) || !(c >= 0)) return undefined;
  return { promptTokens: p, completionTokens: c };
}

const USAGE_OBJECT = /"usage"\s*:\s*\{/;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

/** JSON whitespace inside one SSE line (a raw CR or LF would end the line, and so the look-ahead). */
const isLineSpace = (b: number | undefined) => b === 0x20 || b === 0x09;

/** Whether `"usage"` starts at `at`. */
function usageKeyAt(buf: Uint8Array, at: number): boolean {
  // "usage" = 22 75 73 61 67 65 22
  return buf[at + 1] === 0x75 && buf[at + 2] === 0x73 && buf[at + 3] === 0x61 && buf[at + 4] === 0x67 && buf[at + 5] === 0x65 && buf[at + 6] === QUOTE;
}

/** Whether the `"usage"` key at `at` is followed by `:` and `{` on the same line (spaces and tabs allowed). */
function usageObjectAfterKeyAt(buf: Uint8Array, at: number): boolean {
  let i = at + 7; // past "usage"
  while (isLineSpace(buf[i])) i++;
  if (buf[i] !== 0x3a) return false; // ':'
  i++;
  while (isLineSpace(buf[i])) i++;
  return buf[i] === 0x7b; // '{'
}

/** Whether the line starting at `at` is a `data:` field. */
function dataFieldAt(buf: Uint8Array, at: number): boolean {
  // data: = 64 61 74 61 3a
  return buf[at] === 0x64 && buf[at + 1] === 0x61 && buf[at + 2] === 0x74 && buf[at + 3] === 0x61 && buf[at + 4] === 0x3a;
}

/** What one pass over an SSE event found; one per scanner, reused, so scanning allocates nothing. */
export interface EventScan {
  /** Index just past the event's blank line (`\n\n` or `\r\n\r\n`), or -1 when the bytes end first. */
  end: number;
  /** Its `data:` lines. */
  dataLines: number;
  /** A `"usage"` key occurs in it. */
  usageKey: boolean;
  /** A `"usage"` key followed by an object occurs in it (exact for a single data line). */
  usageObject: boolean;
}

/**
 * One pass over the bytes of the SSE event that starts at `from`, filling `out`. The usage check is the
 * byte-level USAGE_OBJECT: vLLM, like OpenAI, sends `"usage":null` on every chunk once
 * stream_options.include_usage is set (the router always sets it), so the usage chunk must be recognised
 * without decoding every event. Plain JS over the bytes
 * rather than Buffer.indexOf: every indexOf is a call into C++, and a typical chunk of a vLLM stream (one
 * event of a few hundred bytes, of which the router relays thousands a second) took five of them.
 */
export function scanEvent(buf: Uint8Array, from: number, out: EventScan): EventScan {
  out.end = -1;
  out.dataLines = dataFieldAt(buf, from) ? 1 : 0;
  out.usageKey = false;
  out.usageObject = false;
  const n = buf.length;
  for (let i = from; i < n; i++) {
    const b = buf[i];
    if (b === QUOTE) {
      if (usageKeyAt(buf, i)) {
        out.usageKey = true;
        if (!out.usageObject) out.usageObject = usageObjectAfterKeyAt(buf, i);
      }
      continue;
    }
    if (b !== LF) continue;
    const next = buf[i + 1];
    if (next === LF) {
      out.end = i + 2;
      return out;
    }
    if (next === CR && buf[i + 2] === LF && i > from && buf[i - 1] === CR) {
      out.end = i + 3;
      return out;
    }
    if (dataFieldAt(buf, i + 1)) out.dataLines++;
  }
  return out;
}

/** The `data:` payload of one SSE event (multiple data lines joined by \n), or undefined. */
export function eventData(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const v = line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
    data = data === undefined ? v : `${data}\n${v}`;
  }
  return data;
}

/** An unterminated event longer than this is forwarded unparsed. */
export const MAX_PENDING_EVENT_BYTES = 1 << 20;

export interface SseTapOptions {
  /** Drop the usage-only chunk (choices: [] with usage) — the router asked for it, the client did not. */
  stripUsageChunk: boolean;
  /** Called once, when the first data event arrives. */
  onFirstEvent?: () => void;
}

/**
 * Server-sent events passthrough. Complete events are forwarded as soon as their blank line arrives,
 * byte for byte (zero-copy slices of the input), except the usage-only chunk when `stripUsageChunk`;
 * the usage it carries is kept in `usage` either way.
 */
export class SseScanner {
  usage: Usage | undefined;
  /** Data events seen. */
  events = 0;
  private pending: Buffer | undefined;
  private readonly scan: EventScan = { end: -1, dataLines: 0, usageKey: false, usageObject: false };

  constructor(private readonly o: SseTapOptions) {}

  /** Feeds a chunk; returns the bytes to forward now (undefined: nothing yet). */
  push(chunk: Buffer): Buffer | undefined {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let start = 0;
    let keptFrom = 0;
    let pieces: Buffer[] | undefined;
    for (;;) {
      const ev = scanEvent(buf, start, this.scan);
      if (ev.end < 0) break;
      if (!this.keep(buf, start, ev)) {
        (pieces ??= []).push(buf.subarray(keptFrom, start));
        keptFrom = ev.end;
      }
      start = ev.end;
    }
    let out: Buffer | undefined;
    if (pieces) {
      pieces.push(buf.subarray(keptFrom, start));
      out = Buffer.concat(pieces);
    } else if (start === buf.length) out = buf; // the usual chunk: whole events, forwarded as is
    else if (start > 0) out = buf.subarray(0, start);
    if (start < buf.length) {
      const rest = buf.subarray(start);
      if (rest.length > MAX_PENDING_EVENT_BYTES) {
        // No event boundary in sight: forward as-is rather than buffer without bound.
        out = out ? Buffer.concat([out, rest]) : rest;
      } else this.pending = Buffer.from(rest); // a copy: do not pin the whole chunk
    }
    return out && out.length > 0 ? out : undefined;
  }

  /** At the end of the body: the unterminated rest, if any. */
  flush(): Buffer | undefined {
    const rest = this.pending;
    this.pending = undefined;
    if (!rest || rest.length === 0) return undefined;
    const ev = scanEvent(rest, 0, this.scan);
    return this.keep(rest, 0, ev) ? rest : undefined;
  }

  /** Whether to forward the event at buf[start, scan.end) (or to the end of buf); reads its usage, if any. */
  private keep(buf: Buffer, start: number, scan: EventScan): boolean {
    if (scan.dataLines === 0) return true; // comments, retry:, keep-alives
    if (this.events++ === 0) this.o.onFirstEvent?.();
    // One data line (the usual case): its raw bytes are the JSON, so the byte check is exact. Several data
    // lines are joined first (a line break may sit anywhere in the JSON).
    if (scan.dataLines === 1 ? !scan.usageObject : !scan.usageKey) return true;
    const data = eventData(buf.toString('utf8', start, scan.end < 0 ? buf.length : scan.end));
    // Only a usage *object* is worth parsing (vLLM sends "usage":null on the other chunks).
    if (data === undefined || !USAGE_OBJECT.test(data)) return true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return true;
    }
    if (!isObj(parsed)) return true;
    const u = usageOf(parsed.usage);
    if (!u) return true;
    this.usage = u;
    const usageOnly = Array.isArray(parsed.choices) && parsed.choices.length === 0;
    return !(this.o.stripUsageChunk && usageOnly);
  }
}

/**
 * Non-streamed body passthrough that keeps a bounded copy to read `usage` from at the end. A body larger
 * than `maxCopyBytes` is forwarded all the same; its usage is then unknown.
 */
export class JsonScanner {
  usage: Usage | undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  private overflow = false;

  constructor(private readonly maxCopyBytes: number) {}

  push(chunk: Buffer): Buffer {
    if (!this.overflow) {
      this.size += chunk.length;
      if (this.size > this.maxCopyBytes) {
        this.overflow = true;
        this.chunks = [];
      } else this.chunks.push(chunk);
    }
    return chunk;
  }

  flush(): undefined {
    if (!this.overflow && this.size > 0) {
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(this.chunks, this.size).toString('utf8'));
        if (isObj(parsed)) this.usage = usageOf(parsed.usage);
      } catch {
        // not JSON: usage unknown
      }
    }
    this.chunks = [];
    return undefined;
  }
}

/** Transform form of SseScanner. */
export class SseTap extends Transform {
  private readonly scanner: SseScanner;
  constructor(o: SseTapOptions) {
    super();
    this.scanner = new SseScanner(o);
  }
  get usage(): Usage | undefined {
    return this.scanner.usage;
  }
  get events(): number {
    return this.scanner.events;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = this.scanner.push(chunk);
    if (out) this.push(out);
    cb();
  }
  override _flush(cb: TransformCallback): void {
    const out = this.scanner.flush();
    if (out) this.push(out);
    cb();
  }
}

/** Transform form of JsonScanner. */
export class JsonTap extends Transform {
  private readonly scanner: JsonScanner;
  constructor(maxCopyBytes: number) {
    super();
    this.scanner = new JsonScanner(maxCopyBytes);
  }
  get usage(): Usage | undefined {
    return this.scanner.usage;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, this.scanner.push(chunk));
  }
  override _flush(cb: TransformCallback): void {
    this.scanner.flush();
    cb();
  }
}
