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

/** The end of the first SSE event in `s` from `from`: index just past its blank line, or -1. */
export function eventEnd(s: string | Buffer, from = 0, maybeCrlf = true): number {
  const a = s.indexOf('\n\n', from);
  if (!maybeCrlf) return a < 0 ? -1 : a + 2;
  const b = s.indexOf('\r\n\r\n', from);
  if (a < 0 && b < 0) return -1;
  if (b >= 0 && (a < 0 || b < a)) return b + 4;
  return a + 2;
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

const USAGE_OBJECT = /"usage"\s*:\s*\{/;
// Byte needles (Buffer.indexOf with a string argument converts it on every call).
const DATA_FIELD = Buffer.from('data:');
const NL_DATA_FIELD = Buffer.from('\ndata:');
const USAGE_KEY = Buffer.from('"usage"');

const isJsonSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/**
 * Whether the raw bytes hold `"usage"` followed by `:` and `{` (JSON whitespace allowed) — the byte-level
 * USAGE_OBJECT. vLLM, like OpenAI, sends `"usage":null` on every chunk once stream_options.include_usage is
 * set (the router always sets it), so the usage chunk must be recognised without decoding every event.
 */
export function hasUsageObject(buf: Buffer): boolean {
  for (let at = buf.indexOf(USAGE_KEY); at >= 0; at = buf.indexOf(USAGE_KEY, at + 1)) {
    let i = at + USAGE_KEY.length;
    while (isJsonSpace(buf[i])) i++;
    if (buf[i] !== 0x3a) continue; // ':'
    i++;
    while (isJsonSpace(buf[i])) i++;
    if (buf[i] === 0x7b) return true; // '{'
  }
  return false;
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

  constructor(private readonly o: SseTapOptions) {}

  /** Feeds a chunk; returns the bytes to forward now (undefined: nothing yet). */
  push(chunk: Buffer): Buffer | undefined {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let start = 0;
    let keptFrom = 0;
    let pieces: Buffer[] | undefined;
    // Most servers (vLLM, the emulator) end lines with \n only: skip the CRLF search when there is no \r.
    const crlf = buf.indexOf(13) >= 0;
    for (;;) {
      const end = eventEnd(buf, start, crlf);
      if (end < 0) break;
      if (!this.keep(buf.subarray(start, end))) {
        (pieces ??= []).push(buf.subarray(keptFrom, start));
        keptFrom = end;
      }
      start = end;
    }
    let out: Buffer | undefined;
    if (pieces) {
      pieces.push(buf.subarray(keptFrom, start));
      out = Buffer.concat(pieces);
    } else if (start > 0) out = buf.subarray(0, start);
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
    return this.keep(rest) ? rest : undefined;
  }

  private keep(event: Buffer): boolean {
    const startsWithData = event.length >= DATA_FIELD.length && event.compare(DATA_FIELD, 0, DATA_FIELD.length, 0, DATA_FIELD.length) === 0;
    const laterData = event.indexOf(NL_DATA_FIELD);
    if (!startsWithData && laterData < 0) return true; // comments, retry:, keep-alives
    if (this.events++ === 0) this.o.onFirstEvent?.();
    // One data line (the usual case): its raw bytes are the JSON, so the byte check is exact. Several data
    // lines are joined first (a line break may sit anywhere in the JSON).
    if (laterData < 0 ? !hasUsageObject(event) : event.indexOf(USAGE_KEY) < 0) return true;
    const data = eventData(event.toString('utf8'));
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
