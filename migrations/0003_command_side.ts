import { sql, type Kysely } from 'kysely';

/** What the command handler keeps beside the events: idempotency keys and aggregate snapshots. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A key is reserved (with the ids its command will use) before the append, and completed with the
  // response after it, so a retry after a crash re-sends the very same events.
  await sql`
    create table idempotency_keys (
      org_id text not null,
      key text not null,
      request_hash text not null,
      reservation jsonb not null,
      response jsonb,
      created_at timestamptz not null default now(),
      primary key (org_id, key)
    )`.execute(db);
  // A cache: deleting every row only makes the next loads fold whole streams again.
  await sql`
    create table incident_snapshots (
      stream_name text primary key,
      version bigint not null,
      position text not null,
      schema_version integer not null,
      state jsonb not null
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table incident_snapshots`.execute(db);
  await sql`drop table idempotency_keys`.execute(db);
}
