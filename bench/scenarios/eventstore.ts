import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { openPostgres } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { appendThroughput, noteEvent, throughput, type BenchRow } from '../lib.ts';

/** Appends/s of the PostgreSQL adapter at 1 and 16 writers, beside raw single-row INSERTs. */
export async function eventStoreAppends(url: string, durationMs: number): Promise<BenchRow[]> {
  const database = openPostgres(url, { poolSize: 20 });
  await migrateToLatest(database.db);
  const store = new PostgresEventStore(database);
  await sql`create table if not exists bench_raw_events (id bigint generated always as identity primary key, stream_name text not null, event_id uuid not null, type text not null, data jsonb not null, metadata jsonb not null)`.execute(
    database.db,
  );
  const { data, metadata } = noteEvent();
  const rows: BenchRow[] = [];
  try {
    for (const writers of [1, 16]) {
      const raw = await throughput(writers, durationMs, async (loop) => {
        await sql`insert into bench_raw_events (stream_name, event_id, type, data, metadata) values (${`raw-${loop}`}, ${randomUUID()}, 'INCIDENT_NOTE_ADDED', ${JSON.stringify(data)}::jsonb, ${JSON.stringify(metadata)}::jsonb)`.execute(
          database.db,
        );
      });
      const appends = await appendThroughput(store, writers, durationMs);
      rows.push({
        scenario: 'event store',
        metric: `appends/s, ${writers} writer${writers > 1 ? 's' : ''}`,
        value: appends,
        unit: 'events/s',
        baseline: { label: 'raw single-row INSERT/s', value: raw },
        target: writers === 16 ? '>= 0.5' : undefined,
      });
    }
  } finally {
    await database.close();
  }
  return rows;
}
