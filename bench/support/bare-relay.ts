// The floor of the router-overhead benchmark: the least an HTTP relay in Node does — read the request body, send
// it to a backend over a keep-alive connection, stream the answer back chunk by chunk — and none of the router's
// own work (no JSON parsing, no classification, split table, SLO guard, metrics or usage taps). Its own process,
// on 127.0.0.1, a free port; prints `{"msg":"listening on …","url":…}` like the router:
//   node --import tsx bench/support/bare-relay.ts PROBE_URL BACKGROUND_URL...
// A request with the header `x-bench-target: probe` goes to PROBE_URL, any other to the background backend with
// the fewest requests in flight (the least-loaded rule the router applies inside a pool).
import http from 'node:http';

const [probeArg, ...bgArgs] = process.argv.slice(2);
if (!probeArg || bgArgs.length === 0) {
  process.stderr.write('usage: bare-relay.ts PROBE_URL BACKGROUND_URL...\n');
  process.exit(2);
}
const probe = { url: new URL(probeArg), inflight: 0 };
const background = bgArgs.map((u) => ({ url: new URL(u), inflight: 0 }));
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const target = req.headers['x-bench-target'] === 'probe'
      ? probe
      : background.reduce((a, b) => (b.inflight < a.inflight ? b : a));
    target.inflight++;
    let released = false;
    const release = () => { if (!released) { released = true; target.inflight--; } };
    const up = http.request(
      { hostname: target.url.hostname, port: target.url.port, path: req.url, method: req.method, agent,
        headers: { 'content-type': String(req.headers['content-type'] ?? 'application/json'), 'content-length': body.length } },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, { 'content-type': String(upRes.headers['content-type'] ?? 'application/octet-stream') });
        upRes.on('data', (c: Buffer) => { if (!res.write(c)) upRes.pause(); });
        res.on('drain', () => upRes.resume());
        upRes.on('end', () => { release(); res.end(); });
        upRes.on('error', () => { release(); res.destroy(); });
      },
    );
    up.on('error', (err) => {
      release();
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`bare relay: ${err.message}`);
    });
    res.on('close', () => { if (!res.writableFinished) { release(); up.destroy(); } });
    up.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  const url = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}` : '';
  process.stdout.write(`${JSON.stringify({ msg: `listening on ${url}`, url })}\n`);
});
const stop = () => { server.close(); agent.destroy(); setTimeout(() => process.exit(0), 200).unref(); };
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
