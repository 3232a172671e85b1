import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeepAliveAgents, makePooledApiClient } from '../../../src/controller/pooled-client.js';
import { createPki, signClientCert, writeKubeconfig, type Pki } from '../../support/pki.js';

// A real HTTPS server on 127.0.0.1 that requires a client certificate and counts TLS handshakes: the pooled
// client must reuse one connection for sequential calls, and present the kubeconfig's client certificate.

let dir: string;
let pki: Pki;
let server: Server;
let url: string;
let handshakes = 0;
const clientCNs: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'melange-pool-'));
  pki = await createPki(dir);
  server = createServer(
    { ca: await readFile(pki.caCrt), cert: await readFile(pki.apiserverCrt), key: await readFile(pki.apiserverKey), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const cn = (req.socket as unknown as { getPeerCertificate(): { subject?: { CN?: string } } }).getPeerCertificate().subject?.CN ?? '';
      clientCNs.push(cn);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kind: 'Namespace', apiVersion: 'v1', metadata: { name: req.url?.split('/').pop() } }));
    },
  );
  server.on('secureConnection', () => handshakes++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await rm(dir, { recursive: true, force: true });
});

async function kubeConfigFor(user: string): Promise<KubeConfig> {
  const cert = await signClientCert(pki, user, user);
  const file = join(dir, `${user}.kubeconfig`);
  await writeKubeconfig(file, url, pki.caCrt, cert.crt, cert.key);
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

describe('makePooledApiClient', () => {
  it('reuses one TLS connection for sequential calls and sends the client certificate', async () => {
    const kc = await kubeConfigFor('alice');
    const agents = new KeepAliveAgents();
    const core = makePooledApiClient(kc, CoreV1Api, agents);
    const before = handshakes;
    for (let i = 0; i < 5; i++) {
      const ns = await core.readNamespace({ name: `n${i}` });
      expect(ns.metadata?.name).toBe(`n${i}`);
    }
    expect(handshakes - before).toBe(1);
    expect(clientCNs.slice(-5)).toEqual(['alice', 'alice', 'alice', 'alice', 'alice']);
    expect(agents.size).toBe(1);
    agents.destroy();
  });

  it('the library client opens a connection per call (the behaviour pooling replaces)', async () => {
    const kc = await kubeConfigFor('bob');
    const core = kc.makeApiClient(CoreV1Api);
    const before = handshakes;
    for (let i = 0; i < 3; i++) await core.readNamespace({ name: `m${i}` });
    expect(handshakes - before).toBe(3);
  });

  it('different TLS material gets its own agent, and each call presents its own certificate', async () => {
    const agents = new KeepAliveAgents();
    const a = makePooledApiClient(await kubeConfigFor('carol'), CoreV1Api, agents);
    const b = makePooledApiClient(await kubeConfigFor('dave'), CoreV1Api, agents);
    await a.readNamespace({ name: 'x' });
    await b.readNamespace({ name: 'y' });
    await a.readNamespace({ name: 'z' });
    expect(clientCNs.slice(-3)).toEqual(['carol', 'dave', 'carol']);
    expect(agents.size).toBe(2);
    agents.destroy();
    expect(agents.size).toBe(0);
  });

  it('a kubeconfig without a current cluster is a clear error', () => {
    expect(() => makePooledApiClient(new KubeConfig(), CoreV1Api, new KeepAliveAgents())).toThrow(/no current cluster/);
  });
});
