import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { webhookDb } from '../../src/webhooks/schema.ts';
import { expectProblem } from '../http/support.ts';
import { freshOrg } from '../support/app.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';
import { Receiver } from './receiver.ts';
import { FAST } from './support.ts';

const ROLES = ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER', 'AUDITOR'] as const;
const MANAGERS = new Set(['ORG_ADMIN', 'SRE_LEAD']);

describe('webhook routes: roles, tenancy, validation, and the secret', () => {
  const jwtSecret = 'a-test-secret-of-at-least-32-bytes!!';
  const lines: string[] = [];
  let database: TestDatabase;
  let runtime: Runtime;
  let app: ReturnType<typeof buildApp>;
  const receiver = new Receiver();
  const token = (org: string, role: string) => {
    const now = Math.floor(Date.now() / 1000);
    return signToken(
      { sub: `${role.toLowerCase()}-user`, orgs: { [org]: [role] }, iat: now, exp: now + 300 },
      'HS256',
      jwtSecret,
    );
  };
  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, bearer: string, payload?: object) =>
    app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${bearer}` },
      ...(payload ? { payload } : {}),
    });

  beforeAll(async () => {
    await receiver.start();
    database = await openTestDatabase();
    const config = loadConfig({
      NODE_ENV: 'test',
      JWT_SECRET: jwtSecret,
      DATA_DIR: '/nonexistent-its-test-data',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_SECRET_KEY: 'a key for the tests',
    });
    // Every line the service logs, at the most talkative level.
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    runtime = await openRuntime(config, { database: database.database, logger, webhooks: FAST });
    app = buildApp(runtime, { loggerInstance: logger });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.close();
    await database?.cleanup();
    await receiver.stop();
  });

  it('lets ORG_ADMIN and SRE_LEAD manage, every role read, and keeps the secret out of reads, rows and logs', async () => {
    const org = freshOrg();
    const secrets: string[] = [];
    for (const role of ROLES) {
      const created = await call('POST', `/api/orgs/${org}/webhooks`, token(org, role), {
        url: receiver.url,
      });
      if (!MANAGERS.has(role)) {
        expectProblem(created, 403, 'FORBIDDEN');
        continue;
      }
      expect(created.statusCode, created.body).toBe(201);
      expect(created.headers.location).toBe(`/api/orgs/${org}/webhooks/${created.json<{ id: string }>().id}`);
      secrets.push(created.json<{ secret: string }>().secret);
    }
    expect(secrets).toHaveLength(2);
    const [hook] = (await call('GET', `/api/orgs/${org}/webhooks`, token(org, 'AUDITOR'))).json<{
      webhooks: { id: string }[];
    }>().webhooks;
    const id = hook!.id;
    const rotated = await call(
      'POST',
      `/api/orgs/${org}/webhooks/${id}/rotate-secret`,
      token(org, 'SRE_LEAD'),
    );
    expect(rotated.statusCode).toBe(200);
    secrets.push(rotated.json<{ secret: string }>().secret);
    receiver.secrets = secrets;

    // An event, so that deliveries exist and the worker has logged what it does.
    const incident = await call('POST', `/api/orgs/${org}/incidents`, token(org, 'ORG_ADMIN'), {
      projectId: 'payments',
      title: 'Checkout latency above SLO',
      serviceName: 'checkout',
      severity: 'SEV2',
      environment: 'production',
    });
    // 202 when the read models are slow under load; the event is appended either way.
    expect([201, 202]).toContain(incident.statusCode);
    await receiver.until((r) => r.length >= 2);

    for (const role of ROLES) {
      const bearer = token(org, role);
      for (const url of [
        `/api/orgs/${org}/webhooks`,
        `/api/orgs/${org}/webhooks/${id}`,
        `/api/orgs/${org}/webhooks/${id}/deliveries`,
      ]) {
        const read = await call('GET', url, bearer);
        expect(read.statusCode, `${role} GET ${url}`).toBe(200);
        for (const secret of secrets) expect(read.body).not.toContain(secret.slice(6));
        expect(read.body).not.toContain('whsec_');
      }
      const deliveryId = (await call('GET', `/api/orgs/${org}/webhooks/${id}/deliveries`, bearer)).json<{
        deliveries: { id: string }[];
      }>().deliveries[0]!.id;
      const writes = [
        ['PATCH', `/api/orgs/${org}/webhooks/${id}`, { description: `by ${role}` }],
        ['POST', `/api/orgs/${org}/webhooks/${id}/deliveries/${deliveryId}/redeliver`, undefined],
        ['POST', `/api/orgs/${org}/webhooks/${id}/replay`, { fromPosition: '0-0' }],
      ] as const;
      for (const [method, url, payload] of writes) {
        const response = await call(method, url, bearer, payload);
        if (MANAGERS.has(role)) expect(response.statusCode, `${role} ${method} ${url}`).toBeLessThan(300);
        else expectProblem(response, 403, 'FORBIDDEN');
      }
      if (!MANAGERS.has(role)) {
        expectProblem(
          await call('POST', `/api/orgs/${org}/webhooks/${id}/rotate-secret`, bearer),
          403,
          'FORBIDDEN',
        );
        expectProblem(await call('DELETE', `/api/orgs/${org}/webhooks/${id}`, bearer), 403, 'FORBIDDEN');
      }
    }

    // At rest the secrets are sealed; in the logs they never appear.
    const rows = await webhookDb(database.database.db)
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('org_id', '=', org)
      .execute();
    const stored = JSON.stringify(rows);
    for (const secret of secrets) expect(stored).not.toContain(secret.slice(6));
    expect(rows.every((row) => row.secret.startsWith('sealed:v1:'))).toBe(true);
    expect(lines.length).toBeGreaterThan(10);
    for (const secret of secrets) expect(lines.join('')).not.toContain(secret.slice(6));
    // And yet they sign: the receiver verified every delivery.
    expect(receiver.rejected).toEqual([]);

    await expect
      .poll(async () => (await app.inject({ method: 'GET', url: '/metrics' })).body)
      .toMatch(/its_webhook_deliveries_total\{outcome="succeeded"\} [1-9]/);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/its_webhook_attempt_duration_seconds_count [1-9]/);
    expect(metrics).toContain('# TYPE its_webhook_backlog gauge');
  });

  it("shows no org another org's endpoints or deliveries", async () => {
    const mine = freshOrg();
    const theirs = freshOrg();
    const created = await call('POST', `/api/orgs/${theirs}/webhooks`, token(theirs, 'ORG_ADMIN'), {
      url: receiver.url,
    });
    const id = created.json<{ id: string }>().id;
    expect((await call('GET', `/api/orgs/${mine}/webhooks`, token(mine, 'ORG_ADMIN'))).json()).toEqual({
      webhooks: [],
    });
    for (const [method, url] of [
      ['GET', `/api/orgs/${mine}/webhooks/${id}`],
      ['GET', `/api/orgs/${mine}/webhooks/${id}/deliveries`],
      ['PATCH', `/api/orgs/${mine}/webhooks/${id}`],
      ['DELETE', `/api/orgs/${mine}/webhooks/${id}`],
      ['POST', `/api/orgs/${mine}/webhooks/${id}/rotate-secret`],
      ['POST', `/api/orgs/${mine}/webhooks/${id}/replay`],
    ] as const) {
      const payload =
        method === 'PATCH'
          ? { enabled: false }
          : url.endsWith('replay')
            ? { fromPosition: '0-0' }
            : undefined;
      expectProblem(await call(method, url, token(mine, 'ORG_ADMIN'), payload), 404, 'NOT_FOUND');
    }
    expectProblem(
      await call('GET', `/api/orgs/${theirs}/webhooks`, token(mine, 'ORG_ADMIN')),
      403,
      'FORBIDDEN',
    );
    expect(
      (await call('GET', `/api/orgs/${theirs}/webhooks/${id}`, token(theirs, 'MEMBER'))).json(),
    ).toMatchObject({ enabled: true });
  });

  it('refuses bad input with 400 and changes nothing; deletes; pages the delivery log', async () => {
    const org = freshOrg();
    const admin = token(org, 'ORG_ADMIN');
    for (const payload of [
      {},
      { url: receiver.url, eventTypes: [] },
      { url: receiver.url, eventTypes: ['INCIDENT_EXPLODED'] },
      { url: receiver.url, eventTypes: ['INCIDENT_CREATED', 'INCIDENT_CREATED'] },
      { url: receiver.url, fromPosition: 'yesterday' },
      { url: receiver.url, enabled: 'yes' },
    ])
      expectProblem(
        await call('POST', `/api/orgs/${org}/webhooks`, admin, payload),
        400,
        'VALIDATION_FAILED',
      );
    expect((await call('GET', `/api/orgs/${org}/webhooks`, admin)).json()).toEqual({ webhooks: [] });

    const created = await call('POST', `/api/orgs/${org}/webhooks`, admin, {
      url: receiver.url,
      description: 'status page',
      eventTypes: ['INCIDENT_CREATED', 'INCIDENT_RESOLVED'],
      enabled: false,
    });
    expect(created.json()).toMatchObject({
      description: 'status page',
      eventTypes: ['INCIDENT_CREATED', 'INCIDENT_RESOLVED'],
      enabled: false,
      state: 'disabled',
      lastDeliveryAt: null,
      lastError: null,
      createdAt: expect.any(String),
    });
    const id = created.json<{ id: string }>().id;
    expectProblem(
      await call('GET', `/api/orgs/${org}/webhooks/${id}/deliveries?cursor=forged`, admin),
      400,
      'VALIDATION_FAILED',
    );
    expectProblem(
      await call('GET', `/api/orgs/${org}/webhooks/${id}/deliveries?status=lost`, admin),
      400,
      'VALIDATION_FAILED',
    );
    expectProblem(
      await call('POST', `/api/orgs/${org}/webhooks/${id}/replay`, admin, {}),
      400,
      'VALIDATION_FAILED',
    );
    expectProblem(await call('GET', `/api/orgs/${org}/webhooks/wh_ffff`, admin), 404, 'NOT_FOUND');
    expectProblem(await call('GET', `/api/orgs/${org}/webhooks/not-an-id`, admin), 400, 'VALIDATION_FAILED');

    // Replay from the start queues every matching event up to the endpoint's checkpoint: here, none yet.
    expect(
      (await call('POST', `/api/orgs/${org}/webhooks/${id}/replay`, admin, { fromPosition: '0-0' })).json(),
    ).toEqual({ deliveries: 0 });

    expect((await call('DELETE', `/api/orgs/${org}/webhooks/${id}`, admin)).statusCode).toBe(204);
    expectProblem(await call('GET', `/api/orgs/${org}/webhooks/${id}`, admin), 404, 'NOT_FOUND');
  });

  it('pages the delivery log newest first with a signed cursor', async () => {
    const org = freshOrg();
    const admin = token(org, 'ORG_ADMIN');
    const created = await call('POST', `/api/orgs/${org}/webhooks`, admin, { url: receiver.url });
    const id = created.json<{ id: string }>().id;
    receiver.secrets = [...receiver.secrets, created.json<{ secret: string }>().secret];
    const incident = await call('POST', `/api/orgs/${org}/incidents`, admin, {
      projectId: 'payments',
      title: 'paging',
      serviceName: 'checkout',
      severity: 'SEV3',
      environment: 'production',
      tags: ['a', 'b'],
    });
    const incidentId = incident.json<{ incidentId: string }>().incidentId;
    for (const tag of ['c', 'd', 'e'])
      await call('POST', `/api/orgs/${org}/incidents/${incidentId}/tags`, admin, { tag });
    const seen: string[] = [];
    let cursor: string | null = null;
    await expect
      .poll(
        async () =>
          (await call('GET', `/api/orgs/${org}/webhooks/${id}/deliveries?limit=100`, admin)).json<{
            deliveries: unknown[];
          }>().deliveries.length,
      )
      .toBe(4);
    do {
      const page: { deliveries: { position: string }[]; nextCursor: string | null } = (
        await call(
          'GET',
          `/api/orgs/${org}/webhooks/${id}/deliveries?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
          admin,
        )
      ).json();
      expect(page.deliveries, JSON.stringify(page)).toBeDefined();
      seen.push(...page.deliveries.map((d) => d.position));
      cursor = page.nextCursor;
    } while (cursor);
    const events = await runtime.store.readAll({ streamPrefix: `incident-${org}.`, limit: 100 });
    expect(seen).toEqual(events.map((e) => e.position).reverse());
  });
});
