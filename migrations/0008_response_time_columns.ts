import { sql, type Kysely } from 'kysely';

/**
 * The response-time statistics (src/readmodel/response-times.ts) read each incident's durations
 * from the index instead of computing them per row and per request: over 100,000 incidents the
 * two `date_part('epoch', … - created_at)` per row were a third of the answer's time. Generated
 * columns, so no projection can write them wrong and a rebuild's copy of the table (`like … including
 * all`) has them too; float8 through date_part (extract's numeric would cost a conversion per row and
 * aggregate). Adding them rewrites `incidents` once.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table incidents
      add column time_to_acknowledge double precision
        generated always as (date_part('epoch', acknowledged_at - created_at)) stored,
      add column time_to_resolve double precision
        generated always as (date_part('epoch', resolved_at - created_at)) stored`.execute(db);
  await sql`drop index incidents_response_times`.execute(db);
  await sql`
    create index incidents_response_times on incidents (org_id, created_at)
      include (status, time_to_acknowledge, time_to_resolve, severity, service_name, project_id, environment)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index incidents_response_times`.execute(db);
  await sql`alter table incidents drop column time_to_acknowledge, drop column time_to_resolve`.execute(db);
  await sql`
    create index incidents_response_times on incidents (org_id, created_at)
      include (status, acknowledged_at, resolved_at, severity, service_name, project_id, environment)`.execute(
    db,
  );
}
