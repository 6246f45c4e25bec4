import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg } from '../support/app.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import { validIncident } from '../http/support.ts';
import { observedStore, openLive, type LiveClient, type StoreUse } from './support.ts';

const STREAMS = 30;

/** The API of one process on a socket, and a token for a fresh org. */
async function serveApi(runtime: Runtime, secret: string) {
  const app = buildApp(runtime, { logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const org = freshOrg();
  const now = Math.floor(Date.now() / 1000);
  const token = signToken(
    { sub: 'lena', orgs: { [org]: ['SRE_LEAD'] }, iat: now, exp: now + 300 },
    'HS256',
    secret,
  );
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/orgs/${org}`;
  const declare = async () => {
    const response = await app.inject({
      method: 'POST',
      url: `/api/orgs/${org}/incidents`,
      headers: { authorization: `Bearer ${token}` },
      payload: validIncident,
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json<{ incidentId: string; position: string }>();
  };
  return { app, org, token, base, declare };
}

/** `STREAMS` clients over the three routes, each resuming from the start of what it shows. */
function openStreams(base: string, token: string, incidentId: string): LiveClient[] {
  const clients: LiveClient[] = [];
  for (let i = 0; i < STREAMS; i++)
    clients.push(
      openLive(
        i % 3 === 0
          ? `${base}/incidents/${incidentId}/stream?fromVersion=0`
          : i % 3 === 1
            ? `${base}/incidents/stream?fromPosition=0-0`
            : `${base}/events/stream?fromPosition=0-0`,
        token,
      ),
    );
  return clients;
}

const config = (secret: string) =>
  loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', JWT_SECRET: secret, STREAM_MAX_PER_TOKEN: '100' });

describe(`one store subscription per process feeds every stream (${databaseLabel})`, () => {
  const scope = useTestStore();
  const secret = randomBytes(32).toString('base64url');

  describe('a process without workers (--role api)', () => {
    let runtime: Runtime;
    let projector: Runtime;
    let app: FastifyInstance | undefined;
    const use: StoreUse = { subscriptions: [], logReads: [] };
    beforeAll(async () => {
      const store = observedStore(scope.store, use);
      // The API process (counted) and a projector process apart, as `--role api` and `--role projector`.
      runtime = await openRuntime(config(secret), { database: scope.test.database, store, workers: false });
      projector = await openRuntime(config(secret), { database: scope.test.database, store: scope.store });
    });
    afterAll(async () => {
      await app?.close();
      await runtime?.close();
      await projector?.close();
    });

    it(`${STREAMS} open streams cost the store one subscription`, async () => {
      const api = await serveApi(runtime, secret);
      app = api.app;
      const { incidentId } = await api.declare();
      const clients = openStreams(api.base, api.token, incidentId);
      try {
        await Promise.all(clients.map((client) => client.received(1)));
        expect(use.subscriptions).toEqual(['incident-']);
      } finally {
        for (const client of clients) client.close();
      }
    });
  });

  describe('a process with workers (--role all)', () => {
    let runtime: Runtime;
    let app: FastifyInstance | undefined;
    const use: StoreUse = { subscriptions: [], logReads: [] };
    beforeAll(async () => {
      const store = observedStore(scope.store, use);
      runtime = await openRuntime(config(secret), { database: scope.test.database, store });
    });
    afterAll(async () => {
      await app?.close();
      await runtime?.close();
    });

    it(`${STREAMS} open streams are fed by the projection daemon's commits, with no subscription of their own`, async () => {
      const api = await serveApi(runtime, secret);
      app = api.app;
      // Answered once every projection includes it: the daemon leads them all and has subscribed.
      const { incidentId, position } = await api.declare();
      expect(await runtime.progress.waitFor(position, 10_000)).toBe(true);
      const daemonSubscriptions = use.subscriptions.length;
      expect(daemonSubscriptions).toBeGreaterThan(0);
      const clients = openStreams(api.base, api.token, incidentId);
      try {
        await Promise.all(clients.map((client) => client.received(1)));
        // Live after the backlog: a second incident reaches the org streams, from the daemon's batch
        // in memory, not from the store.
        const reads = use.logReads.length;
        const second = await api.declare();
        await Promise.all(clients.map((client, i) => client.received(i % 3 === 0 ? 1 : 2)));
        for (const [i, client] of clients.entries())
          expect(client.messages.map((message) => message.id)).toEqual(
            i % 3 === 0 ? [position] : [position, second.position],
          );
        expect(use.subscriptions).toHaveLength(daemonSubscriptions);
        expect(use.logReads).toHaveLength(reads);
      } finally {
        for (const client of clients) client.close();
      }
    });
  });
});
