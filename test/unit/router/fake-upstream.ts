/**
 * Tiny fake OpenAI-compatible backends for the router's real-socket tests: node:http on 127.0.0.1, they
 * answer which backend served the request and stream tokens with a final usage chunk (when asked, like
 * vLLM). Directives in the request body's `fake` field steer them (the router forwards unknown fields).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { estimateRequestPromptTokens } from '../../../src/common/tokens.js';

export interface FakeDirectives {
  /** usage.prompt_tokens to report (default: the shared estimate of the prompt). */
  prompt_tokens?: number;
  /** Tokens to generate (default max_tokens ?? 3). */
  completion_tokens?: number;
  /** Report no usage at all. */
  no_usage?: boolean;
  /** Do not answer until release() is called. */
  hold?: boolean;
  /** Stream: send the headers and the first event (the first token), the rest only on release(). */
  hold_after_first?: boolean;
  /** Not streamed: send the headers and half of the JSON body, the rest only on release(). */
  hold_body?: boolean;
  /** Stream: write this many chunks, then drop the connection (a backend crash mid-response). */
  abort_after?: number;
  /** Stream: write `big_chunks` events of 16 KiB each, stopping early once res.write() returns false. */
  big_chunks?: number;
}

export interface SeenRequest {
  method: string;
  path: string;
  body: Record<string, unknown> | undefined;
}

export interface FakeUpstream {
  readonly name: string;
  readonly url: string;
  readonly seen: SeenRequest[];
  /** Requests waiting for release(). */
  held(): number;
  release(): void;
  /** Set once a streamed write returned false (the client side applied backpressure). */
  readonly backpressure: { seen: boolean; writtenBeforeFull: number };
  /** Resolves the wait of a big_chunks stream: write the rest. */
  resumeBig(): void;
  close(): Promise<void>;
}

export async function startFakeUpstream(name: string): Promise<FakeUpstream> {
  const seen: SeenRequest[] = [];
  let waiting: (() => void)[] = [];
  let resumeBig: (() => void) | undefined;
  const backpressure = { seen: false, writtenBeforeFull: 0 };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
      const path = (req.url ?? '/').split('?')[0]!;
      seen.push({ method: req.method ?? '', path, body });
      if (path === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model', owned_by: name }] }));
        return;
      }
      const fake = (body?.fake ?? {}) as FakeDirectives;
      const answer = () => respond(res, body ?? {}, fake);
      if (fake.hold) waiting.push(answer);
      else answer();
    });
  });

  function respond(res: http.ServerResponse, body: Record<string, unknown>, fake: FakeDirectives): void {
    const promptTokens = fake.prompt_tokens ?? estimateRequestPromptTokens(body);
    const n = fake.completion_tokens ?? (typeof body.max_tokens === 'number' ? body.max_tokens : 3);
    const usage = { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: promptTokens + n };
    const chat = Array.isArray(body.messages);
    const choice = (k: number) => (chat ? { index: 0, delta: { content: ` t${k}` } } : { index: 0, text: ` t${k}` });
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const so = body.stream_options as { include_usage?: boolean } | undefined;
      const finish = () => {
        if (so?.include_usage && !fake.no_usage) res.write(`data: ${JSON.stringify({ backend: name, choices: [], usage })}\n\n`);
        res.end('data: [DONE]\n\n');
      };
      if (fake.big_chunks) {
        const pad = 'x'.repeat(16 * 1024);
        let k = 0;
        const writeSome = () => {
          while (k < (fake.big_chunks as number)) {
            const ok = res.write(`data: ${JSON.stringify({ backend: name, k, choices: [{ index: 0, text: pad }] })}\n\n`);
            k++;
            if (!ok && !backpressure.seen) {
              backpressure.seen = true;
              backpressure.writtenBeforeFull = k;
              resumeBig = () => res.once('drain', writeSome).emit('drain');
              return;
            }
            if (!ok) {
              res.once('drain', writeSome);
              return;
            }
          }
          finish();
        };
        writeSome();
        return;
      }
      if (fake.abort_after !== undefined) {
        for (let k = 0; k < fake.abort_after; k++) res.write(`data: ${JSON.stringify({ backend: name, k, choices: [choice(k)] })}\n\n`);
        res.write(': about to crash\n\n', () => res.socket?.destroy()); // once the bytes are out
        return;
      }
      const event = (k: number) => res.write(`data: ${JSON.stringify({ backend: name, k, choices: [choice(k)], usage: so?.include_usage ? null : undefined })}\n\n`);
      const rest = (from: number) => {
        for (let k = from; k < n; k++) event(k);
        finish();
      };
      if (fake.hold_after_first && n > 0) {
        event(0);
        waiting.push(() => rest(1));
        return;
      }
      rest(0);
      return;
    }
    const text = Array.from({ length: n }, (_, k) => ` t${k}`).join('');
    const out = {
      backend: name,
      object: chat ? 'chat.completion' : 'text_completion',
      choices: [chat ? { index: 0, message: { role: 'assistant', content: text } } : { index: 0, text }],
      ...(fake.no_usage ? {} : { usage }),
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    const json = JSON.stringify(out);
    if (fake.hold_body) {
      const half = Math.floor(json.length / 2);
      res.write(json.slice(0, half));
      waiting.push(() => res.end(json.slice(half)));
      return;
    }
    res.end(json);
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    seen,
    held: () => waiting.length,
    release: () => {
      const w = waiting;
      waiting = [];
      for (const f of w) f();
    },
    backpressure,
    resumeBig: () => resumeBig?.(),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A 127.0.0.1 URL on which nothing listens (connection refused). */
export async function deadUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}
