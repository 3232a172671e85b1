import { ApiException, type V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  PROMETHEUS_CREDENTIALS_LABEL,
  PROMETHEUS_CREDENTIALS_OPT_IN,
  SecretRefError,
  prometheusCredentials,
  resolveSecretRefs,
  type SecretReader,
} from '../../../src/workload/secrets.js';
import { makeService } from './fixtures.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function reader(secrets: Record<string, Record<string, string>>, fail: Record<string, number> = {}, labels: Record<string, Record<string, string>> = {}) {
  const reads: string[] = [];
  const core: SecretReader = {
    async readNamespacedSecret({ name, namespace }): Promise<V1Secret> {
      reads.push(`${namespace}/${name}`);
      const code = fail[name];
      if (code !== undefined) throw new ApiException(code, 'failed', JSON.stringify({ kind: 'Status', code }), {});
      const data = secrets[name];
      if (!data) throw new ApiException(404, 'not found', JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }), {});
      const l = labels[name];
      return { metadata: { name, namespace, ...(l ? { labels: l } : {}) }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
    },
  };
  return { core, reads };
}
const OPTED_IN = { [PROMETHEUS_CREDENTIALS_LABEL]: 'true' };

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

describe('prometheusCredentials as the operator calls it (opt-in label required)', () => {
  const svc = (refs: Record<string, unknown>) =>
    makeService({ namespace: 'team-a', workload: { source: 'Prometheus', prometheus: { url: 'https://127.0.0.1:9', ...refs } } });
  const opts = { requireLabel: PROMETHEUS_CREDENTIALS_OPT_IN };
  const tokenRef = { bearerTokenSecretRef: { name: 'tok', key: 'token' } };

  it('the label is melange.dev/prometheus-credentials: "true"', () => {
    expect(PROMETHEUS_CREDENTIALS_OPT_IN).toEqual({ key: 'melange.dev/prometheus-credentials', value: 'true' });
  });

  it('a labelled Secret is used', async () => {
    const { core } = reader({ tok: { token: 'abc' }, ca: { 'ca.crt': PEM } }, {}, { tok: OPTED_IN, ca: { ...OPTED_IN, other: 'x' } });
    expect(await prometheusCredentials(core, svc({ ...tokenRef, caSecretRef: { name: 'ca', key: 'ca.crt' } }), opts)).toEqual({ bearerToken: 'abc', caPem: PEM });
  });

  it('an unlabelled Secret (or one labelled anything but "true") is refused, naming the Secret, the field and the label, never the value or its keys', async () => {
    const variants: Record<string, Record<string, string>>[] = [{}, { tok: { [PROMETHEUS_CREDENTIALS_LABEL]: 'false' } }, { tok: { [PROMETHEUS_CREDENTIALS_LABEL]: 'True' } }, { tok: { 'melange.dev/other': 'true' } }];
    for (const labels of variants) {
      const { core } = reader({ tok: { token: 'super-secret-value', password: 'p' } }, {}, labels);
      const e = await rejectsWith(prometheusCredentials(core, svc(tokenRef), opts));
      expect(e.kind).toBe('NotOptedIn');
      expect(e.field).toBe('spec.workload.prometheus.bearerTokenSecretRef');
      expect(e.message).toMatch(/^spec\.workload\.prometheus\.bearerTokenSecretRef\.name: Secret team-a\/tok key "token": /);
      expect(e.message).toContain('melange.dev/prometheus-credentials: "true"');
      expect(e.message).not.toContain('super-secret-value');
      expect(e.message).not.toContain('password');
    }
  });

  it('the label is checked before the key: a missing key of an unlabelled Secret still says NotOptedIn', async () => {
    const { core } = reader({ tok: { other: 'x' } });
    expect((await rejectsWith(prometheusCredentials(core, svc(tokenRef), opts))).kind).toBe('NotOptedIn');
  });

  it('the CA Secret needs the label too', async () => {
    const { core } = reader({ tok: { token: 'abc' }, ca: { 'ca.crt': PEM } }, {}, { tok: OPTED_IN });
    const e = await rejectsWith(prometheusCredentials(core, svc({ ...tokenRef, caSecretRef: { name: 'ca', key: 'ca.crt' } }), opts));
    expect(e).toMatchObject({ kind: 'NotOptedIn', field: 'spec.workload.prometheus.caSecretRef' });
    expect(e.message).toMatch(/^spec\.workload\.prometheus\.caSecretRef\.name: Secret team-a\/ca /);
  });

  it('missing Secret → names …SecretRef.name; missing key → …SecretRef.key; forbidden → says it needs secrets: get', async () => {
    const { core } = reader({ tok: { other: 'x' } }, { locked: 403 }, { tok: OPTED_IN });
    const missing = await rejectsWith(prometheusCredentials(core, svc({ bearerTokenSecretRef: { name: 'nope', key: 'token' } }), opts));
    expect(missing.kind).toBe('NotFound');
    expect(missing.message).toBe('spec.workload.prometheus.bearerTokenSecretRef.name: Secret team-a/nope key "token": Secret not found');
    const noKey = await rejectsWith(prometheusCredentials(core, svc(tokenRef), opts));
    expect(noKey.kind).toBe('KeyMissing');
    expect(noKey.message).toBe('spec.workload.prometheus.bearerTokenSecretRef.key: Secret team-a/tok key "token": no such key (has: other)');
    const caMissing = await rejectsWith(prometheusCredentials(core, svc({ caSecretRef: { name: 'tok', key: 'ca.crt' } }), opts));
    expect(caMissing.message).toMatch(/^spec\.workload\.prometheus\.caSecretRef\.key: /);
    const locked = await rejectsWith(prometheusCredentials(core, svc({ bearerTokenSecretRef: { name: 'locked', key: 'token' } }), opts));
    expect(locked.kind).toBe('Forbidden');
    expect(locked.message).toContain('HTTP 403; it needs secrets: get');
  });

  it('an invalid token names …SecretRef.key', async () => {
    const { core } = reader({ tok: { token: 'a b' } }, {}, { tok: OPTED_IN });
    const e = await rejectsWith(prometheusCredentials(core, svc(tokenRef), opts));
    expect(e).toMatchObject({ kind: 'Invalid', field: 'spec.workload.prometheus.bearerTokenSecretRef' });
    expect(e.message).toMatch(/^spec\.workload\.prometheus\.bearerTokenSecretRef\.key: /);
    expect(e.message).not.toContain('a b');
  });
});
