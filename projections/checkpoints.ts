/**
 * Every read and write of `projection_checkpoints` (migration 0002): one row per projection, with
 * how far it has projected, what its leader is doing, its last error, and its rebuild's progress.
 * The daemon's batch commit moves checkpoints inside its own statement (`advanceStatement`).
 */
import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import type { Database } from '../src/db/database.ts';
import type { ProjectionCheckpointsTable, Schema } from '../src/db/schema.ts';

export type CheckpointRow = Selectable<ProjectionCheckpointsTable>;

/** Creates the checkpoint row of a projection if it has none yet. */
export async function ensureCheckpoint(db: Kysely<Schema>, name: string): Promise<void> {
  await db
    .insertInto('projection_checkpoints')
    .values({ name })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute();
}

/** A new leader starts at the checkpoint, and tries again whatever stopped the last one. */
export async function takeCheckpoint(db: Kysely<Schema>, name: string): Promise<string | null> {
  await ensureCheckpoint(db, name);
  const row = await db
    .updateTable('projection_checkpoints')
    .set({ state: 'running', updated_at: sql<Date>`now()` })
    .where('name', '=', name)
    .returning('position')
    .executeTakeFirstOrThrow();
  return row.position;
}

export async function checkpointRows(database: Database, names: readonly string[]): Promise<CheckpointRow[]> {
  if (names.length === 0) return [];
  return database.db.selectFrom('projection_checkpoints').selectAll().where('name', 'in', names).execute();
}

export async function checkpointPositions(
  database: Database,
  names: readonly string[],
): Promise<{ name: string; position: string | null }[]> {
  if (names.length === 0) return [];
  return database.db
    .selectFrom('projection_checkpoints')
    .select(['name', 'position'])
    .where('name', 'in', names)
    .execute();
}

/** One projection's move in a batch: from the checkpoint it started at, by `events`, in `state`. */
export interface CheckpointMove {
  name: string;
  from: string | null;
  events: number;
  state: 'running' | 'rebuilding';
}

/**
 * The CTE `moved` of a batch commit: moves each checkpoint to `to` only where it still stands where
 * the batch started (a deposed leader's lane finds it moved and changes nothing), and returns the
 * names it moved. The rows' statements of the same commit write only for names in `moved`.
 */
export function advanceStatement(moves: readonly CheckpointMove[], to: string): RawBuilder<unknown> {
  const names = moves.map((move) => move.name);
  const froms = moves.map((move) => move.from);
  const counts = moves.map((move) => move.events);
  const states = moves.map((move) => move.state);
  return sql`
    update projection_checkpoints c
    set position = ${to}, events_processed = c.events_processed + v.events, state = v.state,
        error_position = null, updated_at = now()
    from unnest(${names}::text[], ${froms}::text[], ${counts}::int[], ${states}::text[])
      as v(name, from_position, events, state)
    where c.name = v.name and c.position is not distinct from v.from_position
    returning c.name`;
}

export async function recordFailure(
  database: Database,
  name: string,
  position: string,
  message: string,
): Promise<void> {
  await database.db
    .updateTable('projection_checkpoints')
    .set({ state: 'failed', last_error: message, error_position: position, updated_at: sql<Date>`now()` })
    .where('name', '=', name)
    .execute();
}

/** On a clean stop, the row says nobody runs the projection (a failure stays recorded). */
export async function recordStopped(database: Database, name: string): Promise<void> {
  await database.db
    .updateTable('projection_checkpoints')
    .set({ state: 'idle', updated_at: sql<Date>`now()` })
    .where('name', '=', name)
    .where('state', '<>', 'failed')
    .execute();
}

/** Asks for a rebuild; clock_timestamp, not now(): the swap stamps rebuilt_at the same way, so the two compare. */
export async function markRebuildRequested(db: Kysely<Schema>, name: string): Promise<void> {
  await ensureCheckpoint(db, name);
  await db
    .updateTable('projection_checkpoints')
    .set({ rebuild_requested_at: sql<Date>`clock_timestamp()` })
    .where('name', '=', name)
    .execute();
}

export async function isRebuildRequested(database: Database, name: string): Promise<boolean> {
  const row = await database.db
    .selectFrom('projection_checkpoints')
    .select('rebuild_requested_at')
    .where('name', '=', name)
    .executeTakeFirst();
  return Boolean(row?.rebuild_requested_at);
}

export async function markRebuildStarted(database: Database, name: string, total: number): Promise<void> {
  await database.db
    .updateTable('projection_checkpoints')
    .set({ state: 'rebuilding', rebuild_done: 0, rebuild_total: total })
    .where('name', '=', name)
    .execute();
}

export async function recordRebuildProgress(db: Kysely<Schema>, name: string, done: number): Promise<void> {
  await db
    .updateTable('projection_checkpoints')
    .set({ rebuild_done: done })
    .where('name', '=', name)
    .execute();
}

/** Locks the row for the swap; the position it holds, or undefined if there is no row. */
export async function lockCheckpoint(db: Kysely<Schema>, name: string): Promise<string | null | undefined> {
  const row = await db
    .selectFrom('projection_checkpoints')
    .select('position')
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
  return row ? row.position : undefined;
}

export async function recordSwapped(
  db: Kysely<Schema>,
  name: string,
  state: 'running' | 'failed',
  events: number,
): Promise<void> {
  await db
    .updateTable('projection_checkpoints')
    .set({
      state,
      events_processed: events,
      rebuild_requested_at: null,
      rebuild_done: events,
      rebuild_total: events,
      rebuilt_at: sql<Date>`clock_timestamp()`,
      updated_at: sql<Date>`now()`,
    })
    .where('name', '=', name)
    .execute();
}

/** Recorded, and the request dropped: retrying the same failure in a loop helps no one. */
export async function recordRebuildFailure(
  database: Database,
  name: string,
  state: 'running' | 'failed',
  message: string,
): Promise<void> {
  await database.db
    .updateTable('projection_checkpoints')
    .set({
      state,
      last_error: `rebuild failed: ${message}`,
      rebuild_requested_at: null,
      updated_at: sql<Date>`now()`,
    })
    .where('name', '=', name)
    .execute();
}
