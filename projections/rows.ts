import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../src/db/database.ts';
import type { Schema } from '../src/db/schema.ts';
import {
  UnprojectableEvent,
  foldEvents,
  keyString,
  type ProjectedEvent,
  type Projector,
  type Row,
} from './projector.ts';

/**
 * Applies events to a projector's rows in `table` (its own, or a rebuild's copy) within `db`, the
 * transaction on `database` that also moves the checkpoint.
 */
export async function applyEvents(
  database: Database,
  db: Kysely<Schema>,
  projector: Projector,
  table: string,
  events: readonly ProjectedEvent[],
): Promise<void> {
  const statement = await planRows(database, db, projector, table, events);
  if (statement)
    await statement.execute(db).catch((error: unknown) => Promise.reject(rowError(projector, error)));
}

/**
 * The one statement that writes what `events` change in a projector's rows, or null when they change
 * none: loads the rows they touch (through `db`), folds the events into them, and upserts the rows
 * that changed. A projector that only inserts skips the load: its rows go in as new, and one that
 * exists already fails the statement, as `evolve` would. Nor is a row read whose first event in the
 * batch `startsRow`s it: it cannot exist yet. With `guard`, the statement writes only
 * where that condition holds (the daemon's: this projection's checkpoint moved in the same statement).
 */
export async function planRows(
  database: Database,
  db: Kysely<Schema>,
  projector: Projector,
  table: string,
  events: readonly ProjectedEvent[],
  guard?: RawBuilder<unknown>,
): Promise<RawBuilder<unknown> | null> {
  if (projector.insertsOnly) {
    const rows = new Map<string, Row>();
    foldEvents(projector, events, rows);
    return writeStatement(database, db, projector, table, [...rows.values()], 'insert', guard);
  }
  const keys = new Map<string, readonly string[] | null>();
  for (const event of events) {
    const key = projector.rowKey(event);
    if (key === null) continue;
    const id = keyString(key);
    // A row whose first event here starts it cannot exist yet: nothing to read (null marks it).
    if (!keys.has(id)) keys.set(id, projector.startsRow?.(event) ? null : key);
  }
  if (keys.size === 0) return null;
  const toRead = [...keys.values()].filter((key) => key !== null);
  const rows = toRead.length > 0 ? await loadRows(db, projector, table, toRead) : new Map<string, Row>();
  const changed = foldEvents(projector, events, rows);
  return writeStatement(
    database,
    db,
    projector,
    table,
    [...changed].map((key) => rows.get(key)!),
    'upsert',
    guard,
  );
}

/** What a failed row statement means: a duplicate row of an insert-only projector is its event's fault. */
export function rowError(projector: Projector, error: unknown): unknown {
  if (projector.insertsOnly && isUniqueViolation(error)) {
    return new UnprojectableEvent(
      `${projector.name}: a row with the same key exists already (${(error as { detail?: string }).detail ?? error.message})`,
    );
  }
  return error;
}

// Keys go in as one text array per key column: a long `(a, b) in (…)` list overflows PGlite's stack.
// One index lookup per key (`offset 0` keeps the subquery from being flattened): given a join, the
// planner hashes a whole fresh, never analyzed table for every batch.
async function loadRows(
  db: Kysely<Schema>,
  projector: Projector,
  table: string,
  keys: readonly (readonly string[])[],
): Promise<Map<string, Row>> {
  const columns = projector.keyColumns;
  const arrays = sql.join(columns.map((_, index) => sql`${keys.map((key) => key[index]!)}::text[]`));
  const matches = sql.join(
    columns.map((column) => sql`${sql.ref(`t.${column}`)} = ${sql.ref(`k.${column}`)}`),
    sql` and `,
  );
  const { rows } = await sql<Row>`
    select t.* from unnest(${arrays}) as k(${sql.join(columns.map((column) => sql.ref(column)))})
    cross join lateral (select * from ${sql.table(table)} t where ${matches} offset 0) t`.execute(db);
  return new Map(
    rows.map((row) => [
      keyString(projector.keyColumns.map((column) => String(row[column]))),
      fromDatabase(row),
    ]),
  );
}

