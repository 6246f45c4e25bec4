import { sql, type Kysely } from 'kysely';

/**
 * Read models projected from the incident streams, plus the checkpoints of their projections.
 * Every row carries org_id; list indexes lead with it and end with the keyset (sort key, id).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table incidents (
      org_id text not null,
      id text not null,
      project_id text not null,
      title text not null,
      description text,
      service_name text not null,
      status text not null,
      severity text not null,
      severity_rank smallint not null,
      environment text not null,
      detected_by text,
      primary_signal_id text,
      runbook_path text,
      external_refs jsonb not null default '[]',
      correlation_keys text[] not null default '{}',
      tags text[] not null default '{}',
      created_by_type text not null,
      created_by_ref text not null,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      acknowledged_at timestamptz,
      mitigated_at timestamptz,
      resolved_at timestamptz,
      cancelled_at timestamptz,
      version integer not null,
      primary key (org_id, id)
    )`.execute(db);
  for (const [name, columns] of [
    ['incidents_created', 'org_id, created_at, id'],
    ['incidents_updated', 'org_id, updated_at, id'],
    ['incidents_severity', 'org_id, severity_rank, created_at, id'],
    ['incidents_status', 'org_id, status, created_at, id'],
    ['incidents_service', 'org_id, service_name, created_at, id'],
    ['incidents_project', 'org_id, project_id, created_at, id'],
    ['incidents_environment', 'org_id, environment, created_at, id'],
  ] as const) {
    await sql`create index ${sql.raw(name)} on incidents (${sql.raw(columns)})`.execute(db);
  }
  await sql`create index incidents_tags on incidents using gin (tags)`.execute(db);
  await sql`create index incidents_correlation_keys on incidents using gin (correlation_keys)`.execute(db);

  await sql`
    create table incident_signals (
      org_id text not null,
      incident_id text not null,
      id text not null,
      signal_type text not null,
      source text not null,
      summary text not null,
      service_name text,
      environment text,
      correlation_key text,
      trace_id text,
      data jsonb,
      ts timestamptz not null,
      version integer not null,
      primary key (org_id, incident_id, id)
    )`.execute(db);
  await sql`create index incident_signals_order on incident_signals (org_id, incident_id, version)`.execute(
    db,
  );

  await sql`
    create table incident_actions (
      org_id text not null,
      incident_id text not null,
      id text not null,
      action_kind text not null,
      label text not null,
      details text,
      actor_type text not null,
      actor_ref text not null,
      ts timestamptz not null,
      version integer not null,
      primary key (org_id, incident_id, id)
    )`.execute(db);
  await sql`create index incident_actions_order on incident_actions (org_id, incident_id, version)`.execute(
    db,
  );

  await sql`
    create table incident_slo_violations (
      org_id text not null,
      incident_id text not null,
      id text not null,
      slo_id text not null,
      window_start timestamptz not null,
      window_end timestamptz not null,
      error_budget_consumed double precision not null,
      threshold_breached boolean not null,
      details text,
      version integer not null,
      primary key (org_id, incident_id, id)
    )`.execute(db);
  await sql`create index incident_slo_violations_order on incident_slo_violations (org_id, incident_id, version)`.execute(
    db,
  );

  await sql`
    create table projection_checkpoints (
      name text primary key,
      position text,
      events_processed bigint not null default 0,
      state text not null default 'idle',
      last_error text,
      error_position text,
      rebuild_requested_at timestamptz,
      rebuild_done bigint not null default 0,
      rebuild_total bigint not null default 0,
      rebuilt_at timestamptz,
      updated_at timestamptz not null default now()
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'projection_checkpoints',
    'incident_slo_violations',
    'incident_actions',
    'incident_signals',
    'incidents',
  ]) {
    await sql`drop table ${sql.raw(table)}`.execute(db);
  }
}
