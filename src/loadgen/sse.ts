/**
 * Incremental parser for `text/event-stream` bodies (the OpenAI streaming format): feed decoded text as it
 * arrives, get the `data:` payload of every complete event. Multi-line data fields are joined with '\n';
 * comments and other fields are ignored.
 */
export class SseParser {
  private buffer = '';

  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.buffer);
      if (!m) break;
      const block = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0) out.push(data.join('\n'));
    }
    return out;
  }

  /** Whatever is left unterminated at the end of the stream (a server that closed mid-event). */
  rest(): string {
    return this.buffer;
  }
}
