import { sql, type Compilable } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { responseTimes, responseTimesQuery } from '../../src/readmodel/response-times.ts';
import { incidentTimeline, timelineQuery } from '../../src/readmodel/timeline.ts';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';

const INCIDENTS = 100_000;
const ORGS = 10;
const SEED_BATCH = 10_000;
/** Timeline rows per table: 2,000 incidents with 5 of each, and one long incident with 20,000. */
const TIMELINE_INCIDENTS = 2_000;
const PER_INCIDENT = 5;
const LONG_INCIDENT = 'inc_00000013';
const LONG_ENTRIES = 20_000;
/** The org that holds most incidents (5 in 6, and its share of the rest), as in the bench. */
const BIG_ORG = 'org-3';
/** An org with about 3% of them. */
const SMALL_ORG = 'org-5';

describe(`timeline and statistics plans on ${INCIDENTS.toLocaleString('en')} incidents (${databaseLabel})`, () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await openTestDatabase();
    const db = test.database.db;
    // In batches: each is a short transaction, so other suites' readers of the log (which wait for the
    // oldest running transaction on the server) are not held up for the whole seed.
    for (let first = 1; first <= INCIDENTS; first += SEED_BATCH)
      await sql`
      insert into incidents (org_id, id, project_id, title, service_name, status, severity, severity_rank, environment,
        created_by_type, created_by_ref, created_at, updated_at, acknowledged_at, resolved_at, cancelled_at, version)
      select case when (i / ${ORGS}) % 6 < 5 then ${BIG_ORG} else 'org-' || (i % ${ORGS}) end, 'inc_' || lpad(i::text, 8, '0'),
        'proj-' || (j % 5), 'generated',
        'svc-' || (j % 13), (array['OPEN','INVESTIGATING','MITIGATED','RESOLVED','CANCELLED'])[1 + j % 5],
        'SEV' || (1 + (j / 5) % 4), 1 + (j / 5) % 4, case when j % 3 = 0 then 'staging' else 'production' end,
        'USER', 'alice', created, created,
        case when j % 5 > 0 then created + (j % 600) * interval '1 second' end,
        case when j % 5 = 3 then created + (j % 7200) * interval '1 second' end,
        case when j % 5 = 4 then created + interval '1 hour' end, 3
      from generate_series(${first}::int, ${first + SEED_BATCH - 1}::int) as i,
        lateral (select i / ${ORGS} as j, timestamptz '2026-01-01' + i * interval '7 seconds' as created) as spread`.execute(
        db,
      );
    for (const [table, columns, values] of [
      [
        'incident_actions',
        'action_kind, label, actor_type, actor_ref, ts',
        `'NOTE', 'note ' || n, 'USER', 'alice', timestamptz '2026-01-01' + n * interval '1 minute'`,
      ],
      [
        'incident_signals',
        'signal_type, source, summary, ts',
        `'ALERT', 'prometheus', 'fired ' || n, timestamptz '2026-01-01' + n * interval '61 seconds'`,
      ],
      [
        'incident_slo_violations',
        'slo_id, window_start, window_end, error_budget_consumed, threshold_breached',
        `'slo', timestamptz '2026-01-01' + n * interval '59 seconds', timestamptz '2026-01-02', 0.1, true`,
      ],
    ] as const) {
      await sql`
        insert into ${sql.table(table)} (org_id, incident_id, id, version, ${sql.raw(columns)})
        select 'org-' || (i % ${ORGS}), 'inc_' || lpad(i::text, 8, '0'), ${table} || '-' || n, n * 3, ${sql.raw(values)}
        from generate_series(1, ${TIMELINE_INCIDENTS}) as i, generate_series(1, ${PER_INCIDENT}) as n
        where i <> 13`.execute(db);
      await sql`
        insert into ${sql.table(table)} (org_id, incident_id, id, version, ${sql.raw(columns)})
        select 'org-3', ${LONG_INCIDENT}, ${table} || '-' || n, n * 3, ${sql.raw(values)}
        from generate_series(1, ${LONG_ENTRIES}) as n`.execute(db);
    }
    // Vacuumed as autovacuum would, so the visibility map lets the statistics read the index alone.
    for (const table of ['incidents', 'incident_actions', 'incident_signals', 'incident_slo_violations'])
      await sql`vacuum analyze ${sql.table(table)}`.execute(db);
  }, 180_000);
  afterAll(async () => {
    await test?.cleanup();
  });

  async function plan(query: Compilable<unknown>): Promise<string> {
    const compiled = query.compile();
    const { rows } = await test.database.db.executeQuery<{ 'QUERY PLAN': string }>({
      ...compiled,
      sql: `explain ${compiled.sql}`,
    });
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  }
  const compilable = (query: { compile(db: typeof test.database.db): unknown }) =>
    ({ compile: () => query.compile(test.database.db) }) as Compilable<unknown>;

  it('a long timeline is read in (ts, version) order from each index, first page and deep page alike', async () => {
    const db = test.database.db;
    const first = await incidentTimeline(db, 'org-3', LONG_INCIDENT, { limit: 100 });
    expect(first.entries).toHaveLength(100);
    const deep = await incidentTimeline(db, 'org-3', LONG_INCIDENT, { limit: 100, after: first.next! });
    expect(deep.entries[0]!.ts >= first.entries.at(-1)!.ts).toBe(true);
    for (const options of [{ limit: 100 }, { limit: 100, after: deep.next! }]) {
      const text = await plan(compilable(timelineQuery('org-3', LONG_INCIDENT, options)));
      // Merged in order from the indexes (a Merge Append): no Sort node, no scan of the whole table.
      expect(text, text).not.toMatch(/Seq Scan|-> +Sort /);
      expect(text, text).toMatch(/Merge Append/);
      for (const index of [
        'incident_actions_timeline',
        'incident_signals_timeline',
        'incident_slo_violations_timeline',
      ])
        expect(text, text).toMatch(new RegExp(`Index Scan using ${index}`));
    }
  });

  it('a short timeline reads only its own rows', async () => {
    const text = await plan(compilable(timelineQuery('org-4', 'inc_00000014', { limit: 100 })));
    expect(text, text).not.toMatch(/Seq Scan/);
  });

  for (const [name, query] of [
    ['no filter', {}],
    ['by service', { groupBy: 'service' }],
    ['by week', { groupBy: 'week' }],
    ['service filter', { serviceName: 'svc-3', groupBy: 'severity' }],
    ['severity filter', { severity: ['SEV1', 'SEV2'], groupBy: 'project' }],
    ['project + environment', { projectId: 'proj-2', environment: 'production', groupBy: 'environment' }],
  ] as const) {
    for (const orgId of [BIG_ORG, SMALL_ORG])
      it(`statistics (${name}) of ${orgId === BIG_ORG ? 'the org with most rows' : 'a small org'} read only its rows, through an index`, async () => {
        const range = { from: '2026-01-01T00:00:00Z', to: '2026-01-10T00:00:00Z', ...query };
        const groups = await responseTimes(test.database.db, orgId, range);
        expect(groups.reduce((sum, group) => sum + group.incidents + group.cancelled, 0)).toBeGreaterThan(0);
        const text = await plan(compilable(responseTimesQuery(orgId, range)));
        expect(text, text).not.toMatch(/Seq Scan/);
        expect(text, text).toMatch(/Index Cond: \(\(?org_id = /);
        // Even where most of the table is this org's: the ordered slice the covering index answers alone.
        expect(text, text).toMatch(/Index Only Scan using incidents_response_times on incidents/);
      });
  }
});
