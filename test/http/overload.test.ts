import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg } from '../support/app.ts';
import { openPostgres, type Database } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import {
  postgresBinDir,
  startDedicatedPostgres,
  type DedicatedPostgres,
} from '../support/postgres-instance.ts';
import { expectProblem, validIncident } from './support.ts';

// PGlite has no statement_timeout and runs one session. A server of the test's own: an open transaction
// holds back the horizon of every database on its server, which would slow everyone's tests on a shared one.
const hasBinaries = postgresBinDir() !== null;
if (!hasBinaries) console.warn('skipped: no PostgreSQL server binaries (initdb, pg_ctl) on this machine');
describe.skipIf(!hasBinaries)('a PostgreSQL server under load', () => {
  let server: DedicatedPostgres;
  let database: Database;
  let runtime: Runtime;
  let app: ReturnType<typeof buildApp>;
  const secret = 'overload-test-secret-overload-test-secret';
  beforeAll(async () => {
    server = await startDedicatedPostgres();
    database = openPostgres(server.url, { statementTimeoutMs: 500 });
    await migrateToLatest(database.db);
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', JWT_SECRET: secret });
    runtime = await openRuntime(config, { database });
    app = buildApp(runtime, { logger: false });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.close();
    await database?.close();
    await server?.destroy();
  });

  it('answers a query cancelled by statement_timeout (57014) with 503 UNAVAILABLE and Retry-After, not 500', async () => {
    const org = freshOrg();
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(
      { sub: 'a', orgs: { [org]: ['ORG_ADMIN'] }, iat: now, exp: now + 300 },
      'HS256',
      secret,
    );
    const authorization = `Bearer ${token}`;
    const created = await app.inject({
      method: 'POST',
      url: `/api/orgs/${org}/incidents`,
      headers: { authorization },
      payload: validIncident,
    });
    expect(created.statusCode).toBe(201);
    const id = created.json<{ incidentId: string }>().incidentId;

    // Another session holds the table: the details query waits on the lock until statement_timeout fires.
    const blocker = new pg.Client({ connectionString: server.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table incident_signals in access exclusive mode');
      const response = await app.inject({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${id}`,
        headers: { authorization },
      });
      expectProblem(response, 503, 'UNAVAILABLE');
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await blocker.query('rollback');
      await blocker.end();
    }
  });

  it('reports events committed behind an open transaction in readiness and metrics', async () => {
    const org = freshOrg();
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(
      { sub: 'a', orgs: { [org]: ['ORG_ADMIN'] }, iat: now, exp: now + 300 },
      'HS256',
      secret,
    );
    // A transaction with an id, left open: every event committed after it waits behind the horizon.
    const blocker = new pg.Client({ connectionString: server.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('select pg_current_xact_id()');
      const created = await app.inject({
        method: 'POST',
        url: `/api/orgs/${org}/incidents`,
        headers: { authorization: `Bearer ${token}`, prefer: 'respond-async' },
        payload: validIncident,
      });
      expect(created.statusCode).toBe(202);
      const ready = (await app.inject({ method: 'GET', url: '/health/ready' })).json<{
        heldBack?: { events: number; seconds: number };
      }>();
      expect(ready.heldBack?.events).toBeGreaterThanOrEqual(1);
      expect(ready.heldBack?.seconds).toBeGreaterThanOrEqual(0);
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      const gauge = /^its_events_held_back (\d+)/m.exec(metrics);
      expect(Number(gauge?.[1])).toBeGreaterThanOrEqual(1);
      expect(metrics).toMatch(/^its_events_held_back_seconds /m);
    } finally {
      await blocker.query('rollback');
      await blocker.end();
    }
  });
});
