import { randomUUID } from 'node:crypto';
import { IncidentCommands, type CommandContext } from '../../src/commands/index.ts';
import { openPostgres } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { summarize, type BenchRow } from '../lib.ts';

const LONG_STREAM = 10_000;
const SAMPLES = 300;

/** Command latency on a 10,000-event incident beside a fresh one (snapshots keep loads bounded). */
export async function commandLatency(url: string): Promise<BenchRow[]> {
  const database = openPostgres(url);
  await migrateToLatest(database.db);
  const store = new PostgresEventStore(database);
  const commands = new IncidentCommands({ store, database });
  const ctx: CommandContext = {
    orgId: 'bench',
    actor: { type: 'USER', ref: 'bench' },
    correlationId: 'bench',
  };
  const create = {
    type: 'CreateIncident',
    projectId: 'p',
    title: 'bench',
    serviceName: 's',
    severity: 'SEV3',
    environment: 'prod',
  } as const;
  try {
    const fresh = await commands.execute(ctx, null, create);
    const long = await commands.execute(ctx, null, create);
    // Grow the long stream straight through the store (fast), in batches of 500 notes.
    const metadata = {
      orgId: 'bench',
      incidentId: long.incidentId,
      actor: ctx.actor,
      occurredAt: new Date().toISOString(),
      correlationId: 'bench',
      schemaVersion: 1,
    };
    for (let version = 0; version < LONG_STREAM - 1; version += 500) {
      const batch = Array.from({ length: Math.min(500, LONG_STREAM - 1 - version) }, (_, i) => ({
        eventId: randomUUID(),
        type: 'INCIDENT_NOTE_ADDED',
        data: { actionId: `act_${version + i}`, label: `note ${version + i}` },
        metadata,
      }));
      await store.append(incidentStreamName('bench', long.incidentId), batch, version);
    }
    const measure = async (incidentId: string) => {
      const samples: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const started = performance.now();
        await commands.execute(ctx, incidentId, {
          type: 'RecordAction',
          actionKind: 'NOTE',
          label: `sample ${i}`,
        });
        samples.push(performance.now() - started);
      }
      return summarize(samples);
    };
    // The first command folds all 10,000 events once and leaves a snapshot behind.
    const firstStarted = performance.now();
    await commands.execute(ctx, long.incidentId, {
      type: 'RecordAction',
      actionKind: 'NOTE',
      label: 'first',
    });
    const firstLoad = performance.now() - firstStarted;
    // Warm both paths, so the comparison is of steady states.
    await measure(fresh.incidentId);
    const freshLatency = await measure(fresh.incidentId);
    const longLatency = await measure(long.incidentId);
    return [
      {
        scenario: 'commands',
        metric: `first note on a ${LONG_STREAM.toLocaleString('en')}-event stream (full fold, writes snapshot)`,
        value: firstLoad,
        unit: 'ms',
      },
      {
        scenario: 'commands',
        metric: `note latency p50, ${LONG_STREAM.toLocaleString('en')}-event stream`,
        value: longLatency.p50,
        unit: 'ms',
        baseline: { label: 'fresh stream p50', value: freshLatency.p50 },
        target: '<= 2',
      },
      {
        scenario: 'commands',
        metric: `note latency p99, ${LONG_STREAM.toLocaleString('en')}-event stream`,
        value: longLatency.p99,
        unit: 'ms',
        baseline: { label: 'fresh stream p99', value: freshLatency.p99 },
        target: '<= 2',
      },
    ];
  } finally {
    await database.close();
  }
}
