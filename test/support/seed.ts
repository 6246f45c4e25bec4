import { sql, type Kysely } from 'kysely';
import type { Schema } from '../../src/db/schema.ts';

/**
 * `incidents` rows spread over `orgs` orgs (`org-0` …), five projects, 13 services, every status and
 * severity, two environments and 50 tags, written in one statement and analysed: the data set that
 * the list-plan test and the list-query bench measure on.
 */
export async function seedIncidents(
  db: Kysely<Schema>,
  { incidents, orgs, createdBy }: { incidents: number; orgs: number; createdBy: string },
): Promise<void> {
  await sql`
    insert into incidents (org_id, id, project_id, title, service_name, status, severity, severity_rank,
      environment, correlation_keys, tags, created_by_type, created_by_ref, created_at, updated_at, version)
    select 'org-' || (i % ${orgs}), 'inc_' || lpad(i::text, 8, '0'), 'proj-' || (j % 5),
      case when j % 7 = 0 then 'Checkout latency high' else 'Error rate above SLO' end,
      'svc-' || (j % 13), (array['OPEN','INVESTIGATING','MITIGATED','RESOLVED','CANCELLED'])[1 + j % 5],
      'SEV' || (1 + (j / 5) % 4), 1 + (j / 5) % 4, case when j % 3 = 0 then 'staging' else 'production' end,
      array['ck-' || (j % 1000)], array['tag-' || (j % 50), 'team-' || (j % 9)], 'USER', ${createdBy},
      timestamptz '2026-01-01' + i * interval '7 seconds', timestamptz '2026-01-01' + i * interval '9 seconds',
      i % 20
    from generate_series(1, ${incidents}) as i, lateral (select i / ${orgs} as j) as spread`.execute(db);
  await sql`analyze incidents`.execute(db);
}
