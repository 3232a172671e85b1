import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/server.js';
import { estimateTokens, synthesizeText } from '../../../src/common/tokens.js';
import { SseParser } from '../../../src/loadgen/sse.js';

const silent = pino({ level: 'silent' });

/** Value of one sample line of the Prometheus text format (sum over matching lines), or 0. */
function sample(text: string, name: string, labelFilter = ''): number {
  let v = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp);
    if ((key === name || key.startsWith(`${name}{`)) && key.includes(labelFilter)) v += Number(line.slice(sp + 1));
  }
  return v;
}

async function streamChat(url: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ stream: true, ...body }),
  });
  const parser = new SseParser();
  const events: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) events.push(...parser.push(decoder.decode(chunk, { stream: true })));
  return { res, events };
}

describe('emulator HTTP server (in process, real sockets on 127.0.0.1)', () => {
  let emu: RunningEmulator;
  beforeAll(async () => {
    emu = await startEmulator({ gpu: 'A10G', speed: 1000, logger: silent });
  });
  afterAll(async () => {
    await emu.close({ drainMs: 0 });
  });

  it('listens on 127.0.0.1 and labels itself an emulator', async () => {
    expect(emu.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${emu.url}/v1/models`);
    expect(res.headers.get('x-melange-emulator')).toBe('A10G');
    expect(res.headers.get('x-melange-emulator-speed')).toBe('1000');
    const body = (await res.json()) as { data: Array<{ id: string; owned_by: string; max_model_len: number }> };
    expect(body.data).toEqual([expect.objectContaining({ id: 'meta-llama/Llama-2-7b-hf', owned_by: 'melange-emulator', max_model_len: 10_000 })]);
    const health = await fetch(`${emu.url}/health`);
    expect(health.status).toBe(200);
    expect(health.headers.get('x-melange-emulator')).toBe('A10G');
    await health.arrayBuffer();
  });

  it('streams a chat completion: role first, exactly max_tokens tokens, finish_reason, usage, [DONE]', async () => {
    const content = synthesizeText(120);
    const { res, events } = await streamChat(emu.url, {
      messages: [{ role: 'user', content }],
      max_tokens: 20,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-melange-emulator')).toBe('A10G');
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as {
      object: string;
      choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>;
      usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
    });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const usage = chunks.at(-1)!.usage!;
    expect(chunks.at(-1)!.choices).toEqual([]);
    // Like vLLM and OpenAI: with include_usage every earlier chunk carries "usage": null.
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(usage).toEqual({ prompt_tokens: 120 + 6, completion_tokens: 20, total_tokens: 146 });
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    expect(estimateTokens(text)).toBe(20);
    const finishes = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f !== null);
    expect(finishes).toEqual(['length']);
  });

  it('without include_usage, stream chunks carry no usage key at all', async () => {
    const { events } = await streamChat(emu.url, { messages: [{ role: 'user', content: synthesizeText(30) }], max_tokens: 5 });
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Record<string, unknown>);
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
  });

  it('answers a non-streaming completion with usage (default max_tokens 16)', async () => {
    const res = await fetch(`${emu.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'meta-llama/Llama-2-7b-hf', prompt: synthesizeText(40) }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; choices: Array<{ text: string; finish_reason: string }>; usage: unknown };
    expect(body.object).toBe('text_completion');
    expect(body.usage).toEqual({ prompt_tokens: 40, completion_tokens: 16, total_tokens: 56 });
    expect(estimateTokens(body.choices[0]!.text)).toBe(16);
    expect(body.choices[0]!.finish_reason).toBe('length');
  });

  it('rejects a request longer than the GPU\'s context with vLLM\'s 400', async () => {
    const res = await fetch(`${emu.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: synthesizeText(9000), max_tokens: 2000 }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string; type: string; code: number } };
    expect(body.error.type).toBe('BadRequestError');
    expect(body.error.message).toMatch(/maximum context length is 10000 tokens\. However, you requested 11000 tokens/);
    const m = await (await fetch(`${emu.url}/metrics`)).text();
    expect(sample(m, 'melange_emulator_requests_rejected_total', 'reason="context_length"')).toBeGreaterThanOrEqual(1);
  });

  it('returns OpenAI-style errors for a wrong model, bad JSON, n > 1, wrong method and unknown paths', async () => {
    const post = (path: string, body: string) => fetch(`${emu.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const wrongModel = await post('/v1/completions', JSON.stringify({ model: 'gpt-x', prompt: 'hi' }));
    expect(wrongModel.status).toBe(404);
    expect(((await wrongModel.json()) as { error: { message: string } }).error.message).toContain('gpt-x');
    expect((await post('/v1/completions', '{not json')).status).toBe(400);
    expect((await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], n: 2 }))).status).toBe(400);
    expect((await post('/v1/chat/completions', JSON.stringify({ messages: [] }))).status).toBe(400);
    expect((await post('/v1/completions', JSON.stringify({ prompt: '' }))).status).toBe(400);
    expect((await fetch(`${emu.url}/v1/completions`)).status).toBe(405);
    expect((await fetch(`${emu.url}/nope`)).status).toBe(404);
  });

  it('exposes vllm:* metrics with model_name that move with traffic (emulated seconds)', async () => {
    const before = await (await fetch(`${emu.url}/metrics`)).text();
    const label = 'model_name="meta-llama/Llama-2-7b-hf"';
    await Promise.all(
      [1, 2, 3].map(() => streamChat(emu.url, { messages: [{ role: 'user', content: synthesizeText(50) }], max_tokens: 10 })),
    );
    const after = await (await fetch(`${emu.url}/metrics`)).text();
    const delta = (name: string, f = label) => sample(after, name, f) - sample(before, name, f);
    expect(delta('vllm:request_success_total', 'finished_reason="length"')).toBe(3);
    expect(delta('vllm:request_prompt_tokens_count')).toBe(3);
    expect(delta('vllm:request_prompt_tokens_sum')).toBe(3 * 56);
    expect(delta('vllm:request_generation_tokens_sum')).toBe(30);
    expect(delta('vllm:generation_tokens_total')).toBe(30);
    expect(delta('vllm:time_to_first_token_seconds_count')).toBe(3);
    expect(delta('vllm:e2e_request_latency_seconds_count')).toBe(3);
    expect(delta('vllm:time_per_output_token_seconds_count')).toBe(27);
    // Emulated seconds: 10 A10G decode steps take at least 10 x 30 ms, whatever the speed.
    expect(delta('vllm:e2e_request_latency_seconds_sum')).toBeGreaterThan(3 * 10 * 0.03);
    for (const g of ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:gpu_cache_usage_perc', 'vllm:kv_cache_usage_perc']) {
      expect(after).toMatch(new RegExp(`^${g}\\{${label}\\} `, 'm'));
    }
    expect(after).toMatch(/^melange_emulator_info\{.*gpu_type="A10G".*\} 1$/m);
  });
});

