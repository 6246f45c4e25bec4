import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { Receiver } from './receiver.ts';
import { FAST, admin, expectDeliveredInOrder, makeEvents, orgEvents, register } from './support.ts';

describe('webhook delivery to a receiver that verifies every request with standardwebhooks', () => {
  let t: TestApp;
  const receivers: Receiver[] = [];
  const receiver = async () => {
    const started = await new Receiver().start();
    receivers.push(started);
    return started;
  };

  beforeAll(async () => {
    t = await startTestApp({ env: { WEBHOOK_ALLOW_PRIVATE: 'true' }, webhooks: FAST });
  });
  afterAll(async () => {
    await t?.cleanup();
    await Promise.all(receivers.map((r) => r.stop()));
  });

  it('delivers every event of the org, signed, in global-log order, and nothing of another org', async () => {
    const org = freshOrg();
    const other = freshOrg();
    const hook = await receiver();
    const { id, secret } = await register(t, org, hook.url);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    hook.secrets = [secret];
    await register(t, other, (await receiver()).url);
    await makeEvents(t, org, 3);
    await makeEvents(t, other, 1);
    const events = await orgEvents(t, org);
    expect(events).toHaveLength(9);
    await hook.until((r) => r.length >= events.length);
    expect(hook.rejected).toEqual([]);
    expectDeliveredInOrder(hook.succeeded(), events);
    // At least once: a retry after a slow answer may repeat a delivery, never with another webhook-id.
    expect(new Set(hook.received.map((r) => r.id)).size).toBe(events.length);

    const first = hook.received[0]!;
    const event = events[0]!;
    expect(JSON.parse(first.body)).toEqual({
      type: 'INCIDENT_CREATED',
      timestamp: event.createdAt,
      data: {
        orgId: org,
        incidentId: expect.stringMatching(/^inc_/),
        streamName: event.streamName,
        eventId: event.eventId,
        version: 0,
        position: event.position,
        createdAt: event.createdAt,
        data: event.data,
        metadata: event.metadata,
      },
    });
    expect(Math.abs(first.timestamp - Date.now() / 1000)).toBeLessThan(30);

    // The delivery log: newest first, each succeeded once, its id the webhook-id sent.
    const readLog = async () => {
      const log = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/webhooks/${id}/deliveries?limit=100`,
        token: admin(t, org),
      });
      expect(log.statusCode).toBe(200);
      return log.json<{
        deliveries: { id: string; eventId: string; status: string; attempts: { statusCode: number }[] }[];
      }>().deliveries;
    };
    // The receiver answers before the worker records the answer.
    await expect.poll(async () => (await readLog()).every((d) => d.status === 'succeeded')).toBe(true);
    const deliveries = await readLog();
    expect(deliveries.map((d) => d.eventId)).toEqual(events.map((e) => e.eventId).reverse());
    expect(deliveries.every((d) => d.status === 'succeeded' && d.attempts.length === 1)).toBe(true);
    expect(deliveries[0]!.attempts[0]).toMatchObject({ statusCode: 204, durationMs: expect.any(Number) });
    expect(new Set(deliveries.map((d) => d.id))).toEqual(new Set(hook.received.map((r) => r.id)));
  });

  it('starts a later endpoint at the head of the log, or at fromPosition', async () => {
    const org = freshOrg();
    await makeEvents(t, org, 1);
    const before = await orgEvents(t, org);
    const fromHead = await receiver();
    const fromStart = await receiver();
    fromHead.secrets = [(await register(t, org, fromHead.url)).secret];
    fromStart.secrets = [
      (await register(t, org, fromStart.url, { fromPosition: before[0]!.position })).secret,
    ];
    await makeEvents(t, org, 1);
    const all = await orgEvents(t, org);
    await fromHead.until((r) => r.length >= 3);
    await fromStart.until((r) => r.length >= 5);
    expectDeliveredInOrder(fromHead.succeeded(), all.slice(3));
    expectDeliveredInOrder(fromStart.succeeded(), all.slice(1));
  });

  it('retries a failing receiver with the same webhook-id and, once it recovers, has delivered everything in order', async () => {
    const org = freshOrg();
    const hook = await receiver();
    // Three failures, then it recovers (the state while failing is checked in safety.test.ts).
    hook.behaviour = (n) => (n < 3 ? 500 : 200);
    const { id, secret } = await register(t, org, hook.url);
    hook.secrets = [secret];
    await makeEvents(t, org, 2);
    const events = await orgEvents(t, org);
    await hook.until(() => hook.succeeded().length >= events.length);
    expectDeliveredInOrder(hook.succeeded(), events);
    // Every retry of the first event carried the same webhook-id.
    const firstId = hook.received[0]!.id;
    expect(hook.received.filter((r) => r.status === 500).every((r) => r.id === firstId)).toBe(true);
    const oldestDelivery = async () =>
      (
        await t.request({
          method: 'GET',
          url: `/api/orgs/${org}/webhooks/${id}/deliveries?limit=100`,
          token: admin(t, org),
        })
      )
        .json<{ deliveries: { id: string; status: string; attempts: { statusCode: number }[] }[] }>()
        .deliveries.at(-1)!;
    // The receiver answers before the worker records: wait for the log to say so.
    await expect.poll(async () => (await oldestDelivery()).status).toBe('succeeded');
    const oldest = await oldestDelivery();
    expect(oldest.id).toBe(firstId);
    expect(oldest.attempts.map((a) => a.statusCode).slice(0, 3)).toEqual([500, 500, 500]);
    expect(oldest.attempts.at(-1)!.statusCode).toBe(200);
    expect(oldest.attempts.length).toBe(hook.received.filter((r) => r.id === firstId).length);
    await expect
      .poll(async () =>
        (
          await t.request({ method: 'GET', url: `/api/orgs/${org}/webhooks/${id}`, token: admin(t, org) })
        ).json(),
      )
      .toMatchObject({ state: 'active', lastError: null, lastDeliveryAt: expect.any(String) });
  });

  it('marks a delivery failed when the schedule is spent, and goes on with the next one', async () => {
    const org = freshOrg();
    const hook = await receiver();
    hook.behaviour = (n) => (n < 8 ? 503 : 200);
    const { id, secret } = await register(t, org, hook.url);
    hook.secrets = [secret];
    await makeEvents(t, org, 1);
    const events = await orgEvents(t, org);
    await hook.until(() => hook.succeeded().length >= 2);
    // One attempt and seven retries of the first event, then it is given up; the rest arrive.
    expect(hook.received.slice(0, 8).every((r) => r.id === hook.received[0]!.id)).toBe(true);
    expectDeliveredInOrder(hook.succeeded(), events.slice(1));
    const failed = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/webhooks/${id}/deliveries?status=failed`,
      token: admin(t, org),
    });
    const [only] = failed.json<{
      deliveries: { eventId: string; attempts: unknown[]; nextAttemptAt: null }[];
    }>().deliveries;
    expect(only).toMatchObject({ eventId: events[0]!.eventId, nextAttemptAt: null });
    expect(only!.attempts).toHaveLength(8);
  });

  it('disables an endpoint at once on 410 Gone, and resumes where it stopped when enabled again', async () => {
    const org = freshOrg();
    const hook = await receiver();
    let gone = true;
    hook.behaviour = () => (gone ? 410 : 200);
    const { id, secret } = await register(t, org, hook.url);
    hook.secrets = [secret];
    await makeEvents(t, org, 1);
    await hook.until((r) => r.length >= 1);
    const token = admin(t, org);
    await expect
      .poll(async () =>
        (await t.request({ method: 'GET', url: `/api/orgs/${org}/webhooks/${id}`, token })).json(),
      )
      .toMatchObject({ state: 'disabled', enabled: false, lastError: expect.stringContaining('410') });
    await makeEvents(t, org, 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(hook.received).toHaveLength(1);
    gone = false;
    const enabled = await t.request({
      method: 'PATCH',
      url: `/api/orgs/${org}/webhooks/${id}`,
      token,
      payload: { enabled: true },
    });
    expect(enabled.json()).toMatchObject({ state: 'active', enabled: true });
    const events = await orgEvents(t, org);
    await hook.until(() => hook.succeeded().length >= events.length);
    expectDeliveredInOrder(hook.succeeded(), events);
  });

  it('disables an endpoint whose deliveries have all failed for the disable period', async () => {
    const tight = await startTestApp({
      env: { WEBHOOK_ALLOW_PRIVATE: 'true' },
      webhooks: { ...FAST, retryScheduleMs: [50, 50, 50, 50, 50, 50, 50], disableAfterMs: 400 },
      shareDatabaseOf: t,
    });
    try {
      const org = freshOrg();
      const hook = await receiver();
      hook.behaviour = () => 500;
      const { id, secret } = await register(tight, org, hook.url);
      hook.secrets = [secret];
      await makeEvents(tight, org, 1);
      const token = admin(tight, org);
      await expect
        .poll(
          async () =>
            (await tight.request({ method: 'GET', url: `/api/orgs/${org}/webhooks/${id}`, token })).json(),
          {
            timeout: 10_000,
          },
        )
        .toMatchObject({ state: 'disabled', lastError: expect.stringContaining('every delivery failed') });
    } finally {
      await tight.cleanup();
    }
  });

  it('times out a hanging receiver without holding up another endpoint', async () => {
    const org = freshOrg();
    const hanging = await receiver();
    hanging.behaviour = () => 'hang';
    const healthy = await receiver();
    const slow = await register(t, org, hanging.url);
    hanging.secrets = [slow.secret];
    healthy.secrets = [(await register(t, org, healthy.url)).secret];
    await makeEvents(t, org, 2);
    const events = await orgEvents(t, org);
    await healthy.until(() => healthy.succeeded().length >= events.length);
    expectDeliveredInOrder(healthy.succeeded(), events);
    await expect
      .poll(
        async () =>
          (
            await t.request({
              method: 'GET',
              url: `/api/orgs/${org}/webhooks/${slow.id}/deliveries?limit=100`,
              token: admin(t, org),
            })
          )
            .json<{ deliveries: { attempts: { error?: string; durationMs: number }[] }[] }>()
            .deliveries.at(-1)?.attempts[0],
        { timeout: 5000 },
      )
      .toMatchObject({ error: `no answer within ${FAST.timeoutMs} ms` });
  });

  it('signs with both secrets for a day after a rotation, and then with the new one', async () => {
    const org = freshOrg();
    const hook = await receiver();
    const { id, secret: old } = await register(t, org, hook.url);
    hook.secrets = [old];
    await makeEvents(t, org, 1);
    await hook.until(() => hook.succeeded().length >= 3);
    const rotated = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/webhooks/${id}/rotate-secret`,
      token: admin(t, org),
    });
    expect(rotated.statusCode).toBe(200);
    const { secret: fresh } = rotated.json<{ secret: string }>();
    expect(fresh).toMatch(/^whsec_/);
    expect(fresh).not.toBe(old);
    hook.secrets = [old, fresh];
    await makeEvents(t, org, 1);
    await hook.until(() => hook.succeeded().length >= 6);
    const signedBy = (from: number, to?: number) =>
      hook
        .succeeded()
        .slice(from, to)
        .map((r) => r.verifiedWith);
    expect(signedBy(0, 3)).toEqual([[0], [0], [0]]);
    expect(signedBy(3, 6)).toEqual([
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    // Past the overlap, only the new secret signs.
    await t.runtime.database.db
      .withTables<{ webhook_endpoints: { id: string; previous_secret_until: string } }>()
      .updateTable('webhook_endpoints')
      .set({ previous_secret_until: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', id)
      .execute();
    await makeEvents(t, org, 1);
    await hook.until(() => hook.succeeded().length >= 9);
    expect(signedBy(6)).toEqual([[1], [1], [1]]);
  });

  it('redelivers one delivery with the same webhook-id, and replays a range of the log', async () => {
    const org = freshOrg();
    const hook = await receiver();
    const { id, secret } = await register(t, org, hook.url);
    hook.secrets = [secret];
    await makeEvents(t, org, 2);
    const events = await orgEvents(t, org);
    await hook.until(() => hook.succeeded().length >= 6);
    const token = admin(t, org);
    const times = (webhookId: string) =>
      hook.received.filter((r) => r.id === webhookId && r.status < 300).length;
    const [first, , third, fourth, fifth, sixth] = hook.succeeded();
    const redelivered = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/webhooks/${id}/deliveries/${first!.id}/redeliver`,
      token,
    });
    expect(redelivered.statusCode, redelivered.body).toBe(202);
    await hook.until(() => times(first!.id) >= 2);
    expect(hook.received.findLast((r) => r.id === first!.id)!.body).toBe(first!.body);

    const replayed = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/webhooks/${id}/replay`,
      token,
      payload: { fromPosition: events[1]!.position, toPosition: events[4]!.position },
    });
    expect(replayed.statusCode, replayed.body).toBe(202);
    expect(replayed.json()).toEqual({ deliveries: 3 });
    // The events after the second up to the fifth, again, with their webhook-ids; not the others.
    await hook.until(() => [third, fourth, fifth].every((r) => times(r!.id) >= 2));
    expect([third, fourth, fifth].map((r) => r!.payload.data.eventId)).toEqual(
      events.slice(2, 5).map((e) => e.eventId),
    );
    expect(times(sixth!.id)).toBe(1);

    const missing = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/webhooks/${id}/deliveries/msg_0123456789abcdef/redeliver`,
      token,
    });
    expect(missing.statusCode).toBe(404);
  });
});
