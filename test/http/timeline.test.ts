import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceActionId } from '../../projections/actions.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { expectProblem, validIncident } from './support.ts';

interface Entry {
  kind: 'action' | 'signal' | 'slo_violation';
  id: string;
  ts: string;
  version: number;
  [field: string]: unknown;
}
interface Page {
  entries: Entry[];
  nextCursor: string | null;
}

describe(`incident timeline on ${databaseLabel}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const lead = (orgId: string) => t.token({ sub: 'lena', orgs: { [orgId]: ['SRE_LEAD'] } });
  const write = async (orgId: string, path: string, payload: Record<string, unknown>) => {
    const response = await t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/incidents${path}`,
      token: lead(orgId),
      payload,
    });
    expect(response.statusCode, response.body).toBeLessThan(300);
    return response.json<{ incidentId: string; version: number }>();
  };
  const timeline = (orgId: string, incidentId: string, query = '', token = lead(orgId)) =>
    t.request({ method: 'GET', url: `/api/orgs/${orgId}/incidents/${incidentId}/timeline${query}`, token });

  /** An incident with every kind of entry, signals and SLO windows dated before and after the actions. */
  async function busyIncident(orgId: string): Promise<string> {
    const { incidentId } = await write(orgId, '', validIncident);
    const path = `/${incidentId}`;
    await write(orgId, `${path}/signals`, {
      signalType: 'ALERT',
      source: 'prometheus',
      summary: 'fired long ago',
      ts: '2020-01-01T00:00:00.000Z',
    });
    await write(orgId, `${path}/status`, { newStatus: 'INVESTIGATING' });
    await write(orgId, `${path}/actions`, { actionKind: 'NOTE', label: 'looking' });
    await write(orgId, `${path}/slo-violations`, {
      sloId: 'checkout-availability',
      windowStart: '2021-06-01T10:00:00Z',
      windowEnd: '2021-06-01T11:00:00Z',
      errorBudgetConsumed: 0.4,
      thresholdBreached: true,
    });
    await write(orgId, `${path}/severity`, { newSeverity: 'SEV1' });
    await write(orgId, `${path}/tickets`, { system: 'JIRA', key: 'OPS-1' });
    // Two signals at the very same instant: the version decides between them.
    for (const summary of ['same instant, first', 'same instant, second'])
      await write(orgId, `${path}/signals`, {
        signalType: 'METRIC',
        source: 'grafana',
        summary,
        ts: '2099-01-01T00:00:00.000Z',
      });
    await write(orgId, `${path}/actions`, { actionKind: 'PLAYBOOK', label: 'failover' });
    await write(orgId, `${path}/status`, { newStatus: 'RESOLVED' });
    return incidentId;
  }

  it('merges actions, signals and SLO violations oldest first by ts then version, in pages', async () => {
    const org = freshOrg();
    const incidentId = await busyIncident(org);
    const details = (
      await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents/${incidentId}`, token: lead(org) })
    ).json<{
      actions: { id: string; ts: string }[];
      signals: { id: string; ts: string }[];
      sloViolations: { id: string; windowStart: string }[];
    }>();
    const events = (
      await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${incidentId}/events?limit=100`,
        token: lead(org),
      })
    ).json<{ events: { eventId: string; version: number; data: Record<string, unknown> }[] }>().events;
    // The version of each item, from the raw events that made it.
    const versionOf = (id: string) =>
      events.find(
        (event) =>
          event.data.actionId === id ||
          event.data.signalId === id ||
          event.data.violationId === id ||
          serviceActionId(event.eventId) === id,
      )!.version;
    const expected = [
      ...details.actions.map((a) => ({ kind: 'action', id: a.id, ts: a.ts })),
      ...details.signals.map((s) => ({ kind: 'signal', id: s.id, ts: s.ts })),
      ...details.sloViolations.map((v) => ({ kind: 'slo_violation', id: v.id, ts: v.windowStart })),
    ]
      .map((entry) => ({ ...entry, version: versionOf(entry.id) }))
      .sort((a, b) => a.ts.localeCompare(b.ts) || a.version - b.version);
    expect(expected).toHaveLength(10);

    const seen: Entry[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await timeline(org, incidentId, `?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(response.statusCode, response.body).toBe(200);
      const page = response.json<Page>();
      expect(page.entries.length).toBeLessThanOrEqual(3);
      seen.push(...page.entries);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(4);
    expect(seen.map(({ kind, id, ts, version }) => ({ kind, id, ts, version }))).toEqual(expected);
    expect(seen[0]).toMatchObject({ kind: 'signal', summary: 'fired long ago', source: 'prometheus' });
    expect(seen.find((entry) => entry.kind === 'slo_violation')).toMatchObject({
      sloId: 'checkout-availability',
      ts: '2021-06-01T10:00:00.000Z',
      windowEnd: '2021-06-01T11:00:00.000Z',
      errorBudgetConsumed: 0.4,
    });
    expect(seen.map((entry) => entry.kind === 'action' && entry.actionKind).filter(Boolean)).toEqual([
      'STATUS_CHANGE',
      'NOTE',
      'SEVERITY_CHANGE',
      'TICKET_LINK',
      'PLAYBOOK',
      'STATUS_CHANGE',
    ]);
    const lastTwo = seen.slice(-2);
    expect(lastTwo.map((entry) => entry.summary)).toEqual(['same instant, first', 'same instant, second']);

    const all = (await timeline(org, incidentId, '?limit=500')).json<Page>();
    expect(all.entries).toEqual(seen);
    expect(all.nextCursor).toBeNull();
  });

  it('any role of the org reads it; other orgs, unknown incidents and foreign cursors are refused', async () => {
    const org = freshOrg();
    const incidentId = await busyIncident(org);
    const member = t.token({ orgs: { [org]: ['MEMBER'] } });
    expect((await timeline(org, incidentId, '', member)).statusCode).toBe(200);
    expect((await timeline(org, incidentId, '', t.token({ orgs: { [org]: ['AUDITOR'] } }))).statusCode).toBe(
      200,
    );
    const other = freshOrg();
    expectProblem(await timeline(org, incidentId, '', lead(other)), 403, 'FORBIDDEN');
    expectProblem(await timeline(other, incidentId, ''), 404, 'NOT_FOUND');
    expectProblem(await timeline(org, 'inc_doesnotexist', ''), 404, 'NOT_FOUND');

    const { incidentId: created } = await write(org, '', validIncident);
    const empty = await timeline(org, created);
    expect(empty.statusCode).toBe(200);
    expect(empty.json()).toEqual({ entries: [], nextCursor: null });

    const first = (await timeline(org, incidentId, '?limit=2')).json<Page>();
    expectProblem(await timeline(org, created, `?cursor=${first.nextCursor}`), 400, 'VALIDATION_FAILED');
    const tampered = `${first.nextCursor!.slice(0, -2)}xx`;
    expectProblem(await timeline(org, incidentId, `?cursor=${tampered}`), 400, 'VALIDATION_FAILED');
    expectProblem(await timeline(org, incidentId, '?limit=501'), 400, 'VALIDATION_FAILED');
    expectProblem(await timeline(org, incidentId, '?limit=0'), 400, 'VALIDATION_FAILED');
  });
});
