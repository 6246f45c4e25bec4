import { sql, type Kysely } from 'kysely';

/**
 * Indexes for the merged timeline (src/readmodel/timeline.ts) and the response-time statistics
 * (src/readmodel/response-times.ts). Each leads with the org, so no query reads another org's rows.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // The timeline's keyset, (ts, version), per incident; an SLO violation stands at its window's start.
  for (const [name, table, ts] of [
    ['incident_actions_timeline', 'incident_actions', 'ts'],
    ['incident_signals_timeline', 'incident_signals', 'ts'],
    ['incident_slo_violations_timeline', 'incident_slo_violations', 'window_start'],
  ] as const) {
    await sql`create index ${sql.raw(name)} on ${sql.raw(table)} (org_id, incident_id, ${sql.raw(ts)}, version)`.execute(
      db,
    );
  }
  // Everything the statistics read, so a range of creation times is answered from the index alone.
  await sql`
    create index incidents_response_times on incidents (org_id, created_at)
      include (status, acknowledged_at, resolved_at, severity, service_name, project_id, environment)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of [
    'incidents_response_times',
    'incident_slo_violations_timeline',
    'incident_signals_timeline',
    'incident_actions_timeline',
  ]) {
    await sql`drop index ${sql.raw(name)}`.execute(db);
  }
}
