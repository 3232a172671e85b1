import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface SimpleResponse {
  status: number;
  body: string;
}

/**
 * One GET to a loopback URL (http or https; https verified against `tls.ca`, with an optional client
 * cert). Only for 127.0.0.1 endpoints the harness itself started.
 */
export function httpGet(url: string, tls: TlsFiles = {}, timeoutMs = 5_000, method = 'GET'): Promise<SimpleResponse> {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') {
    return Promise.reject(new Error(`refusing to dial non-loopback URL ${url}`));
  }
  return new Promise((resolve, reject) => {
    const onRes = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req =
      u.protocol === 'https:'
        ? httpsRequest(
            u,
            {
              method,
              agent: false,
              ca: tls.ca ? readFileSync(tls.ca) : undefined,
              cert: tls.cert ? readFileSync(tls.cert) : undefined,
              key: tls.key ? readFileSync(tls.key) : undefined,
              timeout: timeoutMs,
            },
            onRes,
          )
        : httpRequest(u, { method, agent: false, timeout: timeoutMs }, onRes);
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}
