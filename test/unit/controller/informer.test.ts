import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { startInformer, type Informer } from '../../../src/controller/informer.js';

// A fake API server on 127.0.0.1 that scripts the watch failures client-node 1.4 mishandles on its own.
const PATH = '/apis/melange.dev/v1alpha1/llmservices';
const obj = (name: string, rv: string) => ({ apiVersion: 'melange.dev/v1alpha1', kind: 'LLMService', metadata: { name, namespace: 'ns', resourceVersion: rv } });

let server: Server | undefined;
let informer: Informer<ReturnType<typeof obj>> | undefined;
afterEach(async () => {
  await informer?.stop();
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
});

function kubeconfigFor(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}

describe('startInformer (robust ListWatch)', () => {
  it('relists on 410, restarts after a 500 without relisting, and re-watches periodically from the cached RV', async () => {
    const lists: string[] = [];
    const watchRvs: string[] = [];
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== PATH) return void res.writeHead(404).end();
      if (url.searchParams.get('watch') !== 'true') {
        lists.push(String(lists.length));
        const rv = lists.length === 1 ? '100' : '200';
        const items = lists.length === 1 ? [obj('a', '90'), obj('gone', '91')] : [obj('a', '190')];
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'melange.dev/v1alpha1', kind: 'LLMServiceList', metadata: { resourceVersion: rv }, items }));
      }
      watchRvs.push(url.searchParams.get('resourceVersion') ?? '');
      const n = watchRvs.length;
      if (n === 1) {
        // "too old resource version": an ERROR event, then the server closes the stream.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } })}\n`);
      } else if (n === 2) {
        res.writeHead(500).end('boom');
      } else if (n === 3) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ADDED', object: obj('b', '201') })}\n`); // then stays open
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('');
      }
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const kc = kubeconfigFor(port);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const events: string[] = [];
    const errors: Array<[number | undefined, number]> = [];
    informer = startInformer({
      kc,
      path: PATH,
      list: () => custom.listClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'llmservices' }),
      onEvent: (o) => events.push(`${o.metadata.name}@${o.metadata.resourceVersion}`),
      onError: (err, delay) => errors.push([(err as { statusCode?: number }).statusCode, delay]),
      refreshEveryMs: 2_500,
    });
    await informer.waitSynced();
    const deadline = Date.now() + 8_000;
    while (watchRvs.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

    expect(lists).toHaveLength(2); // the initial LIST and one relist after the 410, none after the 500 or the refresh
    expect(watchRvs).toEqual(['100', '200', '200', '201']);
    expect(errors).toEqual([[500, 1000]]);
    expect(informer.list().map((o) => o.metadata.name).sort()).toEqual(['a', 'b']); // "gone" dropped by the relist
    expect(events).toEqual(['a@90', 'gone@91', 'gone@91', 'a@190', 'b@201']); // the relist fires delete for "gone"
    expect(informer.synced()).toBe(true);
  }, 20_000);

  it('keeps retrying while the API server is unreachable, with capped backoff', async () => {
    const kc = kubeconfigFor(1); // nothing listens on port 1
    const custom = kc.makeApiClient(CustomObjectsApi);
    const delays: number[] = [];
    informer = startInformer({
      kc,
      path: PATH,
      list: () => custom.listClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'llmservices' }),
      onEvent: () => {},
      onError: (_e, d) => delays.push(d),
      maxBackoffMs: 2_000,
    });
    await new Promise((r) => setTimeout(r, 3_500));
    expect(informer.synced()).toBe(false);
    expect(delays.slice(0, 3)).toEqual([1000, 2000, 2000]);
  }, 10_000);
});
