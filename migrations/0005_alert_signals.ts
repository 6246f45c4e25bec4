import { sql, type Kysely } from 'kysely';

/** Signal schema version 2: an alert's fingerprint and status, shown on the signal rows. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table incident_signals add column fingerprint text, add column status text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table incident_signals drop column fingerprint, drop column status`.execute(db);
}
