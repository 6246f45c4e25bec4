/**
 * The API with its events on the EventStoreDB test server while that server misbehaves: outages are
 * 503 with Retry-After and heal by themselves, a crafted position is 400, and a dropped
 * subscription costs the read models nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import type { EventStoreDbTestServer } from '../support/eventstoredb-server/index.ts';
import { validIncident } from '../http/support.ts';

describe('the API on a misbehaving EventStoreDB (test server)', () => {
  let t: TestApp;
  let server: EventStoreDbTestServer;
  beforeAll(async () => {
    t = await startTestApp({ eventStore: 'eventstoredb' });
    if (!t.database.eventStoreServer) throw new Error('this suite needs the test server, not EVENTSTORE_URL');
    server = t.database.eventStoreServer;
  });
  afterEach(() => {
    server.faults.unavailable = false;
    server.faults.batchAppendNotReady = 0;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const lead = (orgId: string) => t.token({ sub: 'lena', orgs: { [orgId]: ['SRE_LEAD'] } });
  const create = (orgId: string) =>
    t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/incidents`,
      token: lead(orgId),
      payload: validIncident,
    });

  it('answers "Server Is Not Ready" with 503 and Retry-After, and the retry lands', async () => {
    const org = freshOrg();
    server.faults.batchAppendNotReady = 1;
    const refused = await create(org);
    expect(refused.statusCode, refused.body).toBe(503);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect((await create(org)).statusCode).toBe(201);
  });

  it('answers UNAVAILABLE with 503 on writes and reads, and serves again once the node is back', async () => {
    const org = freshOrg();
    const { incidentId } = (await create(org)).json() as { incidentId: string };
    server.faults.unavailable = true;
    expect((await create(org)).statusCode).toBe(503);
    const feed = await t.request({ method: 'GET', url: `/api/orgs/${org}/events`, token: lead(org) });
    expect(feed.statusCode, feed.body).toBe(503);
    const stream = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incidentId}/events`,
      token: lead(org),
    });
    expect(stream.statusCode).toBe(503);
    server.faults.unavailable = false;
    expect((await create(org)).statusCode).toBe(201);
  });

  it('answers a crafted fromPosition the server never issued with 400, not 500', async () => {
    const org = freshOrg();
    await create(org);
    const response = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/events?fromPosition=1-1`,
      token: lead(org),
    });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('keeps the read models current across dropped subscriptions: a write after the drop is read back at once', async () => {
    const org = freshOrg();
    expect((await create(org)).statusCode).toBe(201);
    server.dropSubscriptions();
    const created = await create(org);
    expect(created.statusCode).toBe(201);
    const { incidentId } = created.json() as { incidentId: string };
    const details = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incidentId}`,
      token: lead(org),
    });
    expect(details.statusCode).toBe(200);
  });
});
