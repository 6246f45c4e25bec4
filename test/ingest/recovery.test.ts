import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { EventStoreUnavailable, type EventStore } from '../../src/eventstore/port.ts';
import { freshOrg } from '../support/app.ts';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';
import { alertmanagerNotification } from './payloads.ts';

/**
 * The process dies between the alert group's append and the incident's: here the store refuses the
 * first incident append after the group's has landed (the one fault injected; the store is real).
 * The sender's retry finds the plan in the group's stream and lands it, once.
 */
describe(`an incident write lost after the group's append, on ${databaseLabel}`, () => {
  let database: TestDatabase;
  let runtime: Runtime;
  let app: FastifyInstance;
  let failNextIncidentAppend = false;
  const secret = randomBytes(32).toString('base64url');

  beforeAll(async () => {
    database = await openTestDatabase();
    const real = new PostgresEventStore(database.database);
    const store: EventStore = Object.assign(Object.create(real) as EventStore, {
      append: (...args: Parameters<EventStore['append']>) => {
        if (failNextIncidentAppend && args[0].startsWith('incident-')) {
          failNextIncidentAppend = false;
          return Promise.reject(new EventStoreUnavailable('injected: the process died here'));
        }
        return real.append(...args);
      },
    });
    runtime = await openRuntime(
      loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: secret,
        DATA_DIR: '/nonexistent-its-test-data',
        CONSISTENCY_TIMEOUT_MS: '30000',
      }),
      { database: database.database, store },
    );
    app = buildApp(runtime, { logger: false });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.close();
    await database?.cleanup();
  });

  it('answers 503, then the retry lands the planned write with every alert once', async () => {
    const org = freshOrg();
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(
      { sub: 'am', orgs: { [org]: ['MEMBER'] }, iat: now, exp: now + 300 },
      'HS256',
      secret,
    );
    const deliver = () =>
      app.inject({
        method: 'POST',
        url: `/api/orgs/${org}/alerts/alertmanager`,
        headers: { authorization: `Bearer ${token}` },
        payload: alertmanagerNotification('lost', [{ fingerprint: 'a1' }, { fingerprint: 'a2' }]),
      });
    failNextIncidentAppend = true;
    const lost = await deliver();
    expect(lost.statusCode).toBe(503);
    expect(lost.headers['retry-after']).toBeDefined();

    const retried = await deliver();
    expect(retried.statusCode, retried.body).toBe(200);
    const [incident] = retried.json<{ incidents: { incidentId: string; created: boolean }[] }>().incidents;
    const events = await runtime.store.readStream(incidentStreamName(org, incident!.incidentId));
    expect(events.map((e) => [e.type, e.data.fingerprint])).toEqual([
      ['INCIDENT_CREATED', undefined],
      ['INCIDENT_SIGNAL_INGESTED', 'a1'],
      ['INCIDENT_SIGNAL_INGESTED', 'a2'],
    ]);
    const again = await deliver();
    expect(again.json()).toEqual(retried.json());
  });
});