/** Timestamps come back as Date: turn them into the ISO strings projectors write. */
function fromDatabase(row: Row): Row {
  return Object.fromEntries(
    Object.entries(row).map(([column, value]) => [
      column,
      value instanceof Date ? value.toISOString() : value,
    ]),
  );
}

export interface Column {
  name: string;
  /** As `format_type` spells it: `text`, `timestamp with time zone`, `text[]`, `jsonb`… */
  type: string;
}

/** The columns of a read-model table a projection writes: all but those PostgreSQL generates (migration 0008). */
export async function writtenColumns(db: Kysely<Schema>, table: string): Promise<Column[]> {
  const { rows } = await sql<Column>`
    select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
    where attrelid = ${table}::regclass and attnum > 0 and not attisdropped and attgenerated = ''
    order by attnum`.execute(db);
  return rows;
}

// Per database and table: migrations run before any projection does, so a table keeps its columns.
const columnsByDatabase = new WeakMap<Database, Map<string, Promise<readonly Column[]>>>();

// Asked through `db`, the caller's transaction: PGlite has one connection, which that transaction holds.
function columnsOf(database: Database, db: Kysely<Schema>, table: string): Promise<readonly Column[]> {
  let tables = columnsByDatabase.get(database);
  if (!tables) columnsByDatabase.set(database, (tables = new Map()));
  let columns = tables.get(table);
  if (!columns) {
    columns = writtenColumns(db, table);
    // A failed lookup is not kept: the next batch asks again.
    columns.catch(() => tables.delete(table));
    tables.set(table, columns);
  }
  return columns;
}

/** A value as the text its column's type reads in. */
function toText(value: unknown, type: string): string | null {
  if (value === null || value === undefined) return null;
  if (type === 'jsonb' || type === 'json') return JSON.stringify(value);
  if (Array.isArray(value))
    return arrayLiteral(value.map((item: unknown) => (item === null ? null : String(item))));
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') throw new TypeError(`an object for a column of type ${type}`);
  return String(value);
}

const ARRAY_SPECIAL = /[\\"]/g;

/** A PostgreSQL array literal of text elements (what pg would send for a string array, built in one pass). */
function arrayLiteral(items: readonly (string | null)[]): string {
  let literal = '{';
  for (let index = 0; index < items.length; index++) {
    const item = items[index]!;
    if (index > 0) literal += ',';
    literal +=
      item === null
        ? 'NULL'
        : `"${item.includes('"') || item.includes('\\') ? item.replace(ARRAY_SPECIAL, '\\$&') : item}"`;
  }
  return `${literal}}`;
}

// One text array per column of the table (a column the row lacks is NULL), each cast to its type in
// the server: one statement per batch whatever its size, and the cheapest way in short of COPY (a
// JSON document of rows costs the server about four times as much per row).
async function writeStatement(
  database: Database,
  db: Kysely<Schema>,
  projector: Projector,
  table: string,
  rows: readonly Row[],
  mode: 'insert' | 'upsert',
  guard: RawBuilder<unknown> | undefined,
): Promise<RawBuilder<unknown> | null> {
  if (rows.length === 0) return null;
  const columns = await columnsOf(database, db, table);
  const names = sql.join(columns.map((column) => sql.ref(column.name)));
  const arrays = sql.join(
    columns.map(
      (column) => sql`${arrayLiteral(rows.map((row) => toText(row[column.name], column.type)))}::text[]`,
    ),
  );
  const casts = sql.join(
    columns.map((column) => sql`${sql.ref(`u.${column.name}`)}::${sql.raw(column.type)}`),
  );
  const updates = columns
    .filter((column) => !projector.keyColumns.includes(column.name))
    .map((column) => sql`${sql.ref(column.name)} = excluded.${sql.ref(column.name)}`);
  const conflict =
    mode === 'upsert'
      ? sql`on conflict (${sql.join(projector.keyColumns.map((column) => sql.ref(column)))}) do update set ${sql.join(updates)}`
      : sql``;
  const where = guard ? sql`where ${guard}` : sql``;
  return sql`insert into ${sql.table(table)} (${names}) select ${casts} from unnest(${arrays}) as u(${names}) ${where} ${conflict}`;
}

function isUniqueViolation(error: unknown): error is Error {
  return error instanceof Error && (error as { code?: unknown }).code === '23505';
}
