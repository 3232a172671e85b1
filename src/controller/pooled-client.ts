import { createHash } from 'node:crypto';
import { Agent as HttpsAgent } from 'node:https';
import { createConfiguration, ServerConfiguration, type KubeConfig } from '@kubernetes/client-node';

// client-node's KubeConfig.applySecurityAuthentication builds a new https.Agent for every API call, so every
// call opens a new TCP + TLS connection (a fresh SecureContext that parses the CA, cert and key each time).
// Profiled with 1,000 LLMServices: >40% of the operator's busy CPU was TLS setup, and the handshake latency
// serialised each reconcile's writes. Here the generated API classes get an auth method that lets client-node
// do everything it does (headers, exec/OIDC tokens, TLS material), then swaps its throwaway agent for a
// keep-alive one shared by every call with the same TLS material. Rotated client certificates (a changed
// kubeconfig file or exec credential) produce different material and therefore a new agent.
//
// Only the public surface client-node 1.4 and 2.x share is used (createConfiguration, ServerConfiguration,
// applySecurityAuthentication, RequestContext.getAgent/setAgent); if a future release lacks getAgent, calls
// fall back to the library's own per-call agent.

interface AgentContext {
  getAgent?: () => unknown;
  setAgent?: (agent: unknown) => void;
}

/** What a freshly created https.Agent remembers of its TLS options (Node keeps them on `.options`). */
type TlsOptions = Partial<Record<'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'servername', unknown>> & { rejectUnauthorized?: boolean };

const TLS_FIELDS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'] as const;
/** Idle connections close before the API server's own idle timeout, so a reused socket is never a dead one. */
const IDLE_SOCKET_TIMEOUT_MS = 30_000;
/** Bounds the number of distinct agents if credentials rotate often (oldest are closed first). */
const MAX_AGENTS = 4;

export class KeepAliveAgents {
  private readonly agents = new Map<string, HttpsAgent>();

  /** The shared keep-alive agent for this TLS material, or undefined for agents we do not pool (proxies). */
  agentFor(perCall: unknown): HttpsAgent | undefined {
    // Proxy agents (socks/http proxies) and plain-HTTP agents keep client-node's own behaviour.
    if (!(perCall instanceof HttpsAgent) || perCall.constructor !== HttpsAgent) return undefined;
    const options = (perCall as unknown as { options?: TlsOptions }).options ?? {};
    const picked: TlsOptions = {};
    const hash = createHash('sha256');
    for (const f of TLS_FIELDS) {
      const v = options[f];
      if (v === undefined || v === null) continue;
      (picked as Record<string, unknown>)[f] = v;
      hash.update(`${f}=`).update(typeof v === 'boolean' ? String(v) : Buffer.isBuffer(v) ? v : String(v)).update('\0');
    }
    const key = hash.digest('hex');
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new HttpsAgent({ ...picked, keepAlive: true, timeout: IDLE_SOCKET_TIMEOUT_MS } as ConstructorParameters<typeof HttpsAgent>[0]);
      this.agents.set(key, agent);
      if (this.agents.size > MAX_AGENTS) {
        const [oldest] = this.agents.keys();
        this.agents.get(oldest!)?.destroy();
        this.agents.delete(oldest!);
      }
    }
    return agent;
  }

  /** Closes every pooled connection (graceful shutdown). */
  destroy(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  get size(): number {
    return this.agents.size;
  }
}

type ApiConstructor<T> = new (config: ReturnType<typeof createConfiguration>) => T;

/** Like kc.makeApiClient(Api), but calls reuse keep-alive connections from `agents`. */
export function makePooledApiClient<T>(kc: KubeConfig, Api: ApiConstructor<T>, agents: KeepAliveAgents): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster (check its current-context)');
  const auth = {
    getName: () => 'melangeKeepAlive',
    applySecurityAuthentication: async (context: AgentContext) => {
      await kc.applySecurityAuthentication(context as Parameters<KubeConfig['applySecurityAuthentication']>[0]);
      if (typeof context.getAgent !== 'function' || typeof context.setAgent !== 'function') return;
      const shared = agents.agentFor(context.getAgent());
      if (shared) context.setAgent(shared);
    },
  };
  const config = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: auth as unknown as KubeConfig },
  });
  return new Api(config);
}
