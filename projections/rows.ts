import { sql, type Kysely } from 'kysely';
import type { Schema } from '../src/db/schema.ts';
import { foldEvents, keyString, type ProjectedEvent, type Projector, type Row } from './projector.ts';

/** Rows per INSERT: keeps the widest table well under PostgreSQL's 65,535 parameters. */
const UPSERT_CHUNK = 500;

/**
 * Applies events to a projector's rows in `table` (its own, or a rebuild's copy): loads the rows they
 * touch, folds the events into them, and writes back the rows that changed. Run it inside the
 * transaction that also moves the checkpoint.
 */
export async function applyEvents(db: Kysely<Schema>, projector: Projector, table: string, events: readonly ProjectedEvent[]): Promise<void> {
  const keys = new Map<string, readonly string[]>();
  for (const event of events) {
    const key = projector.rowKey(event);
    if (key !== null) keys.set(keyString(key), key);
  }
  if (keys.size === 0) return;
  const rows = await loadRows(db, projector, table, [...keys.values()]);
  const changed = foldEvents(projector, events, rows);
  await upsertRows(db, projector, table, [...changed].map((key) => rows.get(key)!));
}

// Keys go in as one text array per key column: a long `(a, b) in (…)` list overflows PGlite's stack.
async function loadRows(db: Kysely<Schema>, projector: Projector, table: string, keys: readonly (readonly string[])[]): Promise<Map<string, Row>> {
  const columns = projector.keyColumns;
  const arrays = sql.join(columns.map((_, index) => sql`${keys.map((key) => key[index]!)}::text[]`));
  const matches = sql.join(columns.map((column) => sql`${sql.ref(`t.${column}`)} = ${sql.ref(`k.${column}`)}`), sql` and `);
  const { rows } = await sql<Row>`
    select t.* from ${sql.table(table)} t
    join unnest(${arrays}) as k(${sql.join(columns.map((column) => sql.ref(column)))}) on ${matches}`.execute(db);
  return new Map(rows.map((row) => [keyString(projector.keyColumns.map((column) => String(row[column]))), fromDatabase(row)]));
}

/** Timestamps come back as Date: turn them into the ISO strings projectors write. */
function fromDatabase(row: Row): Row {
  return Object.fromEntries(Object.entries(row).map(([column, value]) => [column, value instanceof Date ? value.toISOString() : value]));
}

async function upsertRows(db: Kysely<Schema>, projector: Projector, table: string, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const updates = columns
    .filter((column) => !projector.keyColumns.includes(column))
    .map((column) => sql`${sql.ref(column)} = excluded.${sql.ref(column)}`);
  for (let start = 0; start < rows.length; start += UPSERT_CHUNK) {
    const values = rows.slice(start, start + UPSERT_CHUNK).map((row) => sql`(${sql.join(columns.map((column) => toParameter(projector, column, row[column])))})`);
    await sql`
      insert into ${sql.table(table)} (${sql.join(columns.map((column) => sql.ref(column)))})
      values ${sql.join(values)}
      on conflict (${sql.join(projector.keyColumns.map((column) => sql.ref(column)))}) do update set ${sql.join(updates)}`.execute(db);
  }
}

// pg would send a JS array as a PostgreSQL array, so jsonb values go as JSON text.
function toParameter(projector: Projector, column: string, value: unknown) {
  if (projector.jsonColumns.includes(column) && value !== null) return sql`${JSON.stringify(value)}::jsonb`;
  return sql`${value}`;
}

/** Creates the checkpoint row of a projection if it has none yet. */
export async function ensureCheckpoint(db: Kysely<Schema>, name: string): Promise<void> {
  await db.insertInto('projection_checkpoints').values({ name }).onConflict((conflict) => conflict.column('name').doNothing()).execute();
}
