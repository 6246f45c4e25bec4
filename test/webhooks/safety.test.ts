import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemResolver, type ResolvedAddress } from '../../src/webhooks/address-guard.ts';
import { expectProblem } from '../http/support.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { FAST, admin, makeEvents, register } from './support.ts';

/** Names the tests control; every other name goes to the system resolver (`localhost` via /etc/hosts). */
const names = new Map<string, ResolvedAddress[]>([
  ['hooks.example.test', [{ address: '93.184.216.34', family: 4 }]],
  ['rebind.example.test', [{ address: '93.184.216.34', family: 4 }]],
  [
    'mixed.example.test',
    [
      { address: '93.184.216.34', family: 4 },
      { address: '10.0.0.7', family: 4 },
    ],
  ],
]);

describe('the address guard, without WEBHOOK_ALLOW_PRIVATE', () => {
  let t: TestApp;
  let server: Server;
  let connections = 0;
  beforeAll(async () => {
    t = await startTestApp({
      webhooks: { ...FAST, resolver: async (host) => names.get(host) ?? systemResolver(host) },
    });
    // Counts TCP connections: a refused delivery must not even connect.
    server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await t?.cleanup();
    await new Promise((resolve) => server?.close(resolve));
  });

  it.each([
    ['http://127.0.0.1:8080/hook', 'must be an https URL'],
    ['http://hooks.example.test/hook', 'must be an https URL'],
    ['https://127.0.0.1/hook', '127.0.0.1 is not a public address'],
    ['https://127.1.2.3/hook', 'is not a public address'],
    ['https://[::1]/hook', '::1 is not a public address'],
    ['https://10.20.30.40/hook', 'is not a public address'],
    ['https://172.16.0.1/hook', 'is not a public address'],
    ['https://192.168.1.1/hook', 'is not a public address'],
    ['https://169.254.169.254/latest/meta-data', 'is not a public address'],
    ['https://[fd12:3456::1]/hook', 'is not a public address'],
    ['https://[fe80::1]/hook', 'is not a public address'],
    ['https://[::ffff:127.0.0.1]/hook', 'is not a public address'],
    ['https://0.0.0.0/hook', 'is not a public address'],
    ['https://localhost/hook', 'localhost resolves to'],
    ['https://mixed.example.test/hook', 'resolves to 10.0.0.7'],
    ['ftp://hooks.example.test/hook', 'must be an https URL'],
    ['not a url', 'is not a URL'],
  ])('refuses to register %s with 400, and registers nothing', async (url, reason) => {
    const org = freshOrg();
    const response = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/webhooks`,
      token: admin(t, org),
      payload: { url },
    });
    const problem = expectProblem(response, 400, 'VALIDATION_FAILED');
    expect(problem.errors).toEqual([{ path: 'url', message: expect.stringContaining(reason) }]);
    const list = await t.request({ method: 'GET', url: `/api/orgs/${org}/webhooks`, token: admin(t, org) });
    expect(list.json()).toEqual({ webhooks: [] });
  });

  it('registers a public https URL, and refuses to change it to a private one', async () => {
    const org = freshOrg();
    const { id } = await register(t, org, 'https://hooks.example.test/hook');
    const patched = await t.request({
      method: 'PATCH',
      url: `/api/orgs/${org}/webhooks/${id}`,
      token: admin(t, org),
      payload: { url: 'https://169.254.169.254/' },
    });
    expectProblem(patched, 400, 'VALIDATION_FAILED');
    const read = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/webhooks/${id}`,
      token: admin(t, org),
    });
    expect(read.json()).toMatchObject({ url: 'https://hooks.example.test/hook' });
  });

  it('never connects when the name resolves to a private address at delivery time', async () => {
    const org = freshOrg();
    const port = (server.address() as AddressInfo).port;
    const { id } = await register(t, org, `https://rebind.example.test:${port}/hook`);
    // The name now points at loopback, where a server listens (DNS rebinding).
    names.set('rebind.example.test', [{ address: '127.0.0.1', family: 4 }]);
    await makeEvents(t, org, 1);
    const firstAttempt = async () =>
      (
        await t.request({
          method: 'GET',
          url: `/api/orgs/${org}/webhooks/${id}/deliveries?limit=100`,
          token: admin(t, org),
        })
      )
        .json<{ deliveries: { attempts: { error?: string }[] }[] }>()
        .deliveries.at(-1)?.attempts[0];
    await expect.poll(firstAttempt, { timeout: 10_000 }).toEqual({
      at: expect.any(String),
      durationMs: expect.any(Number),
      error: 'refused to connect to 127.0.0.1: not a public address',
    });
    expect(connections).toBe(0);
    const read = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/webhooks/${id}`,
      token: admin(t, org),
    });
    expect(read.json()).toMatchObject({
      state: 'failing',
      lastError: 'refused to connect to 127.0.0.1: not a public address',
    });
  });
});
