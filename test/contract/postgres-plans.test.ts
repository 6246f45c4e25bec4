import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncidentCommands } from '../../src/commands/index.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { startProjectionWorkers } from '../../projections/index.ts';
import { waitForCheckpoints } from '../projections/fixtures.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function seqScansOfEvents(node: PlanNode): number {
  const own = node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'its_events' ? 1 : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + seqScansOfEvents(child), 0);
}

// The statements are caught where pg sends them (the test listens, nothing is replaced), then each is
// explained on the server. A plan is only worth checking on a real server's statistics.
if (!serverUrl) console.warn('PostgreSQL plan test: SKIPPED (DATABASE_URL is not set)');

describe.skipIf(!serverUrl)('PostgreSQL plans on the write and projection paths', () => {
  let test: TestDatabase;
  const sent: { text: string; values: unknown[] }[] = [];
  const query = pg.Client.prototype.query;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'server' });
    // 20,000 events loaded in bulk after the migration, and no ANALYZE since: what a fresh service sees.
    const loader = new pg.Client({ connectionString: test.url });
    await loader.connect();
    await loader.query(`
      insert into its_events (stream_name, stream_group, version, event_id, type, data, metadata)
      select 'incident-bulk.inc_' || i, 'incident-bulk.', 0, gen_random_uuid(), 'INCIDENT_CREATED',
        '{"projectId":"p","title":"t","serviceName":"s","severity":"SEV3","environment":"production","tags":[],"correlationKeys":[]}',
        jsonb_build_object('orgId', 'bulk', 'incidentId', 'inc_' || i, 'actor', '{"type":"USER","ref":"a"}'::jsonb,
          'occurredAt', '2026-01-01T00:00:00.000Z', 'correlationId', 'c', 'schemaVersion', 1)
      from generate_series(1, 20000) as i`);
    await loader.end();
  });
  afterAll(async () => {
    pg.Client.prototype.query = query;
    await test?.cleanup();
  });

  it('never scans its_events whole: every statement goes through an index', async () => {
    const store = new PostgresEventStore(test.database);
    const workers = startProjectionWorkers({ database: test.database, store });
    const commands = new IncidentCommands({ store, database: test.database });
    const ctx = {
      orgId: `plans${randomUUID().slice(0, 8)}`,
      actor: { type: 'USER' as const, ref: 'a' },
      correlationId: 'c',
    };
    try {
      await waitForCheckpoints(test.database, await store.headPosition('incident-'));
      pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
        if (typeof args[0] === 'string' && Array.isArray(args[1]))
          sent.push({ text: args[0], values: args[1] as unknown[] });
        return (query as (...a: unknown[]) => unknown).apply(this, args);
      } as typeof query;
      const created = await commands.execute(ctx, null, {
        type: 'CreateIncident',
        projectId: 'p',
        title: 'Plans',
        serviceName: 's',
        severity: 'SEV2',
        environment: 'production',
        tags: [],
      });
      const fresh = new IncidentCommands({ store, database: test.database });
      await fresh.execute(ctx, created.incidentId, { type: 'AddTag', tag: 'db' });
      const last = await commands.execute(ctx, created.incidentId, {
        type: 'ChangeStatus',
        newStatus: 'INVESTIGATING',
      });
      await waitForCheckpoints(test.database, last.position);
    } finally {
      pg.Client.prototype.query = query;
      await workers.stop();
    }

    const onEvents = sent.filter(({ text }) => /its_events|its_append/.test(text));
    expect(onEvents.length).toBeGreaterThan(3);
    // What its_append runs inside (migration 0004), in the same shapes.
    const inside = [
      { text: `select e.version from its_events e where e.event_id = $1::uuid`, values: [randomUUID()] },
      {
        text: `select max(e.version) from its_events e where e.stream_name = $1`,
        values: ['incident-bulk.inc_7'],
      },
    ];
    const explainer = new pg.Client({ connectionString: test.url });
    await explainer.connect();
    try {
      for (const { text, values } of [...onEvents, ...inside]) {
        if (/^\s*select \* from its_append/.test(text)) continue;
        const { rows } = await explainer.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
          `explain (format json) ${text}`,
          values,
        );
        const plan = rows[0]!['QUERY PLAN'][0]!.Plan;
        expect(seqScansOfEvents(plan), `${text}\n${JSON.stringify(plan)}`).toBe(0);
      }
    } finally {
      await explainer.end();
    }
  });
});
