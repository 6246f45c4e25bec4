import { expect } from 'vitest';
import { orgStreamPrefix } from '../../src/domain/streams.ts';
import type { RecordedEvent } from '../../src/eventstore/port.ts';
import { validIncident } from '../http/support.ts';
import type { TestApp } from '../support/app.ts';
import type { Received } from './receiver.ts';

export { FAST } from './timings.ts';

export const admin = (t: TestApp, org: string) => t.token({ sub: 'alice', orgs: { [org]: ['ORG_ADMIN'] } });

/** Registers an endpoint; returns its id and secret. */
export async function register(
  t: TestApp,
  org: string,
  url: string,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; secret: string }> {
  const response = await t.request({
    method: 'POST',
    url: `/api/orgs/${org}/webhooks`,
    token: admin(t, org),
    payload: { url, ...extra },
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: string; secret: string }>();
}

/** Declares `incidents` incidents and moves each through a few changes: several events per stream. */
export async function makeEvents(t: TestApp, org: string, incidents: number): Promise<void> {
  const token = admin(t, org);
  for (let i = 0; i < incidents; i++) {
    const created = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents`,
      token,
      payload: { ...validIncident, title: `incident ${i}` },
    });
    // 202 when the read models lag under load; the event is appended either way.
    expect([201, 202], created.body).toContain(created.statusCode);
    const { incidentId } = created.json<{ incidentId: string }>();
    for (const payload of [{ tag: 'db' }, { tag: 'checkout' }]) {
      const tagged = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents/${incidentId}/tags`,
        token,
        payload,
      });
      expect(tagged.statusCode, tagged.body).toBeLessThan(300);
    }
  }
}

export async function orgEvents(t: TestApp, org: string): Promise<RecordedEvent[]> {
  return t.runtime.store.readAll({ streamPrefix: orgStreamPrefix(org), limit: 100_000 });
}

/** What arrived (first success of each webhook-id) is exactly these events, in this order. */
export function expectDeliveredInOrder(received: Received[], events: RecordedEvent[]): void {
  expect(received.map((r) => r.payload.data.eventId)).toEqual(events.map((e) => e.eventId));
}
