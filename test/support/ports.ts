import { createServer } from 'node:net';

const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1, picked by the kernel (listen on port 0, then close). Ports already
 * handed out by this process are never returned twice, so several components started in a row
 * cannot collide with each other.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('could not find a free port on 127.0.0.1');
}
