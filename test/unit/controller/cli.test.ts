import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseAddress } from '../../../src/controller/http.js';

const capture = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
};

describe('melangectl controller (flags)', () => {
  it('prints its usage', async () => {
    const c = capture();
    expect(await main(['controller', '--help'], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/--leader-elect/);
    expect(c.out.join('\n')).toMatch(/--solve-deadline/);
    expect(c.out.join('\n')).toMatch(/--prometheus-url URL/);
    expect(c.out.join('\n')).toMatch(/--router-image IMAGE/);
  });

  it.each([
    [['--leader-elect=maybe'], /--leader-elect: must be true or false/],
    [['--log-level=loud'], /--log-level/],
    [['--workers=0'], /--workers/],
    [['--solve-deadline=10'], /--solve-deadline: "10" is not a duration/],
    [['--health-addr=nowhere'], /must be host:port/],
    [['--retry-period=20s'], /retry-period < --renew-deadline < --lease-duration/],
    [['--bogus'], /Unknown option/],
    [['--prometheus-url=prometheus:9090'], /--prometheus-url: "prometheus:9090" is not an http\(s\) URL/],
    [['--prometheus-url=ftp://p:9090'], /--prometheus-url/],
  ])('rejects %j with exit code 2 before touching any cluster', async (args, msg) => {
    const c = capture();
    expect(await main(['controller', ...args], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(msg);
  });

  it('parses listen addresses', () => {
    expect(parseAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseAddress(':8081')).toEqual({ host: '0.0.0.0', port: 8081 });
    expect(parseAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseAddress('0')).toBeUndefined();
  });
});
