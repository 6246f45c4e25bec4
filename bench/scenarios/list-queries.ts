import { openPostgres } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import {
  listIncidents,
  type IncidentFilter,
  type IncidentSort,
  type Keyset,
} from '../../src/readmodel/incidents.ts';
import { seedIncidents } from '../../test/support/seed.ts';
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
    await seedIncidents(db, { incidents: INCIDENTS, orgs: ORGS, createdBy: 'bench' });

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
