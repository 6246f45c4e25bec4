import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEventStore, streamGroup } from '../../src/eventstore/postgres/index.ts';
import { untilVisible } from './eventstore-contract.ts';
import { collect } from '../support/subscriber.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';

const event = (type: string) => ({ eventId: randomUUID(), type, data: {}, metadata: { schemaVersion: 1 } });

// Two sessions must interleave, which one embedded PGlite session cannot do.
if (!serverUrl) console.warn('PostgreSQL gap test: SKIPPED (DATABASE_URL is not set)');

describe.skipIf(!serverUrl)('PostgreSQL event store: an append that commits late', () => {
  let test: TestDatabase;
  let store: PostgresEventStore;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'server' });
    store = new PostgresEventStore(test.database);
  });
  afterAll(async () => {
    await test?.cleanup();
  });

  it('is never skipped by a subscriber that already saw later-positioned commits', async () => {
    const prefix = `incident-gap${randomUUID().slice(0, 8)}.`;
    await store.append(`${prefix}inc_a`, [event('A')], 'no_stream');

    const subscriber = collect(store, prefix);
    const { received, until } = subscriber;
    await until(1);

    // Hold B's append open: it has taken its transaction id and position, but not committed.
    const held = new pg.Client({ connectionString: test.url });
    await held.connect();
    await held.query('begin');
    await held.query('select * from its_append($1, $2, -1, $3::jsonb)', [
      `${prefix}inc_b`,
      streamGroup(`${prefix}inc_b`),
      JSON.stringify([event('B')]),
    ]);

    // Later appends commit first.
    await store.append(`${prefix}inc_c`, [event('C1')], 'no_stream');
    await store.append(`${prefix}inc_c`, [event('C2')], 0);
    const committedRows = await test.database.db
      .selectFrom('its_events')
      .select('type')
      .where('stream_name', 'like', `${prefix}%`)
      .execute();
    expect(committedRows.map((r) => r.type).sort()).toEqual(['A', 'C1', 'C2']);

    // While B is open, nothing after it is visible in the global log, so nothing can be passed by.
    expect((await store.readAll({ streamPrefix: prefix, limit: 10 })).map((e) => e.type)).toEqual(['A']);
    expect(received.map((e) => e.type)).toEqual(['A']);

    await held.query('commit');
    await held.end();
    await until(4);
    await subscriber.stop();

    expect(received.map((e) => e.type)).toEqual(['A', 'B', 'C1', 'C2']);
    const log = await store.readAll({ streamPrefix: prefix, limit: 10 });
    expect(log.map((e) => e.eventId)).toEqual(received.map((e) => e.eventId));
  });

  it('keeps each stream in version order in the global log when appends to it race', async () => {
    const stream = `incident-race${randomUUID().slice(0, 8)}.inc_x`;
    await store.append(stream, [event('V0')], 'no_stream');
    const results = await Promise.all(
      Array.from({ length: 40 }, () => store.append(stream, [event('V')], 'any')),
    );
    const last = results.find((result) => result.version === 40)!;
    await untilVisible(store, stream, last.position);
    const log = await store.readAll({ streamPrefix: stream, limit: 100 });
    expect(log.map((e) => e.version)).toEqual(Array.from({ length: 41 }, (_, i) => i));
  });
});
