import { sql } from 'kysely';
import { openPostgres } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import {
  listIncidents,
  type IncidentFilter,
  type IncidentSort,
  type Keyset,
} from '../../src/readmodel/incidents.ts';
import { summarize, type BenchRow } from '../lib.ts';

const INCIDENTS = 100_000;
const ORGS = 4;
const REPEATS = 30;
const DEEP_PAGES = 40;

/** List queries on 100,000 incidents: filtered and sorted first pages, and pages deep behind a cursor. */
export async function listQueries(url: string): Promise<BenchRow[]> {
  const database = openPostgres(url);
  await migrateToLatest(database.db);
  const db = database.db;
  try {
    await sql`
      insert into incidents (org_id, id, project_id, title, service_name, status, severity, severity_rank, environment,
        correlation_keys, tags, created_by_type, created_by_ref, created_at, updated_at, version)
      select 'org-' || (i % ${ORGS}), 'inc_' || lpad(i::text, 8, '0'), 'proj-' || (j % 5),
        case when j % 7 = 0 then 'Checkout latency high' else 'Error rate above SLO' end,
        'svc-' || (j % 13), (array['OPEN','INVESTIGATING','MITIGATED','RESOLVED','CANCELLED'])[1 + j % 5],
        'SEV' || (1 + (j / 5) % 4), 1 + (j / 5) % 4, case when j % 3 = 0 then 'staging' else 'production' end,
        array['ck-' || (j % 1000)], array['tag-' || (j % 50), 'team-' || (j % 9)], 'USER', 'bench',
        timestamptz '2026-01-01' + i * interval '7 seconds', timestamptz '2026-01-01' + i * interval '9 seconds', i % 20
      from generate_series(1, ${INCIDENTS}) as i, lateral (select i / ${ORGS} as j) as spread`.execute(db);
    await sql`analyze incidents`.execute(db);

    const time = async (run: () => Promise<unknown>) => {
      const started = performance.now();
      await run();
      return performance.now() - started;
    };
    const cases: { name: string; filter: IncidentFilter; sort: IncidentSort }[] = [
      {
        name: 'status filter, newest first',
        filter: { status: ['OPEN', 'INVESTIGATING'] },
        sort: 'createdAt',
      },
      {
        name: 'service + environment, by update',
        filter: { serviceName: 'svc-3', environment: 'production' },
        sort: 'updatedAt',
      },
      { name: 'tag, by severity', filter: { tag: 'tag-7' }, sort: 'severity' },
      { name: 'title search', filter: { q: 'latency' }, sort: 'createdAt' },
    ];
    const firstPages: number[] = [];
    const deepPages: number[] = [];
    const pointLookups: number[] = [];
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const org = `org-${repeat % ORGS}`;
      pointLookups.push(
        await time(() =>
          db
            .selectFrom('incidents')
            .selectAll()
            .where('org_id', '=', org)
            .where('id', '=', `inc_${String(4 * repeat + (repeat % ORGS)).padStart(8, '0')}`)
            .execute(),
        ),
      );
      for (const { filter, sort } of cases) {
        const query = { filter, sort, order: 'desc' as const, limit: 20 };
        firstPages.push(await time(() => listIncidents(db, org, query)));
      }
    }
    // Follow the cursor DEEP_PAGES pages down each list, timing every page.
    for (const { filter, sort } of cases) {
      let after: Keyset | undefined;
      for (let page = 0; page < DEEP_PAGES; page++) {
        let next: Keyset | null = null;
        deepPages.push(
          await time(
            async () =>
              (next = (
                await listIncidents(db, 'org-1', {
                  filter,
                  sort,
                  order: 'desc',
                  limit: 20,
                  ...(after ? { after } : {}),
                })
              ).next),
          ),
        );
        if (!next) break;
        after = next;
      }
    }
    const point = summarize(pointLookups);
    const first = summarize(firstPages);
    const deep = summarize(deepPages);
    const baseline = (value: number) => ({ label: 'primary-key SELECT of one incident', value });
    return [
      {
        scenario: `lists, ${INCIDENTS.toLocaleString('en')} incidents`,
        metric: 'first page (filtered, sorted, 20 rows) p50',
        value: first.p50,
        unit: 'ms',
        baseline: baseline(point.p50),
      },
      {
        scenario: `lists, ${INCIDENTS.toLocaleString('en')} incidents`,
        metric: 'first page (filtered, sorted, 20 rows) p99',
        value: first.p99,
        unit: 'ms',
        baseline: baseline(point.p99),
      },
      {
        scenario: `lists, ${INCIDENTS.toLocaleString('en')} incidents`,
        metric: `cursor pages 1-${DEEP_PAGES} p50`,
        value: deep.p50,
        unit: 'ms',
        baseline: baseline(point.p50),
      },
      {
        scenario: `lists, ${INCIDENTS.toLocaleString('en')} incidents`,
        metric: `cursor pages 1-${DEEP_PAGES} p99`,
        value: deep.p99,
        unit: 'ms',
        baseline: baseline(point.p99),
      },
    ];
  } finally {
    await database.close();
  }
}
