import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { apiMessageOf, isNamespaceTerminating } from '../../../src/controller/kube.js';

// The metav1.Status bodies as kube-apiserver sends them (NamespaceLifecycle admission; RBAC authorizer).
const terminating = {
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  message: 'configmaps "svc-router" is forbidden: unable to create new content in namespace ml because it is being terminated',
  reason: 'Forbidden',
  details: { name: 'svc-router', kind: 'configmaps', causes: [{ reason: 'NamespaceTerminating', message: 'namespace ml is being terminated', field: 'metadata.namespace' }] },
  code: 403,
};
const rbac = {
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  message: 'deployments.apps "chat-l4" is forbidden: User "system:serviceaccount:melange:op" cannot patch resource "deployments" in API group "apps" in the namespace "ml"',
  reason: 'Forbidden',
  details: { name: 'chat-l4', group: 'apps', kind: 'deployments' },
  code: 403,
};
const apiError = (code: number, body: unknown) => new ApiException(code, 'HTTP error', body, {});

describe('isNamespaceTerminating', () => {
  it('recognises the 403 with cause NamespaceTerminating, body as raw JSON text or parsed', () => {
    expect(isNamespaceTerminating(apiError(403, JSON.stringify(terminating)))).toBe(true);
    expect(isNamespaceTerminating(apiError(403, terminating))).toBe(true);
  });
  it('is false for an RBAC refusal, another status, a body that is not a Status, or a plain error', () => {
    expect(isNamespaceTerminating(apiError(403, JSON.stringify(rbac)))).toBe(false);
    expect(isNamespaceTerminating(apiError(409, JSON.stringify(terminating)))).toBe(false);
    expect(isNamespaceTerminating(apiError(403, 'forbidden'))).toBe(false);
    expect(isNamespaceTerminating(apiError(403, undefined))).toBe(false);
    expect(isNamespaceTerminating(Object.assign(new Error('x'), { statusCode: 403 }))).toBe(false);
    expect(isNamespaceTerminating(undefined)).toBe(false);
  });
});

describe('apiMessageOf', () => {
  it('reads the Status message from a raw or parsed body, else the code', () => {
    expect(apiMessageOf(apiError(403, JSON.stringify(rbac)))).toBe(`HTTP 403: ${rbac.message}`);
    expect(apiMessageOf(apiError(403, terminating))).toBe(`HTTP 403: ${terminating.message}`);
    expect(apiMessageOf(apiError(502, '<html>bad gateway</html>'))).toBe('HTTP 502');
    expect(apiMessageOf(new Error('socket hang up'))).toBe('socket hang up');
  });
});
