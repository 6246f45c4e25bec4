import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listIncidentsQuery,
  type IncidentFilter,
  type IncidentSort,
  type SortOrder,
} from '../../src/readmodel/incidents.ts';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';
import { seedIncidents } from '../support/seed.ts';

const INCIDENTS = 100_000;
const ORGS = 10;

/** Every filter and sort the list route offers, each as the first page and as a deep (cursor) page. */
const cases: { name: string; filter: IncidentFilter; sort: IncidentSort; order: SortOrder }[] = [
  { name: 'no filter, newest first', filter: {}, sort: 'createdAt', order: 'desc' },
  {
    name: 'status, newest first',
    filter: { status: ['OPEN', 'INVESTIGATING'] },
    sort: 'createdAt',
    order: 'desc',
  },
  { name: 'severity filter, oldest first', filter: { severity: ['SEV1'] }, sort: 'createdAt', order: 'asc' },
  { name: 'service, by update', filter: { serviceName: 'svc-3' }, sort: 'updatedAt', order: 'desc' },
  {
    name: 'project + environment',
    filter: { projectId: 'proj-2', environment: 'production' },
    sort: 'createdAt',
    order: 'desc',
  },
  { name: 'tag', filter: { tag: 'tag-7' }, sort: 'createdAt', order: 'desc' },
  { name: 'correlation key', filter: { correlationKey: 'ck-42' }, sort: 'createdAt', order: 'desc' },
  { name: 'title search', filter: { q: 'latency' }, sort: 'createdAt', order: 'desc' },
  {
    name: 'created range',
    filter: { createdFrom: '2026-01-02T00:00:00Z', createdTo: '2026-01-05T00:00:00Z' },
    sort: 'createdAt',
    order: 'desc',
  },
  { name: 'by severity', filter: {}, sort: 'severity', order: 'desc' },
  { name: 'status by severity', filter: { status: ['OPEN'] }, sort: 'severity', order: 'desc' },
];

describe(`incident list plans on ${INCIDENTS.toLocaleString('en')} incidents (${databaseLabel})`, () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await openTestDatabase();
    await seedIncidents(test.database.db, { incidents: INCIDENTS, orgs: ORGS, createdBy: 'alice' });
  }, 180_000);
  afterAll(async () => {
    await test?.cleanup();
  });

  for (const { name, filter, sort, order } of cases) {
    it(`${name}: no sequential scan, first page and a deep page`, async () => {
      const db = test.database.db;
      const first = await listIncidentsQuery(db, 'org-3', { filter, sort, order, limit: 20 }).execute();
      expect(first.length).toBeGreaterThan(0);
      const last = first.at(-1)!;
      const after = {
        ...(sort === 'severity' ? { rank: Number(last.severity_rank) } : {}),
        ts: last.cursor_ts,
        id: last.id,
      };
      for (const query of [
        listIncidentsQuery(db, 'org-3', { filter, sort, order, limit: 20 }),
        listIncidentsQuery(db, 'org-3', { filter, sort, order, limit: 20, after }),
      ]) {
        const compiled = query.compile();
        const { rows } = await db.executeQuery<{ 'QUERY PLAN': string }>({
          ...compiled,
          sql: `explain ${compiled.sql}`,
        });
        const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
        expect(plan, plan).not.toMatch(/Seq Scan/);
      }
    });
  }
});
