import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';

/**
 * A fresh log is analyzed while empty (migration 0004), and a session keeps the plans `its_append`
 * made from those statistics: sequential scans of a table that keeps growing, until autovacuum
 * analyzes it (a minute or more). One writer's appends then slowed from 515/s to 171/s within
 * 3,000 events, where they run at ~1,450/s with the indexes. The store analyzes the log again as it reaches 1,000 events, which makes every
 * session plan anew. Seen through auto_explain in one session that appended from the start.
 */
describe.skipIf(!serverUrl)('a young PostgreSQL log', () => {
  let test: TestDatabase;
  let probe: pg.Client;
  const plans: string[] = [];
  let explained = true;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'server' });
    probe = new pg.Client({ connectionString: test.url });
    await probe.connect();
    probe.on('notice', (notice) => plans.push(notice.message ?? ''));
    try {
      await probe.query(`load 'auto_explain'`);
    } catch {
      explained = false;
      console.warn('young-log plan test: SKIPPED (the server has no auto_explain module)');
      return;
    }
    for (const setting of ['log_min_duration = 0', 'log_nested_statements = on', 'log_level = notice'])
      await probe.query(`set auto_explain.${setting}`);
  });
  afterAll(async () => {
    await probe?.end();
    await test?.cleanup();
  });

  const note = {
    data: { actionId: 'act_young', label: 'checked the dashboards' },
    metadata: {
      orgId: 'young',
      actor: { type: 'USER', ref: 'a' },
      occurredAt: new Date().toISOString(),
      correlationId: 'c',
      schemaVersion: 1,
    },
  };

  /** One append from the probe's session, as the store sends it: the plans its statements ran with. */
  async function probeAppend(): Promise<string[]> {
    const { data, metadata } = note;
    plans.length = 0;
    await probe.query(`select * from its_append($1, $2, -1, $3::jsonb)`, [
      `incident-young.${randomUUID()}`,
      'incident-young',
      JSON.stringify([{ eventId: randomUUID(), type: 'INCIDENT_NOTE_ADDED', data, metadata }]),
    ]);
    return [...plans];
  }

  it('is analyzed again at 1,000 events, so sessions that appended from the start stop scanning it', async (context) => {
    if (!explained) return context.skip();
    // Past PostgreSQL's five custom plans: the session keeps a generic one, made while the log is empty.
    for (let i = 0; i < 8; i++) await probeAppend();
    expect((await probeAppend()).join('\n')).toMatch(/Seq Scan on its_events/);

    const store = new PostgresEventStore(test.database);
    const { data, metadata } = note;
    for (let i = 0; i < 1_000; i++)
      await store.append(
        `incident-young.${randomUUID()}`,
        [{ eventId: randomUUID(), type: 'INCIDENT_NOTE_ADDED', data, metadata }],
        'no_stream',
      );
    // The store's ANALYZE runs beside its appends: the probe's next plans use the indexes.
    await expect
      .poll(async () => (await probeAppend()).join('\n'), { timeout: 10_000, interval: 100 })
      .not.toMatch(/Seq Scan on its_events/);
    expect((await probeAppend()).join('\n')).toMatch(/Index (Only )?Scan/);
  });
});
