import { sql } from 'kysely';
import { IncidentCommands, type CommandContext } from '../../src/commands/index.ts';
import { openPostgres, type Database } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import {
  PROJECTION_NAMES,
  ProjectionProgress,
  rebuildProjections,
  startProjectionWorkers,
} from '../../projections/index.ts';
import { writtenColumns } from '../../projections/rows.ts';
import { summarize, type BenchRow } from '../lib.ts';

const EVENTS_PER_INCIDENT = 20;
const READ_MODEL_TABLES = ['incidents', 'incident_signals', 'incident_actions', 'incident_slo_violations'];

/**
 * Writes `incidents` × 20 valid events straight into the event store table, interleaved the way
 * concurrent incidents are (blocks of 1,000 incidents advance together), in one statement.
 */
export async function seedEventLog(database: Database, incidents: number): Promise<number> {
  await sql`
    with spec as (
      select k, v,
        'incident-bench.inc_' || lpad(k::text, 8, '0') as stream,
        timestamptz '2026-01-01' + (k * interval '1 minute') + (v * interval '3 seconds') as at
      from generate_series(0, ${incidents - 1}) as k, generate_series(0, ${EVENTS_PER_INCIDENT - 1}) as v
      order by k / 1000, v, k
    )
    insert into its_events (stream_name, stream_group, version, event_id, type, data, metadata)
    select stream, 'incident-bench.', v, gen_random_uuid(),
      case
        when v = 0 then 'INCIDENT_CREATED'
        when v = 1 then 'INCIDENT_STATUS_CHANGED'
        when v between 2 and 7 or v = 18 then 'INCIDENT_NOTE_ADDED'
        when v between 8 and 12 then 'INCIDENT_SIGNAL_INGESTED'
        when v = 13 then 'INCIDENT_SEVERITY_CHANGED'
        when v = 14 then 'INCIDENT_TAG_ADDED'
        when v = 15 then 'INCIDENT_LINKED_TO_TICKET'
        when v = 16 then 'INCIDENT_SLO_VIOLATION_RECORDED'
        when v = 17 then 'INCIDENT_STATUS_CHANGED'
        else 'INCIDENT_RESOLVED'
      end,
      case
        when v = 0 then jsonb_build_object('projectId', 'proj-' || (k % 7), 'title', 'Checkout errors #' || k, 'serviceName', 'svc-' || (k % 13),
          'severity', 'SEV3', 'environment', 'production', 'tags', jsonb_build_array('team-' || (k % 9)), 'correlationKeys', jsonb_build_array())
        when v = 1 then jsonb_build_object('from', 'OPEN', 'to', 'INVESTIGATING')
        when v between 2 and 7 or v = 18 then jsonb_build_object('actionId', 'act_' || k || '_' || v, 'label', 'checked dashboards', 'details', 'p99 flat since the rollback')
        when v between 8 and 12 then jsonb_build_object('signalId', 'sig_' || k || '_' || v, 'signalType', 'ALERT', 'source', 'prometheus',
          'summary', 'error rate above 2%', 'correlationKey', 'alert-' || (k % 500), 'ts', to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
        when v = 13 then jsonb_build_object('from', 'SEV3', 'to', 'SEV2', 'reason', 'customer impact')
        when v = 14 then jsonb_build_object('tag', 'db')
        when v = 15 then jsonb_build_object('system', 'JIRA', 'key', 'OPS-' || k)
        when v = 16 then jsonb_build_object('violationId', 'slo_' || k, 'sloId', 'checkout-availability', 'windowStart', '2026-01-01T00:00:00.000Z',
          'windowEnd', '2026-01-01T01:00:00.000Z', 'errorBudgetConsumed', 0.4, 'thresholdBreached', true)
        when v = 17 then jsonb_build_object('from', 'INVESTIGATING', 'to', 'MITIGATED')
        else jsonb_build_object('from', 'MITIGATED')
      end,
      jsonb_build_object('orgId', 'bench', 'incidentId', 'inc_' || lpad(k::text, 8, '0'), 'actor', jsonb_build_object('type', 'USER', 'ref', 'bench'),
        'occurredAt', to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'correlationId', 'seed', 'schemaVersion', 1)
    from spec`.execute(database.db);
  await sql`analyze its_events`.execute(database.db);
  return incidents * EVENTS_PER_INCIDENT;
}

