import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { expectProblem } from '../http/support.ts';
import { alertmanagerNotification, grafanaNotification, type AlertSpec } from './payloads.ts';

interface Ingested {
  incidents: { incidentId: string; created: boolean; version: number; position: string }[];
}
interface Details {
  incident: {
    id: string;
    status: string;
    severity: string;
    title: string;
    serviceName: string;
    version: number;
  };
  signals: {
    fingerprint: string | null;
    status: string | null;
    source: string;
    ts: string;
    correlationKey: string;
  }[];
}

describe(`alert ingestion over HTTP on ${databaseLabel}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    // The assertions read right after each answer: it must wait for the read models, even under load.
    t = await startTestApp({ env: { CONSISTENCY_TIMEOUT_MS: '30000' } });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const integration = (orgId: string) =>
    t.token({ sub: 'alertmanager-prod', orgs: { [orgId]: ['MEMBER'] }, actor_type: 'INTEGRATION' });
  const post = (orgId: string, route: string, payload: unknown, query = '') =>
    t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/alerts/${route}${query}`,
      token: integration(orgId),
      payload: payload as Record<string, unknown>,
    });
  const notify = async (orgId: string, group: string, alerts: AlertSpec[], query = '') => {
    const response = await post(orgId, 'alertmanager', alertmanagerNotification(group, alerts), query);
    expect(response.statusCode, response.body).toBe(200);
    return response.json<Ingested>();
  };
  const details = async (orgId: string, incidentId: string) => {
    const response = await t.request({
      method: 'GET',
      url: `/api/orgs/${orgId}/incidents/${incidentId}`,
      token: t.token({ sub: 'reader', orgs: { [orgId]: ['AUDITOR'] } }),
    });
    expect(response.statusCode, response.body).toBe(200);
    return response.json<Details>();
  };
  const orgEvents = async (orgId: string) => {
    const response = await t.request({
      method: 'GET',
      url: `/api/orgs/${orgId}/events?limit=1000`,
      token: t.token({ sub: 'reader', orgs: { [orgId]: ['AUDITOR'] } }),
    });
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ events: { type: string; streamName: string; metadata: { actor: unknown } }[] }>()
      .events;
  };

  it('opens one incident for a new group, shows each alert as a v2 signal, and ignores a repeat', async () => {
    const org = freshOrg();
    const alerts: AlertSpec[] = [
      { fingerprint: 'a1', severity: 'warning' },
      { fingerprint: 'a2', severity: 'critical' },
    ];
    const first = await notify(org, '{}:{alertname="HighLatency"}', alerts);
    expect(first.incidents).toEqual([
      { incidentId: expect.stringMatching(/^inc_/), created: true, version: 2, position: expect.any(String) },
    ]);
    const id = first.incidents[0]!.incidentId;
    const shown = await details(org, id);
    expect(shown.incident).toMatchObject({
      status: 'OPEN',
      severity: 'SEV1',
      title: 'HighLatency',
      serviceName: 'checkout',
    });
    expect(shown.signals.map((s) => [s.fingerprint, s.status, s.source, s.ts])).toEqual([
      ['a1', 'firing', 'alertmanager', '2026-11-26T10:00:00.000Z'],
      ['a2', 'firing', 'alertmanager', '2026-11-26T10:00:00.000Z'],
    ]);
    expect(shown.signals[0]!.correlationKey).toMatch(/^alertgroup:[0-9a-f]{32}$/);

    const repeat = await notify(org, '{}:{alertname="HighLatency"}', alerts);
    expect(repeat.incidents).toEqual([{ ...first.incidents[0], created: false }]);

    // The org feed shows incident events only, written by the integration.
    const events = await orgEvents(org);
    expect(events.map((e) => e.type)).toEqual([
      'INCIDENT_CREATED',
      'INCIDENT_SIGNAL_INGESTED',
      'INCIDENT_SIGNAL_INGESTED',
    ]);
    expect(events.every((e) => e.streamName.startsWith('incident-'))).toBe(true);
    expect(events[0]!.metadata.actor).toEqual({ type: 'INTEGRATION', ref: 'alertmanager-prod' });
  });

  it('resolves only when the last alert resolves, whatever the top-level status says', async () => {
    const org = freshOrg();
    const group = 'g-resolve';
    const { incidents } = await notify(org, group, [{ fingerprint: 'a1' }, { fingerprint: 'a2' }]);
    const id = incidents[0]!.incidentId;
    // Top-level status "resolved" while a2 still fires.
    const partly = await post(
      org,
      'alertmanager',
      alertmanagerNotification(group, [{ fingerprint: 'a1', status: 'resolved' }, { fingerprint: 'a2' }], {
        status: 'resolved',
      }),
    );
    expect(partly.statusCode).toBe(200);
    expect((await details(org, id)).incident.status).toBe('OPEN');
    await notify(org, group, [{ fingerprint: 'a2', status: 'resolved' }]);
    const resolved = await details(org, id);
    expect(resolved.incident.status).toBe('RESOLVED');
    expect(resolved.signals.map((s) => `${s.fingerprint}:${s.status}`)).toEqual([
      'a1:firing',
      'a2:firing',
      'a1:resolved',
      'a2:resolved',
    ]);
    expect(resolved.signals[2]!.ts).toBe('2026-11-26T10:05:00.000Z'); // endsAt, not the clock
  });

  it('takes Grafana payloads with their URLs and values', async () => {
    const org = freshOrg();
    const response = await post(
      org,
      'grafana',
      grafanaNotification('grafana-group', [{ fingerprint: 'g1', severity: 'P2' }]),
    );
    expect(response.statusCode, response.body).toBe(200);
    const id = response.json<Ingested>().incidents[0]!.incidentId;
    const shown = await details(org, id);
    expect(shown.incident.severity).toBe('SEV2');
    expect(shown.signals[0]).toMatchObject({
      source: 'grafana',
      fingerprint: 'g1',
      data: expect.objectContaining({ dashboardURL: 'http://grafana/d/abc', values: { A: 2.5, B: null } }),
    });
  });

  it('Events v2: trigger without a dedup_key gets one; acknowledge and resolve act on it; unknown keys are dropped', async () => {
    const org = freshOrg();
    const trigger = await post(org, 'events', {
      event_action: 'trigger',
      payload: { summary: 'disk full on db-1', source: 'db-1', severity: 'error', component: 'postgres' },
    });
    expect(trigger.statusCode, trigger.body).toBe(202);
    const { dedup_key: key } = trigger.json<{ status: string; message: string; dedup_key: string }>();
    expect(trigger.json()).toEqual({
      status: 'success',
      message: 'Event processed',
      dedup_key: expect.any(String),
    });

    const ack = await post(org, 'events', { event_action: 'acknowledge', dedup_key: key });
    expect(ack.statusCode).toBe(202);
    const events = await orgEvents(org);
    const id = (
      await t.runtime.database.db
        .selectFrom('incidents')
        .select('id')
        .where('org_id', '=', org)
        .executeTakeFirstOrThrow()
    ).id;
    expect((await details(org, id)).incident).toMatchObject({
      status: 'INVESTIGATING',
      severity: 'SEV2',
      serviceName: 'postgres',
    });
    expect(events.map((e) => e.type)).toEqual([
      'INCIDENT_CREATED',
      'INCIDENT_SIGNAL_INGESTED',
      'INCIDENT_STATUS_CHANGED',
    ]);

    const resolve = await post(org, 'events', { event_action: 'resolve', dedup_key: key });
    expect(resolve.json()).toEqual({ status: 'success', message: 'Event processed', dedup_key: key });
    expect((await details(org, id)).incident.status).toBe('RESOLVED');

    // Acknowledge and resolve of a key with no active incident append nothing.
    for (const event_action of ['acknowledge', 'resolve']) {
      const dropped = await post(org, 'events', { event_action, dedup_key: 'never-triggered' });
      expect(dropped.statusCode).toBe(202);
    }
    const ackAfter = await post(org, 'events', { event_action: 'acknowledge', dedup_key: key });
    expect(ackAfter.statusCode).toBe(202);
    expect((await orgEvents(org)).length).toBe(5);
  });

  it('Events v2: a trigger without dedup_key retried with the same Idempotency-Key is one incident', async () => {
    const org = freshOrg();
    const send = () =>
      t.request({
        method: 'POST',
        url: `/api/orgs/${org}/alerts/events`,
        token: integration(org),
        headers: { 'idempotency-key': 'retry-7' },
        payload: {
          event_action: 'trigger',
          payload: { summary: 'queue stuck', source: 'mq-1', severity: 'warning' },
        },
      });
    const first = (await send()).json<{ dedup_key: string }>();
    expect((await send()).json()).toEqual(first);
    expect((await orgEvents(org)).map((e) => e.type)).toEqual([
      'INCIDENT_CREATED',
      'INCIDENT_SIGNAL_INGESTED',
    ]);
  });

  it('refuses a body that fails its schema with 400 naming the field, and appends nothing', async () => {
    const org = freshOrg();
    const body = alertmanagerNotification('bad', [{ fingerprint: 'a1' }]);
    const bad = await post(org, 'alertmanager', {
      ...body,
      alerts: [{ ...body.alerts[0], startsAt: 'yesterday' }],
    });
    const problem = expectProblem(bad, 400, 'VALIDATION_FAILED');
    expect(problem.errors?.map((e) => e.path)).toEqual(['alerts.0.startsAt']);
    expectProblem(await post(org, 'alertmanager', { ...body, version: '3' }), 400, 'VALIDATION_FAILED');
    expectProblem(await post(org, 'events', { event_action: 'resolve' }), 400, 'VALIDATION_FAILED');
    expect(await orgEvents(org)).toEqual([]);
  });

  it('documents the three routes and the v2 signal fields in the OpenAPI document', async () => {
    const document = (await t.request({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    }>();
    for (const route of ['alertmanager', 'grafana', 'events']) {
      const responses = document.paths[`/api/orgs/{orgId}/alerts/${route}`]?.post?.responses;
      expect(responses).toHaveProperty('400');
      expect(responses).toHaveProperty('503');
      expect(responses).not.toHaveProperty('429');
    }
    expect(document.paths['/api/orgs/{orgId}/alerts/events']!.post!.responses).toHaveProperty('202');
    expect(document.components.schemas.Signal!.properties).toHaveProperty('fingerprint');
    expect(document.components.schemas.Signal!.properties).toHaveProperty('status');
  });

  it('needs a token that may create incidents in the org', async () => {
    const org = freshOrg();
    const body = alertmanagerNotification('auth', [{ fingerprint: 'a1' }]);
    expectProblem(
      await t.request({ method: 'POST', url: `/api/orgs/${org}/alerts/alertmanager`, payload: body }),
      401,
      'UNAUTHENTICATED',
    );
    expectProblem(
      await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/alerts/alertmanager`,
        payload: body,
        token: t.token({ sub: 'auditor', orgs: { [org]: ['AUDITOR'] } }),
      }),
      403,
      'FORBIDDEN',
    );
  });
});

describe(`alert ingestion over its rate limit on ${databaseLabel}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: '2' } });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('answers 503 with Retry-After, never 429', async () => {
    const org = freshOrg();
    const token = t.token({ sub: 'am', orgs: { [org]: ['MEMBER'] } });
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 4; i++) {
      last = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/alerts/alertmanager`,
        token,
        payload: alertmanagerNotification('limited', [{ fingerprint: `a${i}` }]),
      });
      statuses.push(last.statusCode);
    }
    expect(statuses).toEqual([200, 200, 503, 503]);
    expectProblem(last!, 503, 'UNAVAILABLE');
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
  });
});
