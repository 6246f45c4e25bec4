import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertGroupHash } from '../../src/domain/alert-group/index.ts';
import { alertGroupStreamName, incidentStreamName } from '../../src/domain/streams.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { alertmanagerNotification, type AlertSpec } from './payloads.ts';

interface Ingested {
  incidents: { incidentId: string; created: boolean; version: number; position: string }[];
}

describe(`concurrent deliveries to two ITS instances on ${databaseLabel}`, () => {
  let first: TestApp;
  let second: TestApp;
  beforeAll(async () => {
    // Every answer here must wait for the read models, even on a loaded machine.
    const env = { CONSISTENCY_TIMEOUT_MS: '30000' };
    first = await startTestApp({ env });
    // A second runtime on the same databases: its own pool, store and projection workers.
    second = await startTestApp({ env, shareDatabaseOf: first });
  });
  afterAll(async () => {
    await second?.cleanup();
    await first?.cleanup();
  });

  const deliverTo = (t: TestApp, orgId: string, body: unknown) =>
    t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/alerts/alertmanager`,
      token: t.token({ sub: 'alertmanager-ha', orgs: { [orgId]: ['MEMBER'] } }),
      payload: body as Record<string, unknown>,
    });
  /** The same body 20 times at once, alternating between the two instances. */
  const storm = (orgId: string, body: unknown) =>
    Promise.all(Array.from({ length: 20 }, (_, i) => deliverTo(i % 2 === 0 ? first : second, orgId, body)));
  const incidentEvents = (orgId: string, incidentId: string) =>
    first.runtime.store.readStream(incidentStreamName(orgId, incidentId));

  it('20 deliveries of one new group: one incident, each alert once; then a change delivered 20 times lands once', async () => {
    const org = freshOrg('ha');
    const group = '{}/{}:{alertname="DiskFull"}';
    const alerts: AlertSpec[] = ['a', 'b', 'c', 'd', 'e'].map((fingerprint) => ({ fingerprint }));
    const answers = await storm(org, alertmanagerNotification(group, alerts));
    for (const answer of answers) expect(answer.statusCode, answer.body).toBe(200);
    const results = answers.map((answer) => answer.json<Ingested>().incidents);
    const ids = new Set(results.map((incidents) => incidents[0]!.incidentId));
    expect(ids.size).toBe(1);
    expect(results.filter((incidents) => incidents[0]!.created)).toHaveLength(1);
    const incidentId = [...ids][0]!;

    const events = await incidentEvents(org, incidentId);
    expect(events.map((e) => e.type)).toEqual([
      'INCIDENT_CREATED',
      ...alerts.map(() => 'INCIDENT_SIGNAL_INGESTED'),
    ]);
    expect(events.slice(1).map((e) => e.data.fingerprint)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const groupStream = await first.runtime.store.readStream(
      alertGroupStreamName(org, alertGroupHash(group)),
    );
    expect(groupStream).toHaveLength(1);

    // One alert resolves and a severe one joins: delivered 20 times, recorded once.
    const changed = alertmanagerNotification(group, [
      { fingerprint: 'a', status: 'resolved' },
      ...alerts.slice(1),
      { fingerprint: 'f', severity: 'critical' },
    ]);
    for (const answer of await storm(org, changed)) expect(answer.statusCode, answer.body).toBe(200);
    const after = await incidentEvents(org, incidentId);
    expect(after.slice(events.length).map((e) => [e.type, e.data.fingerprint ?? e.data.to])).toEqual([
      ['INCIDENT_SIGNAL_INGESTED', 'a'],
      ['INCIDENT_SIGNAL_INGESTED', 'f'],
      ['INCIDENT_SEVERITY_CHANGED', 'SEV1'],
    ]);

    // The read models of both instances agree (every answer waited for them).
    for (const t of [first, second]) {
      const shown = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${incidentId}`,
        token: t.token({ sub: 'reader', orgs: { [org]: ['AUDITOR'] } }),
      });
      const details = shown.json<{ signals: unknown[]; incident: { severity: string } }>();
      expect(details.incident.severity).toBe('SEV1');
      expect(details.signals).toHaveLength(7);
    }
  });
});
