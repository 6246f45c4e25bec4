import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { validIncident } from './support.ts';

/** The contract's figures (issue 14), written out so the test pins them. */
const DETAILS_LIST_LIMIT = 200;
const PAGE_BYTE_BUDGET = 4 * 1024 * 1024;

describe('answers stay bounded however busy an incident is', () => {
  let t: TestApp;
  let org: string;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp();
    org = freshOrg();
    token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const create = async (orgId = org) => {
    const created = await t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/incidents`,
      token,
      payload: validIncident,
    });
    expect(created.statusCode).toBe(201);
    return created.json<{ incidentId: string }>().incidentId;
  };

  it('embeds the most recent 200 of each list in the details, oldest first, with counts of all', async () => {
    const incident = await create();
    const notes = DETAILS_LIST_LIMIT + 5;
    for (let i = 0; i < notes; i++) {
      const response = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents/${incident}/actions`,
        token,
        // Only the last write waits for the read models; it lands after all the others.
        headers: i < notes - 1 ? { prefer: 'respond-async' } : {},
        payload: { actionKind: 'NOTE', label: `note ${i}` },
      });
      expect(response.statusCode).toBeLessThan(300);
    }
    await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents/${incident}/signals`,
      token,
      payload: { signalType: 'ALERT', source: 'prometheus', summary: 'one signal' },
    });
    const details = await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents/${incident}`, token });
    expect(details.statusCode).toBe(200);
    const body = details.json<{
      actions: { label: string }[];
      signals: unknown[];
      sloViolations: unknown[];
      counts: { signals: number; actions: number; sloViolations: number };
    }>();
    expect(body.counts).toEqual({ signals: 1, actions: notes, sloViolations: 0 });
    expect(body.actions).toHaveLength(DETAILS_LIST_LIMIT);
    expect(body.actions.map((action) => action.label)).toEqual(
      Array.from({ length: DETAILS_LIST_LIMIT }, (_, i) => `note ${i + notes - DETAILS_LIST_LIMIT}`),
    );
    expect(body.signals).toHaveLength(1);
  });

  it('stops a page of events at the byte budget and says where to go on, for the org feed and the stream', async () => {
    // An org of its own, so the feed holds only this test's events.
    org = freshOrg();
    token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
    const incident = await create();
    const data = { blob: 'x'.repeat(60 * 1024) };
    const signals = Math.ceil(PAGE_BYTE_BUDGET / (60 * 1024)) + 6;
    for (let i = 0; i < signals; i++) {
      const response = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents/${incident}/signals`,
        token,
        // The last write waits for the read models, so the feed shows all of them (the log's horizon passed it).
        headers: i < signals - 1 ? { prefer: 'respond-async' } : {},
        payload: { signalType: 'LOG', source: 'loki', summary: `big ${i}`, data },
      });
      expect(response.statusCode).toBe(i < signals - 1 ? 202 : 200);
    }
    const total = signals + 1; // and the creation

    const seen: string[] = [];
    let from: string | null = null;
    let pages = 0;
    do {
      const page = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/events?limit=1000${from ? `&fromPosition=${from}` : ''}`,
        token,
      });
      expect(page.statusCode).toBe(200);
      expect(Buffer.byteLength(page.body)).toBeLessThan(PAGE_BYTE_BUDGET + 64 * 1024);
      const body = page.json<{ events: { eventId: string }[]; nextFromPosition: string | null }>();
      expect(body.events.length).toBeGreaterThan(0);
      seen.push(...body.events.map((event) => event.eventId));
      from = body.nextFromPosition;
      pages++;
    } while (from !== null);
    expect(pages).toBeGreaterThan(1);
    expect(new Set(seen).size).toBe(total);
    expect(seen).toHaveLength(total);

    // The same through the type filter, and through the incident's own stream.
    const filtered = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/events?limit=1000&type=INCIDENT_SIGNAL_INGESTED`,
      token,
    });
    const filteredBody = filtered.json<{ events: unknown[]; nextFromPosition: string | null }>();
    expect(filteredBody.events.length).toBeLessThan(signals);
    expect(filteredBody.nextFromPosition).not.toBeNull();

    const stream = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incident}/events?limit=1000`,
      token,
    });
    const streamBody = stream.json<{ events: { version: number }[]; nextFromVersion: number | null }>();
    expect(Buffer.byteLength(stream.body)).toBeLessThan(PAGE_BYTE_BUDGET + 64 * 1024);
    expect(streamBody.events.length).toBeLessThan(total);
    expect(streamBody.nextFromVersion).toBe(streamBody.events.at(-1)!.version + 1);
  });
});
