import { sql, type Kysely } from 'kysely';

/** Outbound webhooks (src/webhooks/): the endpoints an org registers and one row per event to deliver. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // `position` is the endpoint's own checkpoint in the global log: the last event turned into a
  // delivery row (or skipped by its type filter). The lease lets one process at a time deliver to it.
  await sql`
    create table webhook_endpoints (
      id text primary key,
      org_id text not null,
      url text not null,
      description text,
      event_types text[] not null,
      enabled boolean not null,
      secret text not null,
      previous_secret text,
      previous_secret_until timestamptz,
      position text,
      disabled_reason text,
      failing_since timestamptz,
      last_delivery_at timestamptz,
      last_error text,
      lease_owner text,
      lease_until timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index webhook_endpoints_org on webhook_endpoints (org_id, created_at, id)`.execute(db);
  // One row per (endpoint, event): its id is the webhook-id of every attempt, replays included.
  await sql`
    create table webhook_deliveries (
      id text primary key,
      endpoint_id text not null references webhook_endpoints (id) on delete cascade,
      org_id text not null,
      seq bigserial not null,
      event_id text not null,
      event_type text not null,
      incident_id text not null,
      position text not null,
      body text not null,
      status text not null,
      attempts jsonb not null default '[]',
      failures integer not null default 0,
      next_attempt_at timestamptz,
      created_at timestamptz not null default now(),
      unique (endpoint_id, event_id)
    )`.execute(db);
  await sql`create index webhook_deliveries_log on webhook_deliveries (endpoint_id, seq)`.execute(db);
  await sql`create index webhook_deliveries_pending on webhook_deliveries (endpoint_id, seq) where status = 'pending'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table webhook_deliveries`.execute(db);
  await sql`drop table webhook_endpoints`.execute(db);
}
