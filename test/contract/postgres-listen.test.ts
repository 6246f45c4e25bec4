import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';
import { collect } from '../support/subscriber.ts';

/**
 * The one LISTEN session a process shares (src/db/database.ts): a subscriber that goes while the
 * next one comes (the projection daemon resubscribes so whenever a lane joins) must leave the
 * channel listened to. Before, the last listener's UNLISTEN could reach the server after the next
 * one's LISTEN, and every subscriber then woke on its 5 s idle timer alone.
 */
describe.skipIf(!serverUrl)('the shared LISTEN session of a PostgreSQL server', () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await openTestDatabase({ migrate: false });
  });
  afterAll(async () => {
    await test?.cleanup();
  });

  const heard = () => {
    let hear!: (payload: string | null) => void;
    const next = new Promise<string | null>((resolve) => (hear = resolve));
    return { next, onNotify: (payload: string | null) => hear(payload) };
  };

  it('keeps a channel listened to when one listener leaves as the next arrives, in any order', async () => {
    const { database } = test;
    for (let round = 0; round < 20; round++) {
      const channel = `listen_race_${round}`;
      const first = await database.listen(channel, () => {});
      const second = heard();
      // Not awaited in between, as a resubscription does it: the old subscriber's finally runs late.
      const leaving = first();
      const arriving = database.listen(channel, second.onNotify);
      const unlistenSecond = await arriving;
      await leaving;
      await sql`select pg_notify(${channel}, 'hello')`.execute(database.db);
      const payload = await Promise.race([
        second.next,
        new Promise<string>((resolve) => setTimeout(() => resolve('no notification within 2 s'), 2000)),
      ]);
      expect(payload, `round ${round}`).toBe('hello');
      await unlistenSecond();
    }
  });

  it("wakes this process's subscribers on an append here without waiting for the NOTIFY", async () => {
    // The same database with every NOTIFY lost: only the store's own wake-up is left.
    const deaf: Database = { ...test.database, listen: async () => async () => {} };
    await migrateToLatest(deaf.db);
    const store = new PostgresEventStore(deaf);
    const prefix = `incident-wake${randomUUID().slice(0, 6)}.`;
    const subscriber = collect(store, prefix);
    try {
      // Let the subscriber find the log empty and settle into its idle wait (5 s without a wake-up).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const appended = performance.now();
      await store.append(
        `${prefix}a`,
        [{ eventId: randomUUID(), type: 'INCIDENT_NOTE', data: {}, metadata: { schemaVersion: 1 } }],
        'no_stream',
      );
      await subscriber.until(1);
      expect(performance.now() - appended).toBeLessThan(1000);
    } finally {
      await subscriber.stop();
    }
  });
});
