import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { ISO_UTC, expectProblem, validIncident } from './support.ts';

interface Written {
  incidentId: string;
  version: number;
  position: string;
  actionId?: string;
  signalId?: string;
  violationId?: string;
}

describe(`incident API on ${databaseLabel}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  /** An SRE lead of `orgId` (may write, change status and severity, and read events). */
  const lead = (orgId: string) => t.token({ sub: 'lena', orgs: { [orgId]: ['SRE_LEAD'] } });
  const create = (orgId: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
    t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/incidents`,
      token: lead(orgId),
      payload: { ...validIncident, ...body },
      headers,
    });
  const write = (
    orgId: string,
    method: 'POST' | 'PATCH' | 'DELETE',
    path: string,
    payload?: Record<string, unknown>,
    headers: Record<string, string> = {},
  ) =>
    t.request({
      method,
      url: `/api/orgs/${orgId}/incidents/${path}`,
      token: lead(orgId),
      ...(payload === undefined ? {} : { payload }),
      headers,
    });
  const details = (orgId: string, incidentId: string) =>
    t.request({ method: 'GET', url: `/api/orgs/${orgId}/incidents/${incidentId}`, token: lead(orgId) });

  it('creates an incident: 201 with Location and ETag, and a GET right after shows it', async () => {
    const org = freshOrg();
    const created = await create(org, {
      tags: ['latency'],
      initialCorrelationKey: 'alert:123',
      description: 'p99 over 2s',
    });
    expect(created.statusCode, created.body).toBe(201);
    const body = created.json<Written>();
    expect(body).toEqual({
      incidentId: expect.stringMatching(/^inc_/),
      version: 0,
      position: expect.stringMatching(/^\d+-\d+$/),
    });
    expect(created.headers.etag).toBe('"0"');
    expect(created.headers.location).toBe(`/api/orgs/${org}/incidents/${body.incidentId}`);

    const read = await details(org, body.incidentId);
    expect(read.statusCode).toBe(200);
    expect(read.headers.etag).toBe('"0"');
    expect(read.json()).toEqual({
      incident: {
        id: body.incidentId,
        orgId: org,
        projectId: 'payments',
        title: 'Checkout latency above SLO',
        description: 'p99 over 2s',
        serviceName: 'checkout',
        status: 'OPEN',
        severity: 'SEV2',
        environment: 'production',
        detectedBy: null,
        primarySignalId: null,
        runbookPath: null,
        externalRefs: [],
        correlationKeys: ['alert:123'],
        tags: ['latency'],
        createdBy: { type: 'USER', ref: 'lena' },
        createdAt: expect.stringMatching(ISO_UTC),
        updatedAt: expect.stringMatching(ISO_UTC),
        acknowledgedAt: null,
        mitigatedAt: null,
        resolvedAt: null,
        cancelledAt: null,
        version: 0,
      },
      signals: [],
      actions: [],
      sloViolations: [],
      counts: { signals: 0, actions: 0, sloViolations: 0 },
    });
  });

  it('carries the request id (X-Request-Id) into the events as their correlationId', async () => {
    const org = freshOrg();
    const created = await create(org, {}, { 'x-request-id': 'req-4f2a-checkout' });
    expect(created.headers['x-request-id']).toBe('req-4f2a-checkout');
    const { incidentId } = created.json<Written>();
    const events = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incidentId}/events`,
      token: lead(org),
    });
    expect(events.json().events[0].metadata).toMatchObject({
      correlationId: 'req-4f2a-checkout',
      orgId: org,
      incidentId,
      actor: { type: 'USER', ref: 'lena' },
    });
    const generated = await details(org, incidentId);
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('applies every kind of write and shows each in the details, items oldest first', async () => {
    const org = freshOrg();
    const { incidentId } = (await create(org)).json<Written>();
    const steps: [string, 'POST' | 'PATCH' | 'DELETE', string, Record<string, unknown>?][] = [
      ['update', 'PATCH', incidentId, { title: 'Checkout down', runbookPath: 'runbooks/checkout.md' }],
      ['status', 'POST', `${incidentId}/status`, { newStatus: 'INVESTIGATING', reason: 'paged' }],
      ['severity', 'POST', `${incidentId}/severity`, { newSeverity: 'SEV1' }],
      ['tag', 'POST', `${incidentId}/tags`, { tag: 'customer-facing' }],
      ['tag', 'POST', `${incidentId}/tags`, { tag: 'db' }],
      ['untag', 'DELETE', `${incidentId}/tags/db`],
      [
        'ticket',
        'POST',
        `${incidentId}/tickets`,
        { system: 'JIRA', key: 'OPS-1', url: 'https://jira.example.com/browse/OPS-1' },
      ],
    ];
    let version = 0;
    for (const [label, method, path, payload] of steps) {
      const response = await write(org, method, path, payload);
      expect(response.statusCode, `${label}: ${response.body}`).toBe(200);
      version += 1;
      expect(response.json<Written>().version, label).toBe(version);
      expect(response.headers.etag).toBe(`"${version}"`);
    }
    const note = (
      await write(org, 'POST', `${incidentId}/actions`, { actionKind: 'NOTE', label: 'Rolled back 1.4.2' })
    ).json<Written>();
    const playbook = (
      await write(org, 'POST', `${incidentId}/actions`, {
        actionKind: 'PLAYBOOK',
        label: 'Failover',
        details: 'to eu-west-2',
      })
    ).json<Written>();
    const signal = (
      await write(org, 'POST', `${incidentId}/signals`, {
        signalType: 'ALERT',
        source: 'prometheus',
        summary: 'HighLatency firing',
        correlationKey: 'alert:9',
        data: { value: 2.4, labels: { pod: 'checkout-1' } },
        ts: '2030-01-02T03:04:05+02:00',
      })
    ).json<Written>();
    const slo = (
      await write(org, 'POST', `${incidentId}/slo-violations`, {
        sloId: 'checkout-availability',
        windowStart: '2030-01-01T00:00:00Z',
        windowEnd: '2030-01-01T01:00:00Z',
        errorBudgetConsumed: 0.42,
        thresholdBreached: true,
      })
    ).json<Written>();
    expect(note.actionId).toMatch(/\S/);
    expect(playbook.actionId).toMatch(/\S/);
    expect(signal.signalId).toMatch(/\S/);
    expect(slo.violationId).toMatch(/\S/);

    const read = (await details(org, incidentId)).json();
    expect(read.incident).toMatchObject({
      title: 'Checkout down',
      runbookPath: 'runbooks/checkout.md',
      status: 'INVESTIGATING',
      severity: 'SEV1',
      tags: ['customer-facing'],
      externalRefs: [
        {
          system: 'JIRA',
          key: 'OPS-1',
          url: 'https://jira.example.com/browse/OPS-1',
          linkedAt: expect.stringMatching(ISO_UTC),
        },
      ],
      correlationKeys: ['alert:9'],
      primarySignalId: signal.signalId,
      acknowledgedAt: expect.stringMatching(ISO_UTC),
      version: 11,
    });
    expect(read.signals).toEqual([
      {
        id: signal.signalId,
        incidentId,
        orgId: org,
        signalType: 'ALERT',
        source: 'prometheus',
        summary: 'HighLatency firing',
        serviceName: null,
        environment: null,
        correlationKey: 'alert:9',
        traceId: null,
        fingerprint: null,
        status: null,
        data: { value: 2.4, labels: { pod: 'checkout-1' } },
        ts: '2030-01-02T01:04:05.000Z',
      },
    ]);
    expect(read.sloViolations).toEqual([
      {
        id: slo.violationId,
        incidentId,
        orgId: org,
        sloId: 'checkout-availability',
        windowStart: '2030-01-01T00:00:00.000Z',
        windowEnd: '2030-01-01T01:00:00.000Z',
        errorBudgetConsumed: 0.42,
        thresholdBreached: true,
        details: null,
      },
    ]);
    const kinds = read.actions.map((action: { actionKind: string }) => action.actionKind);
    expect(kinds).toEqual(['STATUS_CHANGE', 'SEVERITY_CHANGE', 'TICKET_LINK', 'NOTE', 'PLAYBOOK']);
    expect(read.actions.find((action: { id: string }) => action.id === note.actionId)).toMatchObject({
      label: 'Rolled back 1.4.2',
      actorType: 'USER',
      actorRef: 'lena',
      details: null,
      ts: expect.stringMatching(ISO_UTC),
    });
  });

  it('answers a no-op with the unchanged version, and a forbidden move with 409', async () => {
    const org = freshOrg();
    const { incidentId } = (await create(org)).json<Written>();
    const same = await write(org, 'POST', `${incidentId}/severity`, { newSeverity: 'SEV2' });
    expect(same.statusCode).toBe(200);
    expect(same.json<Written>().version).toBe(0);
    expect((await write(org, 'POST', `${incidentId}/status`, { newStatus: 'CANCELLED' })).statusCode).toBe(
      200,
    );
    expectProblem(
      await write(org, 'POST', `${incidentId}/status`, { newStatus: 'INVESTIGATING' }),
      409,
      'INVALID_TRANSITION',
    );
    const resolvedFromCancelled = await write(org, 'POST', `${incidentId}/status`, { newStatus: 'RESOLVED' });
    expectProblem(resolvedFromCancelled, 409, 'INVALID_TRANSITION');
  });

  it('makes a write conditional with If-Match: 412 once the incident moved on', async () => {
    const org = freshOrg();
    const { incidentId } = (await create(org)).json<Written>();
    const first = await write(org, 'PATCH', incidentId, { title: 'First' }, { 'if-match': '"0"' });
    expect(first.statusCode).toBe(200);
    expect(first.headers.etag).toBe('"1"');
    const stale = expectProblem(
      await write(org, 'PATCH', incidentId, { title: 'Second' }, { 'if-match': '"0"' }),
      412,
      'VERSION_CONFLICT',
    );
    expect(stale.detail).toMatch(/1/);
    const bad = expectProblem(
      await write(org, 'PATCH', incidentId, { title: 'Third' }, { 'if-match': 'yesterday' }),
      400,
      'VALIDATION_FAILED',
    );
    expect(bad.errors?.map((error) => error.path)).toContain('if-match');
    expect((await details(org, incidentId)).json().incident.title).toBe('First');
  });

  it('replays an idempotent write: same key and body → the first response again, nothing appended; other body → 422', async () => {
    const org = freshOrg();
    const headers = { 'idempotency-key': 'create-checkout-1' };
    const first = await create(org, {}, headers);
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await create(org, {}, headers);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(again.headers.location).toBe(first.headers.location);
    const list = await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token: lead(org) });
    expect(list.json().incidents).toHaveLength(1);
    expectProblem(await create(org, { title: 'Another incident' }, headers), 422, 'IDEMPOTENCY_KEY_REUSED');

    const { incidentId } = first.json<Written>();
    const note = { actionKind: 'NOTE', label: 'Paged the DB team' };
    const n1 = await write(org, 'POST', `${incidentId}/actions`, note, { 'idempotency-key': 'note-1' });
    const n2 = await write(org, 'POST', `${incidentId}/actions`, note, { 'idempotency-key': 'note-1' });
    expect(n2.json()).toEqual(n1.json());
    expect(n2.headers['idempotent-replayed']).toBe('true');
    const events = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incidentId}/events`,
      token: lead(org),
    });
    expect(events.json().events.map((event: { type: string }) => event.type)).toEqual([
      'INCIDENT_CREATED',
      'INCIDENT_NOTE_ADDED',
    ]);
    const tooLong = expectProblem(
      await create(org, {}, { 'idempotency-key': 'k'.repeat(256) }),
      400,
      'VALIDATION_FAILED',
    );
    expect(tooLong.errors?.map((error) => error.path)).toContain('idempotency-key');
  });

  it('answers 202 with the same body when the client prefers not to wait', async () => {
    const org = freshOrg();
    const response = await create(org, {}, { prefer: 'respond-async' });
    expect(response.statusCode).toBe(202);
    expect(response.headers['preference-applied']).toBe('respond-async');
    expect(response.json()).toEqual({
      incidentId: expect.stringMatching(/^inc_/),
      version: 0,
      position: expect.any(String),
    });
    expect(response.headers.location).toMatch(/^\/api\/orgs\//);
  });

  it('answers 404 for an unknown incident, another org’s incident and an unknown route', async () => {
    const org = freshOrg();
    const other = freshOrg('other');
    const { incidentId } = (await create(other)).json<Written>();
    const both = t.token({ sub: 'sam', orgs: { [org]: ['ORG_ADMIN'], [other]: ['ORG_ADMIN'] } });
    for (const url of [
      `/api/orgs/${org}/incidents/${incidentId}`,
      `/api/orgs/${org}/incidents/inc_doesnotexist`,
      `/api/orgs/${org}/incidents/${incidentId}/events`,
    ]) {
      expectProblem(await t.request({ method: 'GET', url, token: both }), 404, 'NOT_FOUND');
    }
    expectProblem(
      await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents/${incidentId}/status`,
        token: both,
        payload: { newStatus: 'RESOLVED' },
      }),
      404,
      'NOT_FOUND',
    );
    expectProblem(await t.request({ method: 'GET', url: '/api/nothing-here' }), 404, 'NOT_FOUND');
    expectProblem(
      await t.request({ method: 'PUT', url: `/api/orgs/${org}/incidents`, token: both }),
      404,
      'NOT_FOUND',
    );
  });

  it('refuses malformed input with 400 naming each field, 413 and 415, never a 500', async () => {
    const org = freshOrg();
    const token = lead(org);
    const missing = expectProblem(
      await create(org, { title: '', severity: 'SEV9', tags: ['Not A Tag'] }),
      400,
      'VALIDATION_FAILED',
    );
    expect(missing.errors?.map((error) => error.path)).toEqual(
      expect.arrayContaining(['title', 'severity', 'tags.0']),
    );
    const noTitle = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents`,
      token,
      payload: { ...validIncident, title: undefined },
    });
    expect(expectProblem(noTitle, 400, 'VALIDATION_FAILED').errors?.map((error) => error.path)).toContain(
      'title',
    );
    const { incidentId } = (await create(org)).json<Written>();
    const emptyPatch = expectProblem(await write(org, 'PATCH', incidentId, {}), 400, 'VALIDATION_FAILED');
    expect(emptyPatch.errors?.length).toBeGreaterThan(0);
    const window = expectProblem(
      await write(org, 'POST', `${incidentId}/slo-violations`, {
        sloId: 's',
        windowStart: '2030-01-01T01:00:00Z',
        windowEnd: '2030-01-01T00:00:00Z',
        errorBudgetConsumed: -1,
        thresholdBreached: 'yes',
      }),
      400,
      'VALIDATION_FAILED',
    );
    expect(window.errors?.map((error) => error.path)).toEqual(
      expect.arrayContaining(['windowEnd', 'errorBudgetConsumed', 'thresholdBreached']),
    );
    const limit = expectProblem(
      await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents?limit=0&sort=priority`, token }),
      400,
      'VALIDATION_FAILED',
    );
    expect(limit.errors?.map((error) => error.path)).toEqual(expect.arrayContaining(['limit', 'sort']));
    const badId = expectProblem(
      await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents/not-an-id`, token }),
      400,
      'VALIDATION_FAILED',
    );
    expect(badId.errors?.map((error) => error.path)).toContain('incidentId');
    const badPosition = expectProblem(
      await t.request({ method: 'GET', url: `/api/orgs/${org}/events?fromPosition=abc`, token }),
      400,
      'VALIDATION_FAILED',
    );
    expect(badPosition.errors?.map((error) => error.path)).toContain('fromPosition');
    const hugePosition = expectProblem(
      await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/events?fromPosition=1-99999999999999999999`,
        token,
      }),
      400,
      'VALIDATION_FAILED',
    );
    expect(hugePosition.errors?.map((error) => error.path)).toEqual(['fromPosition']);

    const url = `/api/orgs/${org}/incidents`;
    const headers = { 'content-type': 'application/json' };
    expectProblem(
      await t.request({ method: 'POST', url, token, headers, payload: '{"title": ' }),
      400,
      'VALIDATION_FAILED',
    );
    expect(
      expectProblem(
        await t.request({ method: 'POST', url, token, headers, payload: '' }),
        400,
        'VALIDATION_FAILED',
      ).errors,
    ).toEqual([{ path: 'body', message: expect.any(String) }]);
    // Bare, and with a charset, as many clients send it.
    for (const [contentType, title] of [
      ['application/merge-patch+json', 'Merge-patched'],
      ['application/merge-patch+json; charset=utf-8', 'Merge-patched again'],
    ] as const) {
      const patched = await t.request({
        method: 'PATCH',
        url: `${url}/${incidentId}`,
        token,
        headers: { 'content-type': contentType },
        payload: JSON.stringify({ title }),
      });
      expect(patched.statusCode, `${contentType}: ${patched.body}`).toBe(200);
    }
    const untag = await t.request({
      method: 'DELETE',
      url: `${url}/${incidentId}/tags/absent`,
      token,
      headers,
    });
    expect(untag.statusCode, untag.body).toBe(200);
    expectProblem(
      await t.request({ method: 'POST', url, token, headers, payload: '{"__proto__": {"x": 1}}' }),
      400,
      'VALIDATION_FAILED',
    );
    expectProblem(
      await t.request({ method: 'POST', url, token, headers, payload: '[1, 2]' }),
      400,
      'VALIDATION_FAILED',
    );
    for (const path of [
      '',
      '/status',
      '/severity',
      '/tags',
      '/tickets',
      '/actions',
      '/signals',
      '/slo-violations',
    ]) {
      for (const payload of ['null', '7', '"text"']) {
        const response = await t.request({
          method: path ? 'POST' : 'PATCH',
          url: `${url}/${incidentId}${path}`,
          token,
          headers,
          payload,
        });
        expectProblem(response, 400, 'VALIDATION_FAILED');
      }
    }
    expectProblem(
      await t.request({
        method: 'POST',
        url,
        token,
        headers: { 'content-type': 'text/plain' },
        payload: 'title=x',
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    const huge = JSON.stringify({ ...validIncident, description: 'x'.repeat(1024 * 1024 + 10) });
    expectProblem(
      await t.request({ method: 'POST', url, token, headers, payload: huge }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expectProblem(
      await write(org, 'POST', `${incidentId}/signals`, {
        signalType: 'LOG',
        source: 's',
        summary: 's',
        data: { blob: 'y'.repeat(70 * 1024) },
      }),
      400,
      'VALIDATION_FAILED',
    );

    // Text and times that JSON allows but PostgreSQL could not store: refused at the edge, not a 500 later.
    const paths = async (response: Parameters<typeof expectProblem>[0]) =>
      expectProblem(response, 400, 'VALIDATION_FAILED').errors?.map((error) => error.path);
    expect(await paths(await create(org, { title: 'nul \u0000 byte' }))).toEqual(['title']);
    expect(await paths(await create(org, { tags: ['ok'], description: 'half \ud800 pair' }))).toEqual([
      'description',
    ]);
    expect(
      await paths(
        await write(org, 'POST', `${incidentId}/signals`, {
          signalType: 'LOG',
          source: 's',
          summary: 's',
          data: { 'k\u0000': 1 },
        }),
      ),
    ).toEqual(['data.k\u0000']);
    expect(
      await paths(await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents?q=%00`, token })),
    ).toEqual(['q']);
    expect(
      await paths(
        await write(org, 'POST', `${incidentId}/signals`, {
          signalType: 'LOG',
          source: 's',
          summary: 's',
          ts: '0000-01-01T00:00:00Z',
        }),
      ),
    ).toEqual(['ts']);
  });

  it('lists with every filter, sorts, and pages with a signed cursor', async () => {
    const org = freshOrg();
    const token = lead(org);
    const specs = [
      {
        title: 'Payments API 500s',
        severity: 'SEV1',
        serviceName: 'payments',
        tags: ['api'],
        environment: 'production',
      },
      {
        title: 'Slow search',
        severity: 'SEV3',
        serviceName: 'search',
        tags: ['latency'],
        environment: 'staging',
      },
      {
        title: 'payments queue backlog',
        severity: 'SEV2',
        serviceName: 'payments',
        tags: ['queue', 'api'],
        environment: 'production',
        initialCorrelationKey: 'kafka:lag',
      },
      {
        title: 'Login failures',
        severity: 'SEV2',
        serviceName: 'auth',
        environment: 'production',
        projectId: 'identity',
      },
      { title: 'Disk almost full', severity: 'SEV4', serviceName: 'search', environment: 'production' },
    ];
    const ids: string[] = [];
    for (const spec of specs)
      ids.push((await create(org, spec, { prefer: 'respond-async' })).json<Written>().incidentId);
    // The last write waits for the projections, and they apply events in order.
    const last = await write(org, 'POST', `${ids[1]}/status`, { newStatus: 'INVESTIGATING' });
    expect(last.statusCode).toBe(200);

    const list = async (query: string) => {
      const response = await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents?${query}`, token });
      expect(response.statusCode, response.body).toBe(200);
      return response.json<{ incidents: { id: string; title: string }[]; nextCursor: string | null }>();
    };
    const titles = async (query: string) => (await list(query)).incidents.map((incident) => incident.title);

    expect((await list('')).incidents.map((incident) => incident.id)).toEqual([...ids].reverse());
    expect((await list('order=asc')).incidents.map((incident) => incident.id)).toEqual(ids);
    expect(await titles('serviceName=payments')).toEqual(['payments queue backlog', 'Payments API 500s']);
    expect(await titles('severity=SEV1,SEV2&environment=production&order=asc')).toEqual([
      'Payments API 500s',
      'payments queue backlog',
      'Login failures',
    ]);
    expect(await titles('severity=SEV3&severity=SEV4')).toEqual(['Disk almost full', 'Slow search']);
    expect(await titles('status=INVESTIGATING')).toEqual(['Slow search']);
    expect(await titles('status=OPEN&tag=api')).toEqual(['payments queue backlog', 'Payments API 500s']);
    expect(await titles('correlationKey=kafka:lag')).toEqual(['payments queue backlog']);
    expect(await titles('projectId=identity')).toEqual(['Login failures']);
    expect(await titles('q=PAYMENTS')).toEqual(['payments queue backlog', 'Payments API 500s']);
    expect(await titles('q=%25')).toEqual([]);
    expect(await titles('sort=severity')).toEqual([
      'Payments API 500s',
      'Login failures',
      'payments queue backlog',
      'Slow search',
      'Disk almost full',
    ]);
    expect(await titles('sort=severity&order=asc')).toEqual([
      'Disk almost full',
      'Slow search',
      'payments queue backlog',
      'Login failures',
      'Payments API 500s',
    ]);
    expect((await list('sort=updatedAt')).incidents[0]!.id).toBe(ids[1]);
    const all = await list('order=asc');
    const createdAt = (all.incidents as unknown as { createdAt: string }[]).map(
      (incident) => incident.createdAt,
    );
    expect(
      await titles(
        `createdFrom=${encodeURIComponent(createdAt[1]!)}&createdTo=${encodeURIComponent(createdAt[3]!)}&order=asc`,
      ),
    ).toEqual(['Slow search', 'payments queue backlog', 'Login failures']);

    for (const sort of ['createdAt', 'updatedAt', 'severity']) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { incidents: { id: string }[]; nextCursor: string | null } = await list(
          `sort=${sort}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        seen.push(...page.incidents.map((incident) => incident.id));
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor);
      expect(pages, sort).toBe(3);
      expect(seen, sort).toEqual((await list(`sort=${sort}`)).incidents.map((incident) => incident.id));
    }

    const { nextCursor } = await list('limit=2');
    const [payload, mac] = nextCursor!.split('.');
    const forged = `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), org })).toString('base64url')}x.${mac}`;
    for (const cursor of [
      forged,
      `${payload}.${mac!.slice(0, -1)}${mac!.endsWith('A') ? 'B' : 'A'}`,
      'garbage',
    ]) {
      const tampered = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents?limit=2&cursor=${encodeURIComponent(cursor)}`,
        token,
      });
      expect(expectProblem(tampered, 400, 'VALIDATION_FAILED').errors?.map((error) => error.path)).toEqual([
        'cursor',
      ]);
    }
    expectProblem(
      await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents?limit=2&sort=severity&cursor=${encodeURIComponent(nextCursor!)}`,
        token,
      }),
      400,
      'VALIDATION_FAILED',
    );
  });

  it('reads an incident stream by version and the org feed by position, page after page', async () => {
    const org = freshOrg();
    const token = lead(org);
    const a = (await create(org)).json<Written>().incidentId;
    const b = (await create(org, { title: 'Second' })).json<Written>().incidentId;
    for (const label of ['one', 'two', 'three'])
      await write(org, 'POST', `${a}/actions`, { actionKind: 'NOTE', label });
    await write(org, 'POST', `${b}/tags`, { tag: 'x' });
    await create(freshOrg('noise'));

    const stream = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${a}/events?limit=2`,
      token,
    });
    expect(stream.statusCode).toBe(200);
    const first = stream.json();
    expect(first.streamName).toBe(`incident-${org}.${a}`);
    expect(first.events.map((event: { version: number }) => event.version)).toEqual([0, 1]);
    expect(first.events[0]).toEqual({
      eventId: expect.any(String),
      type: 'INCIDENT_CREATED',
      version: 0,
      position: expect.any(String),
      createdAt: expect.stringMatching(ISO_UTC),
      data: expect.objectContaining({ title: validIncident.title }),
      metadata: expect.objectContaining({ orgId: org, incidentId: a, schemaVersion: 1 }),
    });
    expect(first.nextFromVersion).toBe(2);
    const rest = (
      await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${a}/events?fromVersion=2&limit=2`,
        token,
      })
    ).json();
    expect(rest.events.map((event: { version: number }) => event.version)).toEqual([2, 3]);
    expect(rest.nextFromVersion).toBeNull();
    const backwards = (
      await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${a}/events?direction=backwards&limit=3`,
        token,
      })
    ).json();
    expect(backwards.events.map((event: { version: number }) => event.version)).toEqual([3, 2, 1]);
    expect(backwards.nextFromVersion).toBe(0);

    const feed = async (query: string) => {
      const response = await t.request({ method: 'GET', url: `/api/orgs/${org}/events?${query}`, token });
      expect(response.statusCode, response.body).toBe(200);
      return response.json<{
        events: { eventId: string; streamName: string; type: string; position: string }[];
        nextFromPosition: string | null;
      }>();
    };
    const everything = await feed('limit=1000');
    expect(everything.events).toHaveLength(6);
    expect(everything.nextFromPosition).toBeNull();
    expect(new Set(everything.events.map((event) => event.streamName))).toEqual(
      new Set([`incident-${org}.${a}`, `incident-${org}.${b}`]),
    );
    const paged: string[] = [];
    let from: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof feed>> = await feed(
        `limit=4${from ? `&fromPosition=${from}` : ''}`,
      );
      paged.push(...page.events.map((event) => event.eventId));
      from = page.nextFromPosition;
    } while (from);
    expect(paged).toEqual(everything.events.map((event) => event.eventId));
    const afterThird = await feed(`fromPosition=${everything.events[2]!.position}`);
    expect(afterThird.events.map((event) => event.eventId)).toEqual(
      everything.events.slice(3).map((event) => event.eventId),
    );
    const notes = await feed('type=INCIDENT_NOTE_ADDED&limit=2');
    expect(notes.events.map((event) => event.type)).toEqual(['INCIDENT_NOTE_ADDED', 'INCIDENT_NOTE_ADDED']);
    const moreNotes = await feed(
      `type=INCIDENT_NOTE_ADDED,INCIDENT_TAG_ADDED&limit=2&fromPosition=${notes.nextFromPosition}`,
    );
    expect(moreNotes.events.map((event) => event.type)).toEqual([
      'INCIDENT_NOTE_ADDED',
      'INCIDENT_TAG_ADDED',
    ]);
    expect(moreNotes.nextFromPosition).toBeNull();
    expectProblem(
      await t.request({ method: 'GET', url: `/api/orgs/${org}/events?type=NOPE`, token }),
      400,
      'VALIDATION_FAILED',
    );
  });

  it('serves health, metrics, the OpenAPI document and its viewer', async () => {
    expect((await t.request({ method: 'GET', url: '/health/live' })).json()).toEqual({ status: 'ok' });
    const ready = await t.request({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      eventStore: { status: 'up' },
      database: { status: 'up' },
    });
    expect(ready.json().projections.length).toBeGreaterThan(0);
    const metrics = await t.request({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    for (const name of [
      'its_http_request_duration_seconds_bucket',
      'its_commands_total{type="CreateIncident",outcome="ok"}',
      'its_event_append_duration_seconds',
      'its_command_concurrency_retries_total',
      'its_projection_lag_events',
    ]) {
      expect(metrics.body).toContain(name);
    }
    expect(metrics.body).toMatch(/route="\/api\/orgs\/:orgId\/incidents"/);

    const openapi = await t.request({ method: 'GET', url: '/openapi.json' });
    expect(openapi.statusCode).toBe(200);
    const document = openapi.json();
    expect(document.openapi).toMatch(/^3\./);
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining([
        '/api/orgs/{orgId}/incidents',
        '/api/orgs/{orgId}/incidents/{incidentId}/slo-violations',
        '/api/orgs/{orgId}/events',
        '/admin/projections/{name}/rebuild',
        '/health/ready',
      ]),
    );
    const createOperation = document.paths['/api/orgs/{orgId}/incidents'].post;
    expect(createOperation.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['projectId', 'title', 'serviceName', 'severity', 'environment']),
    );
    expect(Object.keys(createOperation.responses)).toEqual(
      expect.arrayContaining(['201', '202', '400', '401', '403', '422', '429', '503']),
    );
    expect(document.components.schemas).toHaveProperty('Incident');
    expect(document.components.schemas).toHaveProperty('Problem');
    const docs = await t.request({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toMatch(/text\/html/);
  });

  it('sets security headers on every response', async () => {
    const response = await t.request({ method: 'GET', url: '/health/live' });
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['strict-transport-security']).toBeDefined();
    const refused = await t.request({ method: 'GET', url: `/api/orgs/${freshOrg()}/incidents` });
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['x-content-type-options']).toBe('nosniff');
  });

  it('lists and rebuilds projections for its_admin tokens only', async () => {
    const admin = t.token({ sub: 'root', its_admin: true });
    const status = await t.request({ method: 'GET', url: '/admin/projections', token: admin });
    expect(status.statusCode, status.body).toBe(200);
    const names = status.json().projections.map((projection: { name: string }) => projection.name);
    expect(names.length).toBeGreaterThan(0);
    const [first] = status.json().projections;
    expect(first).toMatchObject({
      name: expect.any(String),
      lag: expect.any(Number),
      state: expect.any(String),
    });
    expect(first).toHaveProperty('position');
    expect(first.lastError).toBeNull();
    expectProblem(
      await t.request({ method: 'GET', url: '/admin/projections', token: lead(freshOrg()) }),
      403,
      'FORBIDDEN',
    );
    expectProblem(
      await t.request({ method: 'POST', url: '/admin/projections/no-such-projection/rebuild', token: admin }),
      404,
      'NOT_FOUND',
    );
    const rebuild = await t.request({
      method: 'POST',
      url: `/admin/projections/${names[0]}/rebuild`,
      token: admin,
    });
    expect(rebuild.statusCode, rebuild.body).toBe(202);
  });
});
