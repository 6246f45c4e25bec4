import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';
import { expectProblem, validIncident } from './support.ts';

async function admin(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

// A role allowed no connection gets SQLSTATE 53300 (too many connections), as a full server answers.
if (!serverUrl) console.warn('server-full test: SKIPPED (DATABASE_URL is not set)');

describe.skipIf(!serverUrl)('with PostgreSQL refusing every new connection (53300)', () => {
  const role = `its_full_${randomBytes(4).toString('hex')}`;
  let scratch: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    scratch = await openTestDatabase({ kind: 'server' });
    await admin(`create role ${role} login connection limit 0`);
    const url = new URL(scratch.url!);
    url.username = role;
    t = await startTestApp({
      configuredDatabase: true,
      workers: false,
      env: { DATABASE_URL: url.toString() },
    });
  });
  afterAll(async () => {
    await t?.cleanup();
    await scratch?.cleanup();
    await admin(`drop role if exists ${role}`);
  });

  it('answers 503 UNAVAILABLE with Retry-After, not 500', async () => {
    const org = freshOrg();
    const token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
    for (const request of [
      { method: 'GET' as const, url: `/api/orgs/${org}/incidents` },
      { method: 'POST' as const, url: `/api/orgs/${org}/incidents`, payload: validIncident },
    ]) {
      const response = await t.request({ ...request, token });
      expectProblem(response, 503, 'UNAVAILABLE');
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    }
  });
});

describe.skipIf(!serverUrl)(
  'with PostgreSQL refusing the LISTEN session (53300) but serving the pool',
  () => {
    const role = `its_one_${randomBytes(4).toString('hex')}`;
    let scratch: TestDatabase;
    let t: TestApp;
    beforeAll(async () => {
      scratch = await openTestDatabase({ kind: 'server' });
      // One connection for the role: the pool of one takes it, so the LISTEN session finds the server full.
      await admin(`create role ${role} login connection limit 1`);
      const grants = new pg.Client({ connectionString: scratch.url });
      await grants.connect();
      await grants.query(`grant all on all tables in schema public to ${role}`);
      await grants.query(`grant all on all sequences in schema public to ${role}`);
      await grants.end();
      const url = new URL(scratch.url!);
      url.username = role;
      t = await startTestApp({
        configuredDatabase: true,
        workers: false,
        env: { DATABASE_URL: url.toString(), DATABASE_POOL_SIZE: '1' },
      });
    });
    afterAll(async () => {
      await t?.cleanup();
      await scratch?.cleanup();
      await admin(`drop role if exists ${role}`);
    });

    it('answers a write 202 when it cannot wait for the read models, and counts why in the metrics', async () => {
      const org = freshOrg();
      const token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
      const response = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents`,
        payload: validIncident,
        token,
      });
      expect(response.statusCode).toBe(202);
      const metrics = await t.request({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/its_read_your_writes_unconfirmed_total\{reason="cannot_listen"\} 1/);
    });
  },
);
