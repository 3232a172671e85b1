/**
 * EndpointSlice discovery against the real API server. The addresses are fake data (10.x): the test
 * reads what discovery reports and never connects to them.
 */
import { DiscoveryV1Api, type V1EndpointSlice } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { EndpointSliceSource, SERVICE_NAME_LABEL } from '../../src/router/endpointslices.js';
import { startRouter, type RouterHandle } from '../../src/router/server.js';
import { testEnv } from '../support/env.js';
import { loadKubeConfig, makeClients } from '../support/kube.js';
import { useTestNamespace } from '../support/namespace.js';
import { waitFor } from '../support/wait.js';

const silent = pino({ level: 'silent' });

type Endpoint = { ip: string; ready?: boolean; terminating?: boolean };
const slice = (namespace: string, name: string, service: string, port: number, endpoints: Endpoint[]): V1EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: {
    name,
    namespace,
    // not managed by the EndpointSlice controller (the Service has no selector)
    labels: { [SERVICE_NAME_LABEL]: service, 'endpointslice.kubernetes.io/managed-by': 'melange-test' },
  },
  addressType: 'IPv4',
  ports: [{ name: 'http', port, protocol: 'TCP' }],
  endpoints: endpoints.map((e) => ({
    addresses: [e.ip],
    ...(e.ready === undefined && e.terminating === undefined ? {} : { conditions: { ready: e.ready, terminating: e.terminating } }),
  })),
});

describe('router EndpointSlice discovery (real API server)', () => {
  const ns = useTestNamespace('router-disc');
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const s of stops.splice(0)) await s();
  });

  async function headlessService(name: string): Promise<void> {
    await makeClients(ns.kc).core.createNamespacedService({
      namespace: ns.name,
      body: { metadata: { name }, spec: { clusterIP: 'None', ports: [{ name: 'http', port: 8000, protocol: 'TCP' }] } },
    });
  }

  it('reports exactly the ready endpoints of the Service\'s slices and follows updates', async () => {
    const namespace = ns.name;
    const disc = ns.kc.makeApiClient(DiscoveryV1Api);
    await headlessService('chat-a10g');
    await headlessService('other');
    await disc.createNamespacedEndpointSlice({
      namespace,
      body: slice(namespace, 'chat-a10g-1', 'chat-a10g', 8000, [
        { ip: '10.0.0.1', ready: true },
        { ip: '10.0.0.2', ready: false },
        { ip: '10.0.0.3' }, // no conditions: ready
        { ip: '10.0.0.4', ready: true, terminating: true },
      ]),
    });
    await disc.createNamespacedEndpointSlice({ namespace, body: slice(namespace, 'other-1', 'other', 8000, [{ ip: '10.0.9.9', ready: true }]) });

    const updates: string[][] = [];
    const latest = () => updates.at(-1);
    const source = new EndpointSliceSource({ kubeConfig: loadKubeConfig(testEnv().kubeconfig), namespace, service: 'chat-a10g', logger: silent });
    stops.push(() => source.stop());
    await source.start((urls) => updates.push(urls));
    expect(source.synced).toBe(true);
    expect(latest()).toEqual(['http://10.0.0.1:8000', 'http://10.0.0.3:8000']);

    // readiness flips
    await disc.replaceNamespacedEndpointSlice({
      name: 'chat-a10g-1',
      namespace,
      body: slice(namespace, 'chat-a10g-1', 'chat-a10g', 8000, [
        { ip: '10.0.0.1', ready: false },
        { ip: '10.0.0.2', ready: true },
        { ip: '10.0.0.3' },
      ]),
    });
    await waitFor(() => latest()?.join(',') === 'http://10.0.0.2:8000,http://10.0.0.3:8000', { what: 'readiness update', timeoutMs: 30_000, intervalMs: 50 });

    // a second slice (another port) adds its endpoints
    await disc.createNamespacedEndpointSlice({ namespace, body: slice(namespace, 'chat-a10g-2', 'chat-a10g', 9000, [{ ip: '10.0.1.7', ready: true }]) });
    await waitFor(() => latest()?.includes('http://10.0.1.7:9000'), { what: 'second slice', timeoutMs: 30_000, intervalMs: 50 });
    expect(latest()).toEqual(['http://10.0.0.2:8000', 'http://10.0.0.3:8000', 'http://10.0.1.7:9000']);

    // deleting a slice removes its endpoints
    await disc.deleteNamespacedEndpointSlice({ name: 'chat-a10g-1', namespace });
    await waitFor(() => latest()?.join(',') === 'http://10.0.1.7:9000', { what: 'slice deletion', timeoutMs: 30_000, intervalMs: 50 });
    // the other Service's slice never showed up
    expect(updates.flat().some((u) => u.includes('10.0.9.9'))).toBe(false);
  });

  it('the router takes a pool\'s backends from discovery (read, never dialled) and is ready once synced', async () => {
    const namespace = ns.name;
    const disc = ns.kc.makeApiClient(DiscoveryV1Api);
    await headlessService('chat-l4');
    await disc.createNamespacedEndpointSlice({
      namespace,
      body: slice(namespace, 'chat-l4-1', 'chat-l4', 8000, [{ ip: '10.0.2.1', ready: true }, { ip: '10.0.2.2', ready: false }]),
    });
    const router: RouterHandle = await startRouter({
      logger: silent,
      kubeConfig: () => loadKubeConfig(testEnv().kubeconfig),
      config: {
        service: { namespace, name: 'chat' },
        buckets: { inputEdges: [100], outputEdges: [100] },
        split: [{ input: 0, output: 0, weights: { l4: 1 } }],
        pools: [{ name: 'l4', gpuType: 'L4', discovery: { namespace, service: 'chat-l4', port: 'http' } }],
      },
    });
    stops.push(() => router.close({ graceMs: 0 }));
    expect(router.ready()).toBe(true);
    expect(router.backends()).toEqual({ l4: [{ url: 'http://10.0.2.1:8000', inflight: 0 }] });
    await disc.replaceNamespacedEndpointSlice({
      name: 'chat-l4-1',
      namespace,
      body: slice(namespace, 'chat-l4-1', 'chat-l4', 8000, [{ ip: '10.0.2.1', ready: true }, { ip: '10.0.2.2', ready: true }]),
    });
    await waitFor(() => router.backends().l4?.length === 2, { what: 'router backends update', timeoutMs: 30_000, intervalMs: 50 });
    const metrics = await (await fetch(router.metricsUrl)).text();
    expect(metrics).toContain(`melange_router_backends{namespace="${namespace}",service="chat",pool="l4"} 2`);
  });
});
