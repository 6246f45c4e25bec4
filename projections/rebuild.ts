import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { Schema } from '../src/db/schema.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../src/eventstore/port.ts';
import { INCIDENT_STREAM_PREFIX, toProjectedEvent, type Projector } from './projector.ts';
import { applyEvents } from './rows.ts';

/** Events per replay transaction. */
const REPLAY_BATCH = 5000;

export type RebuildProgress = (done: number, total: number) => void;

/** The live side of a projection, as a rebuild running beside it needs it. */
export interface LiveProjection {
  readonly database: Database;
  readonly store: EventStore;
  readonly projector: Projector;
  readonly logger: Logger;
  /** Aborts when this process stops leading the projection. */
  readonly signal: AbortSignal;
  /** The live checkpoint: every event up to it is in the live table. */
  readonly position: string | null;
  /** The state to record once the rebuild is over: `failed` while the live side is stuck on an event. */
  liveState(): 'running' | 'failed';
  /** Holds the live side between two batches; it carries on when the returned function is called. */
  pause(): Promise<() => void>;
}

/** The live checkpoint moved under this worker: another one took the projection over. */
export class LeadershipLost extends Error {
  override readonly name = 'LeadershipLost';
}

/** The worker is stopping: give up quietly. */
export class Stopped extends Error {
  override readonly name = 'Stopped';
}

/**
 * Replays every event into a fresh copy of the projection's table while the live one keeps serving
 * and being updated, then swaps the copy in (one transaction, at the live checkpoint) and lets the
 * live side carry on from there.
 */
export async function rebuildWhileLive(live: LiveProjection, onProgress: RebuildProgress = () => {}): Promise<void> {
  const { database, store, projector, signal, logger } = live;
  const db = database.db;
  const name = projector.name;
  const scratch = `${projector.table}__rebuild`;
  const startedAt = performance.now();
  let done = 0;
  let total = 0;
  let replayed: string | null = null;

  // Replays the events after the last replayed one, up to and including `target`.
  const replayUpTo = async (target: string | null): Promise<void> => {
    for (;;) {
      if (signal.aborted) throw new Stopped(`rebuild of ${name} interrupted`);
      const events: RecordedEvent[] = await store.readAll({ fromPosition: replayed, streamPrefix: INCIDENT_STREAM_PREFIX, limit: REPLAY_BATCH });
      const due = events.filter((event) => comparePositions(event.position, target) <= 0);
      if (due.length === 0) return;
      await db.transaction().execute(async (trx) => {
        await applyEvents(database, trx, projector, scratch, due.map(toProjectedEvent));
        await trx.updateTable('projection_checkpoints').set({ rebuild_done: done + due.length }).where('name', '=', name).execute();
      });
      replayed = due.at(-1)!.position;
      done += due.length;
      total = Math.max(total, done);
      onProgress(done, total);
      if (due.length < events.length) return;
    }
  };

  logger.info({ projection: name }, 'rebuild started');
  try {
    await sql`drop table if exists ${sql.table(scratch)}`.execute(db);
    await sql`create table ${sql.table(scratch)} (like ${sql.table(projector.table)} including all)`.execute(db);
    total = await store.countEvents({ streamPrefix: INCIDENT_STREAM_PREFIX });
    await db.updateTable('projection_checkpoints').set({ state: 'rebuilding', rebuild_done: 0, rebuild_total: total }).where('name', '=', name).execute();
    onProgress(0, total);

    // Chase the live checkpoint while the live side keeps the old table current.
    let before: number;
    do {
      before = done;
      await replayUpTo(live.position);
    } while (done - before >= REPLAY_BATCH);
    const resume = await live.pause();
    try {
      await replayUpTo(live.position);
      await db.transaction().execute(async (trx) => {
        const checkpoint = await trx.selectFrom('projection_checkpoints').select('position').where('name', '=', name).forUpdate().executeTakeFirst();
        if (!checkpoint || comparePositions(checkpoint.position, live.position) !== 0) throw new LeadershipLost(`checkpoint of ${name} moved during its rebuild`);
        await swapTables(trx, projector.table, scratch);
        await trx
          .updateTable('projection_checkpoints')
          .set({
            state: live.liveState(),
            events_processed: done,
            rebuild_requested_at: null,
            rebuild_done: done,
            rebuild_total: done,
            rebuilt_at: sql<Date>`clock_timestamp()`,
            updated_at: sql<Date>`now()`,
          })
          .where('name', '=', name)
          .execute();
      });
    } finally {
      resume();
    }
  } catch (error) {
    await sql`drop table if exists ${sql.table(scratch)}`.execute(db).catch(() => {});
    if (error instanceof Stopped || error instanceof LeadershipLost) throw error;
    // Recorded, and the request dropped: retrying the same failure in a loop helps no one.
    const message = error instanceof Error ? error.message : String(error);
    await db
      .updateTable('projection_checkpoints')
      .set({ state: live.liveState(), last_error: `rebuild failed: ${message}`, rebuild_requested_at: null, updated_at: sql<Date>`now()` })
      .where('name', '=', name)
      .execute()
      .catch(() => {});
    logger.error({ projection: name, err: error }, 'rebuild failed');
    throw error;
  }
  logger.info({ projection: name, events: done, seconds: Math.round(performance.now() - startedAt) / 1000 }, 'rebuild swapped in');
}

/**
 * Puts `scratch` in the place of `table`, and gives its indexes (and so its primary key constraint)
 * the names the live ones had, so a schema never drifts through rebuilds.
 */
export async function swapTables(db: Kysely<Schema>, table: string, scratch: string): Promise<void> {
  const indexesOf = async (name: string) =>
    (await sql<{ indexname: string; indexdef: string }>`select indexname, indexdef from pg_indexes where schemaname = current_schema() and tablename = ${name}`.execute(db)).rows;
  // What an index is, whatever its name and table: uniqueness, method, columns, predicate.
  const shape = (definition: string) => `${definition.startsWith('CREATE UNIQUE') ? 'unique' : ''}${definition.slice(definition.indexOf(' USING '))}`;
  const liveIndexes = await indexesOf(table);
  const freshIndexes = await indexesOf(scratch);
  const retired = `${table}__retired`;
  await sql`alter table ${sql.table(table)} rename to ${sql.id(retired)}`.execute(db);
  await sql`alter table ${sql.table(scratch)} rename to ${sql.id(table)}`.execute(db);
  await sql`drop table ${sql.table(retired)}`.execute(db);
  for (const fresh of freshIndexes) {
    const original = liveIndexes.find((index) => shape(index.indexdef) === shape(fresh.indexdef));
    if (original && original.indexname !== fresh.indexname) {
      await sql`alter index ${sql.id(fresh.indexname)} rename to ${sql.id(original.indexname)}`.execute(db);
    }
  }
}

