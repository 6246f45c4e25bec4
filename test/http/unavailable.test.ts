import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { buildApp } from '../../src/http/app.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { testEventStoreKind } from '../support/eventstore.ts';
import { expectProblem, validIncident } from './support.ts';

/** Answers while a dependency is down must come fast: no request waits on a dead socket. */
const FAST_MS = 5_000;

async function timed<T>(work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const result = await work();
  expect(Date.now() - started).toBeLessThan(FAST_MS);
  return result;
}

describe('with PostgreSQL unreachable (a dead port)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Port 1: nothing listens, so every connection attempt is refused at once.
    t = await startTestApp({
      configuredDatabase: true,
      workers: false,
      env: { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/its' },
    });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('fails fast with 503 UNAVAILABLE and Retry-After, on reads, writes and the event feeds', async () => {
    const org = freshOrg();
    const token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
    const requests = [
      { method: 'GET' as const, url: `/api/orgs/${org}/incidents` },
      { method: 'GET' as const, url: `/api/orgs/${org}/incidents/inc_0123456789` },
      { method: 'POST' as const, url: `/api/orgs/${org}/incidents`, payload: validIncident },
      {
        method: 'POST' as const,
        url: `/api/orgs/${org}/incidents/inc_0123456789/status`,
        payload: { newStatus: 'RESOLVED' },
      },
      { method: 'GET' as const, url: `/api/orgs/${org}/incidents/inc_0123456789/events` },
      { method: 'GET' as const, url: `/api/orgs/${org}/events` },
    ];
    for (const request of requests) {
      const response = await timed(() => t.request({ ...request, token }));
      expectProblem(response, 503, 'UNAVAILABLE');
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    }
  });

  it('reports not ready (503) while staying live', async () => {
    const ready = await timed(() => t.request({ method: 'GET', url: '/health/ready' }));
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({
      status: 'unavailable',
      database: { status: 'down' },
      eventStore: { status: 'down' },
    });
    expect((await t.request({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
  });
});

describe(`without projection workers, then without a database (${databaseLabel})`, () => {
  it('answers 202 when the read models do not catch up in time, finishes in-flight requests on shutdown, and answers 503 (not 500) once the database is gone', async () => {
    const t = await startTestApp({ workers: false, env: { CONSISTENCY_TIMEOUT_MS: '200' } });
    const org = freshOrg();
    const token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
    try {
      // Nothing projects here: the write lands, but the wait for its projection times out.
      const created = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents`,
        token,
        payload: validIncident,
      });
      expect(created.statusCode).toBe(202);
      expect(created.json()).toEqual({
        incidentId: expect.stringMatching(/^inc_/),
        version: 0,
        position: expect.any(String),
      });
      expect(created.headers.etag).toBe('"0"');
      expect(created.headers.location).toBe(`/api/orgs/${org}/incidents/${created.json().incidentId}`);
      const incidentUrl = `/api/orgs/${org}/incidents/${created.json().incidentId}`;

      // Graceful shutdown over a real socket: a write in flight (waiting on its projection) still completes.
      const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const inFlight = fetch(`${address}${incidentUrl}/tags`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tag: 'in-flight' }),
      });
      // Closed once the write has landed and waits on its projection, not after a guess at how long that takes.
      const stream = incidentStreamName(org, created.json<{ incidentId: string }>().incidentId);
      while ((await t.runtime.store.readStream(stream)).length < 2)
        await new Promise((resolve) => setTimeout(resolve, 10));
      const closed = t.app.close();
      const answer = await inFlight;
      expect(answer.status).toBe(202);
      expect(await answer.json()).toMatchObject({ version: 1 });
      await closed;
      await expect(fetch(`${address}/health/live`)).rejects.toThrow();

      // The same runtime behind a new app, once the database is gone.
      const app = buildApp(t.runtime, { logger: false });
      try {
        await t.database.database.close();
        const inject = (options: {
          method: 'GET' | 'POST';
          url: string;
          payload?: Record<string, unknown>;
        }) => timed(() => app.inject({ ...options, headers: { authorization: `Bearer ${token}` } }));
        expectProblem(await inject({ method: 'GET', url: `/api/orgs/${org}/incidents` }), 503, 'UNAVAILABLE');
        const late = await inject({ method: 'POST', url: `${incidentUrl}/tags`, payload: { tag: 'late' } });
        // With the events in EventStoreDB a write from this process's cached view needs nothing from
        // PostgreSQL: it lands and is accepted while the read models wait. On PostgreSQL it cannot land.
        if (testEventStoreKind === 'eventstoredb') expect(late.statusCode, late.body).toBe(202);
        else expectProblem(late, 503, 'UNAVAILABLE');
        expect((await inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(503);
      } finally {
        await app.close();
      }
    } finally {
      // The database is already closed: on PGlite closing it again fails, which is fine here.
      await t.cleanup().catch(() => {});
    }
  });
});
