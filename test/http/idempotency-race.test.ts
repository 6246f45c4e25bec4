import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { validIncident } from './support.ts';

describe('concurrent duplicates with one Idempotency-Key', () => {
  let first: TestApp;
  let second: TestApp;
  let org: string;
  beforeAll(async () => {
    first = await startTestApp();
    // A second server on the same database: duplicates that reach two replicas.
    second = await startTestApp({ shareDatabaseOf: first, workers: false });
    org = freshOrg();
  });
  afterAll(async () => {
    await second?.cleanup();
    await first?.cleanup();
  });

  const send = (app: TestApp, key: string, url: string, payload: object) =>
    app.app.inject({
      method: 'POST',
      url,
      // Each server has a secret of its own.
      headers: {
        authorization: `Bearer ${app.token({ orgs: { [org]: ['ORG_ADMIN'] } })}`,
        'idempotency-key': key,
      },
      payload,
    });

  it.each([
    ['one server', () => [first, first]],
    ['two servers', () => [first, second]],
  ] as const)('on %s: one request wins, the others answer as its replay', async (_label, apps) => {
    const key = `race-${Math.random()}`;
    const [a, b] = apps() as [TestApp, TestApp];
    const url = `/api/orgs/${org}/incidents`;
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) => send(i % 2 ? b : a, key, url, validIncident)),
    );
    const fresh = responses.filter((response) => response.headers['idempotent-replayed'] === undefined);
    const replays = responses.filter((response) => response.headers['idempotent-replayed'] === 'true');
    expect(fresh).toHaveLength(1);
    expect(replays).toHaveLength(7);
    const winner = fresh[0]!;
    expect([201, 202]).toContain(winner.statusCode);
    for (const replay of replays) expect(replay.json()).toEqual(winner.json());
    const incidentId = winner.json<{ incidentId: string }>().incidentId;
    const events = await first.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incidentId}/events`,
      token: first.token({ orgs: { [org]: ['ORG_ADMIN'] } }),
    });
    expect(events.json<{ events: unknown[] }>().events).toHaveLength(1);
  });
});
