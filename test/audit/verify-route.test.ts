import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnchainedAppend } from '../../src/audit/append.ts';
import { verifyChain } from '../../src/audit/chain.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import type { EventToAppend, RecordedEvent } from '../../src/eventstore/port.ts';
import { databaseLabel } from '../support/database.ts';
import { openTestEventStore, type TestEventStore } from '../support/eventstore.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { expectProblem, validIncident } from '../http/support.ts';
import { TAMPER_CASES, copy, incidentOfFiveEvents as fiveEvents } from './tamper-cases.ts';

describe(`GET …/incidents/:incidentId/verify on ${databaseLabel}`, () => {
  let t: TestApp;
  let org: string;
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp();
    org = freshOrg('audit');
    admin = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const incidentOfFiveEvents = () => fiveEvents(t, org, admin);

  const verify = (incidentId: string, token = admin, orgId = org) =>
    t.request({ method: 'GET', url: `/api/orgs/${orgId}/incidents/${incidentId}/verify`, token });

  it('answers AUDIT.md’s shape for an untouched stream: valid, head, read model matching', async () => {
    const incidentId = await incidentOfFiveEvents();
    const response = await verify(incidentId);
    expect(response.statusCode, response.body).toBe(200);
    const events = await t.runtime.store.readStream(incidentStreamName(org, incidentId));
    expect(response.json()).toEqual({
      streamName: incidentStreamName(org, incidentId),
      events: 5,
      unchained: 0,
      valid: true,
      headVersion: 4,
      headHash: events[4]!.metadata.hash,
      firstInvalidVersion: null,
      reason: null,
      readModel: { version: 4, matches: true },
    });
    expect(events[4]!.metadata.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('lets ORG_ADMIN, SRE_LEAD and AUDITOR verify; MEMBER and ONCALL_ENGINEER get 403', async () => {
    const incidentId = await incidentOfFiveEvents();
    for (const role of ['ORG_ADMIN', 'SRE_LEAD', 'AUDITOR']) {
      const response = await verify(incidentId, t.token({ orgs: { [org]: [role] } }));
      expect(response.statusCode, role).toBe(200);
    }
    for (const role of ['MEMBER', 'ONCALL_ENGINEER']) {
      expectProblem(await verify(incidentId, t.token({ orgs: { [org]: [role] } })), 403, 'FORBIDDEN');
    }
  });

  it('answers 404 for another org’s incident and for one that never existed; 400 for a bad id', async () => {
    const incidentId = await incidentOfFiveEvents();
    const other = freshOrg('other');
    expectProblem(
      await verify(incidentId, t.token({ orgs: { [other]: ['AUDITOR'] } }), other),
      404,
      'NOT_FOUND',
    );
    expectProblem(await verify('inc_nothing_here'), 404, 'NOT_FOUND');
    expectProblem(await verify('not-an-id'), 400, 'VALIDATION_FAILED');
  });

  it('counts the events written before the chain existed, and chains the next write onto them', async () => {
    const incidentId = `inc_legacy${randomUUID().slice(0, 8)}`;
    const streamName = incidentStreamName(org, incidentId);
    // The adapter itself, under the runtime's guard: what a store from before the chain holds.
    const legacy = new PostgresEventStore(t.database.database);
    const metadata = { orgId: org, incidentId, actor: { type: 'USER', ref: 'old' }, correlationId: 'old' };
    await legacy.append(
      streamName,
      [
        {
          eventId: randomUUID(),
          type: 'INCIDENT_CREATED',
          data: { ...validIncident, tags: [], correlationKeys: [] },
          metadata: { ...metadata, occurredAt: '2026-01-01T00:00:00.000Z', schemaVersion: 1 },
        },
        {
          eventId: randomUUID(),
          type: 'INCIDENT_TAG_ADDED',
          data: { tag: 'legacy' },
          metadata: { ...metadata, occurredAt: '2026-01-01T00:01:00.000Z', schemaVersion: 1 },
        },
      ],
      'no_stream',
    );
    const tagged = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents/${incidentId}/tags`,
      payload: { tag: 'db' },
      token: admin,
    });
    expect(tagged.statusCode, tagged.body).toBe(200);
    expect((await verify(incidentId)).json()).toMatchObject({
      events: 3,
      unchained: 2,
      valid: true,
      headVersion: 2,
      readModel: { version: 2, matches: true },
    });
  });

  it('refuses, through the runtime, an append whose events carry no hash, and appends nothing', async () => {
    const streamName = incidentStreamName(org, `inc_unhashed${randomUUID().slice(0, 8)}`);
    const event = { eventId: randomUUID(), type: 'INCIDENT_TAG_ADDED', data: { tag: 'x' }, metadata: {} };
    await expect(t.runtime.store.append(streamName, [event], 'no_stream')).rejects.toBeInstanceOf(
      UnchainedAppend,
    );
    expect(await t.runtime.store.readStream(streamName)).toEqual([]);
  });

  it('is documented in the OpenAPI document with its answer’s schema', async () => {
    const document = (await t.request({ method: 'GET', url: '/openapi.json' })).json();
    const operation = document.paths['/api/orgs/{orgId}/incidents/{incidentId}/verify'].get;
    expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['200', '403', '404']));
    expect(Object.keys(document.components.schemas.StreamVerification.properties)).toEqual([
      'streamName',
      'events',
      'unchained',
      'valid',
      'headVersion',
      'headHash',
      'firstInvalidVersion',
      'reason',
      'readModel',
    ]);
  });

  describe('tampering straight in PostgreSQL', () => {
    for (const tamper of TAMPER_CASES) {
      it(`finds ${tamper.name} at version ${tamper.firstInvalidVersion}`, async () => {
        const incidentId = await incidentOfFiveEvents();
        const streamName = incidentStreamName(org, incidentId);
        await tamper.inPostgres(t.database.database.db, streamName);
        const response = await verify(incidentId);
        expect(response.statusCode, response.body).toBe(200);
        expect(response.json()).toMatchObject({
          streamName,
          valid: false,
          firstInvalidVersion: tamper.firstInvalidVersion,
          reason: expect.stringMatching(tamper.reason),
          readModel: { version: 4, matches: tamper.readModelMatches },
        });
      });
    }

    it('reports a stream whose every event was deleted, while the read model still has the incident', async () => {
      const incidentId = await incidentOfFiveEvents();
      await t.database.database.db
        .deleteFrom('its_events')
        .where('stream_name', '=', incidentStreamName(org, incidentId))
        .execute();
      expect((await verify(incidentId)).json()).toMatchObject({
        events: 0,
        valid: false,
        headVersion: -1,
        headHash: null,
        firstInvalidVersion: 0,
        readModel: { version: 4, matches: false },
      });
    });
  });

  describe('tampered copies appended to a fresh stream on EventStoreDB', () => {
    // EventStoreDB cannot edit a stored event: an attacker with store access appends altered copies
    // through the adapter itself, past the runtime's hash guard, and hands that stream over.
    let eventStoreDb: TestEventStore;
    let events: RecordedEvent[];
    beforeAll(async () => {
      eventStoreDb = await openTestEventStore(t.database.database, 'eventstoredb');
      events = await t.runtime.store.readStream(incidentStreamName(org, await incidentOfFiveEvents()));
    });
    afterAll(async () => {
      await eventStoreDb?.close();
    });

    const appendAndReadBack = async (copies: EventToAppend[]) => {
      const streamName = incidentStreamName(org, `inc_copy${randomUUID().slice(0, 8)}`);
      await eventStoreDb.store.append(streamName, copies, 'no_stream');
      return eventStoreDb.store.readStream(streamName);
    };

    it('reads untouched copies back as a valid chain', async () => {
      const readBack = await appendAndReadBack(events.map(copy));
      expect(verifyChain(readBack, 4)).toMatchObject({
        valid: true,
        headVersion: 4,
        headHash: events[4]!.metadata.hash,
      });
    });

    for (const tamper of TAMPER_CASES) {
      it(`finds ${tamper.name} at version ${tamper.firstInvalidVersion}`, async () => {
        const readBack = await appendAndReadBack(tamper.copies(events));
        expect(verifyChain(readBack, 4)).toMatchObject({
          valid: false,
          firstInvalidVersion: tamper.firstInvalidVersion,
          reason: expect.stringMatching(tamper.copiesReason ?? tamper.reason),
        });
      });
    }
  });
});
