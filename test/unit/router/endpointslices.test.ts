import { KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { EndpointSliceSource, readyBackendsFromSlices, slicePort } from '../../../src/router/endpointslices.js';
import { startRouter } from '../../../src/router/server.js';
import { deadUrl } from './fake-upstream.js';

// Addresses here are data only: nothing ever connects to them.
const slice = (endpoints: V1EndpointSlice['endpoints'], ports: V1EndpointSlice['ports'], addressType = 'IPv4'): V1EndpointSlice => ({
  addressType,
  endpoints,
  ports,
});

describe('readyBackendsFromSlices', () => {
  it('keeps ready (or nil-ready) non-terminating endpoints, with the slice port, sorted and deduplicated', () => {
    const s1 = slice(
      [
        { addresses: ['10.0.0.2'], conditions: { ready: true } },
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.3'], conditions: { ready: false } },
        { addresses: ['10.0.0.4'], conditions: { ready: true, terminating: true } },
      ],
      [{ name: 'http', port: 8000, protocol: 'TCP' }],
    );
    const s2 = slice([{ addresses: ['10.0.0.2'], conditions: { ready: true } }], [{ name: 'http', port: 8000 }]);
    expect(readyBackendsFromSlices([s1, s2])).toEqual(['http://10.0.0.1:8000', 'http://10.0.0.2:8000']);
  });
  it('IPv6 addresses are bracketed', () => {
    expect(readyBackendsFromSlices([slice([{ addresses: ['fd00::5'] }], [{ port: 80 }], 'IPv6')])).toEqual(['http://[fd00::5]:80']);
  });
  it('port choice: by name or number when configured; else "http"; else the first; slices without a port are skipped', () => {
    const s = slice([{ addresses: ['10.0.0.1'] }], [{ name: 'metrics', port: 9090 }, { name: 'http', port: 8000 }, { name: 'udp', port: 53, protocol: 'UDP' }]);
    expect(slicePort(s)).toBe(8000);
    expect(slicePort(s, 'metrics')).toBe(9090);
    expect(slicePort(s, 9090)).toBe(9090);
    expect(slicePort(s, 'udp')).toBeUndefined();
    expect(slicePort(slice([], [{ name: 'x', port: 1 }]))).toBe(1);
    expect(readyBackendsFromSlices([slice([{ addresses: ['10.0.0.1'] }], [])])).toEqual([]);
  });
});

describe('EndpointSliceSource without a reachable API server', () => {
  it('start() resolves unsynced, keeps retrying in the background; the router is up but not ready', async () => {
    const server = await deadUrl(); // 127.0.0.1, nothing listening
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const silent = pino({ level: 'silent' });
    const updates: string[][] = [];
    const source = new EndpointSliceSource({ kubeConfig: kc, namespace: 'ns', service: 'svc', logger: silent, backoffMs: 50 });
    await source.start((u) => updates.push(u));
    expect(source.synced).toBe(false);
    expect(updates).toEqual([]);
    await source.stop();

    const router = await startRouter({
      logger: silent,
      kubeConfig: () => kc,
      config: {
        service: { namespace: 'ns', name: 'chat' },
        buckets: { inputEdges: [100], outputEdges: [100] },
        pools: [{ name: 'l4', gpuType: 'L4', discovery: { namespace: 'ns', service: 'svc' } }],
      },
    });
    try {
      expect(router.ready()).toBe(false);
      const rz = await fetch(`${router.url}/readyz`);
      expect(rz.status).toBe(503);
      const r = await fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'x' }) });
      expect(r.status).toBe(503);
    } finally {
      await router.close({ graceMs: 0 });
    }
  });
});
