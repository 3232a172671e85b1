/**
 * Throwaway PKI for the test control plane, made with the openssl CLI in a temp dir: one ECDSA
 * P-256 CA that signs the serving certs (kube-apiserver; KCM and scheduler) and the client certs
 * (admin in system:masters, plus any identity a test asks for), and an RSA service-account key pair.
 * Valid for 7 days. Never reused across runs.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

const run = promisify(execFile);

export interface Pki {
  dir: string;
  caCrt: string;
  caKey: string;
  /** kube-apiserver serving cert (SANs: 127.0.0.1, ::1, localhost, kubernetes.default…, 10.0.0.1). */
  apiserverCrt: string;
  apiserverKey: string;
  /** Serving cert shared by kube-controller-manager and kube-scheduler (127.0.0.1, localhost). */
  componentsCrt: string;
  componentsKey: string;
  /** Client cert CN=melange-test-admin, O=system:masters. */
  adminCrt: string;
  adminKey: string;
  /** Service-account token signing pair. */
  saKey: string;
  saPub: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0] ?? ''} failed: ${e.stderr?.trim() || e.message}`);
  }
}

async function signCert(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  await openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-sha256', '-days', '7', '-extfile', `${name}.ext`, '-out', `${name}.crt`],
    dir,
  );
  await rm(join(dir, `${name}.csr`));
  await rm(join(dir, `${name}.ext`));
  await chmod(join(dir, `${name}.key`), 0o600);
}

const SERVER_EXT = (sans: string) =>
  `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`;
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

/** Creates the CA, serving certs, admin client cert and SA key pair in `dir`. */
export async function createPki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  await openssl(
    [
      'req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '7', '-subj', '/O=melange-test/CN=melange-test-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
      '-out', 'ca.crt',
    ],
    dir,
  );
  await chmod(join(dir, 'ca.key'), 0o600);
  await signCert(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    SERVER_EXT(
      'DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1',
    ),
  );
  await signCert(dir, 'components', '/CN=kube-components', SERVER_EXT('DNS:localhost,IP:127.0.0.1'));
  await signCert(dir, 'admin', '/O=system:masters/CN=melange-test-admin', CLIENT_EXT);
  await openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  await openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  await chmod(join(dir, 'sa.key'), 0o600);
  return pkiPaths(dir);
}

/** The file layout of a PKI made by `createPki` in `dir`. */
export function pkiPaths(dir: string): Pki {
  const f = (n: string) => join(dir, n);
  return {
    dir,
    caCrt: f('ca.crt'),
    caKey: f('ca.key'),
    apiserverCrt: f('apiserver.crt'),
    apiserverKey: f('apiserver.key'),
    componentsCrt: f('components.crt'),
    componentsKey: f('components.key'),
    adminCrt: f('admin.crt'),
    adminKey: f('admin.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
  };
}

/**
 * Mints a client cert for another identity (CN = user, O = groups), e.g. to test the operator's
 * RBAC as a non-admin. Returns the cert and key paths inside the PKI dir.
 */
export async function signClientCert(pki: Pki, fileName: string, user: string, groups: string[] = []): Promise<{ crt: string; key: string }> {
  if (!/^[a-z0-9-]+$/.test(fileName)) throw new Error(`bad cert file name: ${fileName}`);
  const subject = [...groups.map((g) => `/O=${g}`), `/CN=${user}`].join('');
  await signCert(pki.dir, fileName, subject, CLIENT_EXT);
  return { crt: join(pki.dir, `${fileName}.crt`), key: join(pki.dir, `${fileName}.key`) };
}

/** Writes a kubeconfig with embedded CA and client cert data, pointing at `server` (https://127.0.0.1:<port>). */
export async function writeKubeconfig(
  out: string,
  server: string,
  caCrt: string,
  clientCrt: string,
  clientKey: string,
  name = 'melange-test',
): Promise<void> {
  const b64 = async (p: string) => (await readFile(p)).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': await b64(caCrt) } }],
    users: [{ name, user: { 'client-certificate-data': await b64(clientCrt), 'client-key-data': await b64(clientKey) } }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: 'default' } }],
    'current-context': name,
    preferences: {},
  };
  await writeFile(out, stringify(doc), { mode: 0o600 });
}
