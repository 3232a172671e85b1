/** The router's HTTP(S) client of the backends: keep-alive connection pools, one request per attempt. */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend } from './backends.js';
import { ignoreError, requestHeaders } from './http.js';

export type UpstreamResult =
  | { kind: 'response'; upReq: http.ClientRequest; upRes: IncomingMessage }
  | { kind: 'failed'; error: Error; reusedSocket: boolean }
  | { kind: 'client-gone' };

/** One request to one backend, on behalf of the client request `req` whose response is `res`. */
export interface UpstreamAttempt {
  backend: Backend;
  /** Path and query as the client sent them (appended to the backend's base path). */
  rawUrl: string;
  method: string;
  req: IncomingMessage;
  /** The (possibly rewritten) body; undefined for a GET. */
  body: Buffer | undefined;
  res: ServerResponse;
  connectTimeoutMs: number;
}

export class UpstreamClient {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });

  constructor(private readonly log: Logger) {}

  /**
   * One attempt on one backend. A kept-alive socket the backend closed while idle fails with ECONNRESET as
   * soon as it is reused (a race inherent to HTTP keep-alive): that is resent on a fresh connection to the
   * same backend, not counted as a failed attempt (Node's documented `reusedSocket` pattern).
   */
  async send(a: UpstreamAttempt): Promise<UpstreamResult> {
    for (let stale = 0; ; stale++) {
      const r = await this.sendOnce(a);
      if (r.kind === 'failed' && r.reusedSocket && (r.error as NodeJS.ErrnoException).code === 'ECONNRESET' && stale < 2 && !a.res.destroyed) {
        this.log.debug({ backend: a.backend.label }, 'kept-alive connection was closed by the backend; resending on a new one');
        continue;
      }
      return r;
    }
  }

  /** Closes the pooled connections (at shutdown). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private sendOnce({ backend, rawUrl, method, req, body, res, connectTimeoutMs }: UpstreamAttempt): Promise<UpstreamResult> {
    return new Promise((resolve) => {
      let settled = false;
      // The request object lives as long as the streamed response: once settled, nothing of this attempt
      // stays attached to it but a shared no-op for late errors.
      const settle = (r: UpstreamResult) => {
        if (settled) return;
        settled = true;
        res.off('close', onClientClose);
        upReq.off('socket', onSocket);
        upReq.off('response', onResponse);
        upReq.off('error', onError);
        upReq.on('error', ignoreError);
        clearTimeout(timer);
        resolve(r);
      };
      const u = backend.url;
      const isHttps = u.protocol === 'https:';
      const basePath = u.pathname.replace(/\/+$/, '');
      const headers = requestHeaders(req.headers, body?.length, req.socket.remoteAddress);
      // The body was validated as JSON; some servers insist on the content type.
      if (body !== undefined) headers['content-type'] = 'application/json';
      const upReq = (isHttps ? https : http).request({
        protocol: u.protocol,
        hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port || (isHttps ? 443 : 80),
        method,
        path: `${basePath}${rawUrl}`,
        headers,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
      });
      let timer: NodeJS.Timeout | undefined;
      const onSocket = (sock: Socket) => {
        if (!sock.connecting) return;
        timer = setTimeout(() => upReq.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)), connectTimeoutMs);
        sock.once('connect', () => clearTimeout(timer));
      };
      const onClientClose = () => {
        if (res.writableFinished) return;
        upReq.destroy();
        settle({ kind: 'client-gone' });
      };
      const onResponse = (upRes: IncomingMessage) => settle({ kind: 'response', upReq, upRes });
      const onError = (error: Error) => settle({ kind: 'failed', error, reusedSocket: upReq.reusedSocket });
      res.on('close', onClientClose);
      upReq.on('socket', onSocket);
      upReq.on('response', onResponse);
      upReq.on('error', onError);
      upReq.end(body);
    });
  }
}