/** Rebuild of every projection from a large log, beside bulk-inserting the rows it produced. */
export async function projectionRebuild(url: string, incidents: number): Promise<BenchRow[]> {
  // Seeding a million events is one long statement.
  const database = openPostgres(url, { statementTimeoutMs: 0 });
  await migrateToLatest(database.db);
  const store = new PostgresEventStore(database);
  try {
    const events = await seedEventLog(database, incidents);
    // The live projections stand at the head with empty tables (as if caught up), so the rebuild
    // replays the whole log into fresh tables and swaps them in.
    const head = (await store.headPosition())!;
    await database.db
      .insertInto('projection_checkpoints')
      .values(PROJECTION_NAMES.map((name) => ({ name, position: head, state: 'idle' })))
      .execute();
    // No workers run here: each rebuild leads its projection for the while (live side included).
    const started = performance.now();
    const outcomes = await rebuildProjections({ database, store });
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const rebuildSeconds = (performance.now() - started) / 1000;

    const bulkStarted = performance.now();
    for (const table of READ_MODEL_TABLES) {
      await sql`create table ${sql.table(`${table}_bulk`)} (like ${sql.table(table)} including all)`.execute(
        database.db,
      );
      // The columns a projection writes: PostgreSQL computes the generated ones, in both.
      const written = await writtenColumns(database.db, table);
      const columns = sql.join(written.map(({ name }) => sql.ref(name)));
      await sql`insert into ${sql.table(`${table}_bulk`)} (${columns}) select ${columns} from ${sql.table(table)}`.execute(
        database.db,
      );
    }
    const bulkSeconds = (performance.now() - bulkStarted) / 1000;
    const { rows } = await sql<{
      n: string;
    }>`select (select count(*) from incidents) + (select count(*) from incident_signals) + (select count(*) from incident_actions) + (select count(*) from incident_slo_violations) as n`.execute(
      database.db,
    );
    const baseline = {
      label: 'bulk INSERT … SELECT of the same rows, as events/s',
      value: events / bulkSeconds,
    };
    return [
      {
        scenario: 'projections',
        metric: `rebuild of all ${PROJECTION_NAMES.length} projections from ${events.toLocaleString('en')} events (${Number(rows[0]!.n).toLocaleString('en')} rows)`,
        value: events / rebuildSeconds,
        unit: 'events/s',
        baseline,
        target: '>= 0.333',
      },
    ];
  } finally {
    await database.close();
  }
}

/** How long a command waits to be in every read model, while commands arrive at a steady rate. */
export async function projectionLag(
  url: string,
  ratePerSecond: number,
  seconds: number,
): Promise<BenchRow[]> {
  const database = openPostgres(url);
  await migrateToLatest(database.db);
  const store = new PostgresEventStore(database);
  const workers = startProjectionWorkers({ database, store });
  const progress = new ProjectionProgress(database);
  await progress.start();
  const commands = new IncidentCommands({ store, database });
  const ctx: CommandContext = {
    orgId: 'bench',
    actor: { type: 'USER', ref: 'bench' },
    correlationId: 'bench',
  };
  try {
    const incidents: string[] = [];
    for (let i = 0; i < 50; i++) {
      incidents.push(
        (
          await commands.execute(ctx, null, {
            type: 'CreateIncident',
            projectId: 'p',
            title: `lag ${i}`,
            serviceName: 's',
            severity: 'SEV3',
            environment: 'prod',
          })
        ).incidentId,
      );
    }
    const lags: number[] = [];
    const pending: Promise<void>[] = [];
    const total = ratePerSecond * seconds;
    const started = performance.now();
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / ratePerSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      pending.push(
        (async () => {
          const result = await commands.execute(ctx, incidents[i % incidents.length]!, {
            type: 'RecordAction',
            actionKind: 'NOTE',
            label: `note ${i}`,
          });
          const appended = performance.now();
          if (await progress.waitFor(result.position, 30_000)) lags.push(performance.now() - appended);
        })(),
      );
    }
    await Promise.all(pending);
    const { p50, p99 } = summarize(lags);
    const lost = total - lags.length;
    return [
      {
        scenario: 'projections',
        metric: `lag p50 at ${ratePerSecond} commands/s${lost ? ` (${lost} not projected in 30 s)` : ''}`,
        value: p50,
        unit: 'ms',
      },
      { scenario: 'projections', metric: `lag p99 at ${ratePerSecond} commands/s`, value: p99, unit: 'ms' },
    ];
  } finally {
    await progress.stop();
    await workers.stop();
    await database.close();
  }
}
