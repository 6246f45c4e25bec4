import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import type { SubscribeOptions } from '../../src/eventstore/port.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg } from '../support/app.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import { validIncident } from '../http/support.ts';
import { openLive, type LiveClient } from './support.ts';

const STREAMS = 30;

describe(`one store subscription per process feeds every stream (${databaseLabel})`, () => {
  const scope = useTestStore();
  let runtime: Runtime;
  let projector: Runtime;
  let app: FastifyInstance;
  const subscriptions: (string | undefined)[] = [];
  const secret = randomBytes(32).toString('base64url');
  beforeAll(async () => {
    // The real store, counting the subscriptions opened on it.
    const store = new Proxy(scope.store, {
      get(target, property) {
        if (property === 'subscribe')
          return (options: SubscribeOptions) => {
            subscriptions.push(options.streamPrefix);
            return target.subscribe(options);
          };
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      JWT_SECRET: secret,
      STREAM_MAX_PER_TOKEN: '100',
    });
    // The API process (counted) and a projector process apart, as `--role api` and `--role projector`.
    runtime = await openRuntime(config, { database: scope.test.database, store, workers: false });
    projector = await openRuntime(config, { database: scope.test.database, store: scope.store });
    app = buildApp(runtime, { logger: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.close();
    await projector?.close();
  });

  it(`${STREAMS} open streams cost the store one subscription`, async () => {
    const org = freshOrg();
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(
      { sub: 'lena', orgs: { [org]: ['SRE_LEAD'] }, iat: now, exp: now + 300 },
      'HS256',
      secret,
    );
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/orgs/${org}`;
    const response = await app.inject({
      method: 'POST',
      url: `/api/orgs/${org}/incidents`,
      headers: { authorization: `Bearer ${token}` },
      payload: validIncident,
    });
    const { incidentId } = response.json<{ incidentId: string }>();
    const clients: LiveClient[] = [];
    try {
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
      await Promise.all(clients.map((client) => client.received(1)));
      expect(subscriptions).toEqual(['incident-']);
    } finally {
      for (const client of clients) client.close();
    }
  });
});