describe('emulator queueing, client disconnects and shutdown', () => {
  it('queues requests beyond max_num_seqs, frees them when clients go away, and drains on close', async () => {
    const emu = await startEmulator({ gpu: 'L4', speed: 20, logger: silent, limits: { maxNumSeqs: 1 } });
    try {
      const controllers = [0, 1, 2].map(() => new AbortController());
      const responses = controllers.map((c) =>
        fetch(`${emu.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ messages: [{ role: 'user', content: 'hello' }], max_tokens: 2000, stream: true }),
          signal: c.signal,
        }),
      );
      await Promise.all(responses); // headers are sent at once for streams
      let stats = emu.engine.stats();
      for (let i = 0; i < 200 && stats.running + stats.waiting < 3; i++) {
        await new Promise((r) => setTimeout(r, 10));
        stats = emu.engine.stats();
      }
      expect(stats).toMatchObject({ running: 1, waiting: 2 });
      const m = await (await fetch(`${emu.url}/metrics`)).text();
      expect(sample(m, 'vllm:num_requests_waiting')).toBe(2);
      expect(sample(m, 'vllm:num_requests_running')).toBe(1);

      for (const c of controllers) c.abort();
      for (let i = 0; i < 200 && !emu.engine.idle; i++) await new Promise((r) => setTimeout(r, 10));
      expect(emu.engine.idle).toBe(true);
      const m2 = await (await fetch(`${emu.url}/metrics`)).text();
      expect(sample(m2, 'melange_emulator_requests_aborted_total')).toBe(3);

      // A request in flight at close() finishes during the drain.
      const last = fetch(`${emu.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'hi', max_tokens: 5 }),
      });
      for (let i = 0; i < 200 && emu.engine.idle; i++) await new Promise((r) => setTimeout(r, 5));
      const closing = emu.close({ drainMs: 60_000 });
      const res = await last;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(5);
      await closing;
      await expect(fetch(`${emu.url}/health`)).rejects.toThrow();
    } finally {
      await emu.close({ drainMs: 0 });
    }
  });
});
