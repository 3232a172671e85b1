import { ApiException, type V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { SecretRefError, prometheusCredentials, resolveSecretRefs, type SecretReader } from '../../../src/workload/secrets.js';
import { makeService } from './fixtures.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function reader(secrets: Record<string, Record<string, string>>, fail: Record<string, number> = {}) {
  const reads: string[] = [];
  const core: SecretReader = {
    async readNamespacedSecret({ name, namespace }): Promise<V1Secret> {
      reads.push(`${namespace}/${name}`);
      const code = fail[name];
      if (code !== undefined) throw new ApiException(code, 'failed', JSON.stringify({ kind: 'Status', code }), {});
      const data = secrets[name];
      if (!data) throw new ApiException(404, 'not found', JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }), {});
      return { metadata: { name, namespace }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
    },
  };
  return { core, reads };
}

async function rejectsWith(p: Promise<unknown>): Promise<SecretRefError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SecretRefError);
    return err as SecretRefError;
  }
  throw new Error('expected a SecretRefError');
}

describe('resolveSecretRefs', () => {
  it('decodes the referenced keys, reading each Secret once, skipping undefined refs', async () => {
    const { core, reads } = reader({ prom: { token: 'abc', ca: PEM } });
    const v = await resolveSecretRefs(core, 'ns', { t: { name: 'prom', key: 'token' }, c: { name: 'prom', key: 'ca' }, none: undefined });
    expect(v).toEqual({ t: 'abc', c: PEM });
    expect(reads).toEqual(['ns/prom']);
  });

  it('typed errors that name the Secret and key but never the value', async () => {
    const { core } = reader({ prom: { token: 'super-secret-value' } }, { locked: 403, broken: 500 });
    const missing = await rejectsWith(resolveSecretRefs(core, 'ns', { a: { name: 'nope', key: 'k' } }));
    expect(missing.kind).toBe('NotFound');
    expect(missing.message).toBe('Secret ns/nope key "k": Secret not found');
    expect((await rejectsWith(resolveSecretRefs(core, 'ns', { a: { name: 'locked', key: 'k' } }))).kind).toBe('Forbidden');
    expect((await rejectsWith(resolveSecretRefs(core, 'ns', { a: { name: 'broken', key: 'k' } }))).kind).toBe('ApiError');
    const noKey = await rejectsWith(resolveSecretRefs(core, 'ns', { a: { name: 'prom', key: 'password' } }));
    expect(noKey.kind).toBe('KeyMissing');
    expect(noKey.message).toContain('has: token');
    expect(noKey.message).not.toContain('super-secret-value');
  });
});

describe('prometheusCredentials', () => {
  const svc = (refs: Record<string, unknown>) =>
    makeService({ namespace: 'team-a', workload: { source: 'Prometheus', prometheus: { url: 'https://127.0.0.1:9', ...refs } } });

  it('returns the trimmed token and the CA bundle from spec.workload.prometheus refs', async () => {
    const { core, reads } = reader({ tok: { token: 'abc\n' }, ca: { 'ca.crt': PEM } });
    const creds = await prometheusCredentials(core, svc({ bearerTokenSecretRef: { name: 'tok', key: 'token' }, caSecretRef: { name: 'ca', key: 'ca.crt' } }));
    expect(creds).toEqual({ bearerToken: 'abc', caPem: PEM });
    expect(reads.sort()).toEqual(['team-a/ca', 'team-a/tok']);
  });

  it('no refs → nothing read', async () => {
    const { core, reads } = reader({});
    expect(await prometheusCredentials(core, svc({}))).toEqual({});
    expect(reads).toEqual([]);
  });

  it('rejects a token with inner whitespace and a CA that is not PEM', async () => {
    const { core } = reader({ tok: { token: 'a b' }, ca: { 'ca.crt': 'not a cert' } });
    expect((await rejectsWith(prometheusCredentials(core, svc({ bearerTokenSecretRef: { name: 'tok', key: 'token' } })))).kind).toBe('Invalid');
    expect((await rejectsWith(prometheusCredentials(core, svc({ caSecretRef: { name: 'ca', key: 'ca.crt' } })))).kind).toBe('Invalid');
  });
});
