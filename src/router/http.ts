/** HTTP plumbing of the router: hop-by-hop header filtering, JSON/error responses, bounded body reads. */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** An over-limit request body is drained (so the client can read the 413) up to this many bytes. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

function connectionTokens(h: IncomingHttpHeaders): Set<string> {
  const c = h.connection;
  return new Set((Array.isArray(c) ? c.join(',') : c ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
}

/** Headers of the request to a backend: the client's, minus hop-by-hop ones, plus X-Forwarded-For. */
export function requestHeaders(h: IncomingHttpHeaders, bodyLength: number | undefined, remote: string | undefined): OutgoingHttpHeaders {
  const drop = connectionTokens(h);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.has(k) || k === 'host' || k === 'content-length' || k === 'expect' || k === 'accept-encoding') continue;
    out[k] = v;
  }
  // The taps read the body: no compression between router and backend.
  out['accept-encoding'] = 'identity';
  if (bodyLength !== undefined) out['content-length'] = bodyLength;
  if (remote) {
    const prior = h['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${remote}` : remote;
  }
  return out;
}

/** Headers of the response to the client: the backend's, minus hop-by-hop ones (and Content-Length when the body changes). */
export function responseHeaders(h: IncomingHttpHeaders, dropLength: boolean): OutgoingHttpHeaders {
  const drop = connectionTokens(h);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.has(k) || (dropLength && k === 'content-length')) continue;
    out[k] = v;
  }
  return out;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extra: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

/** OpenAI-style error body. */
export function errorBody(message: string, type: string, code: number, param?: string) {
  return { error: { message, type, param: param ?? null, code } };
}

/** A listener for the late 'error' events of a stream that is already handled (shared: nothing allocated per use). */
export const ignoreError = (): void => undefined;

export class BodyTooLarge extends Error {}
class ClientGone extends Error {}

/**
 * Reads a request body up to `max` bytes; an over-limit body is drained (bounded) then rejected. Its
 * listeners come off the request once it settles: the request lives as long as its (streamed) response.
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    let size = 0;
    let over = Number.isFinite(declared) && declared > max;
    let chunks: Buffer[] = [];
    const settle = (err: Error | undefined) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', settle);
      req.off('aborted', onAborted);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
      chunks = [];
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (!over && size > max) {
        over = true;
        chunks = [];
      }
      if (!over) chunks.push(c);
      else if (size > MAX_DISCARD_BYTES) {
        req.pause();
        settle(new BodyTooLarge());
      }
    };
    const onEnd = () => settle(over ? new BodyTooLarge() : undefined);
    const onAborted = () => settle(new ClientGone());
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', settle);
    req.on('aborted', onAborted);
  });
}

/** A host for a URL: IPv6 addresses in brackets. */
export function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}
