import path from 'node:path';
import type { Logger } from 'pino';
import {
  ProjectionProgress,
  projectionStatus,
  startProjectionWorkers,
  type ProjectionWorkers,
} from '../../projections/index.ts';
import { AlertGroupCommands } from '../commands/alert-groups.ts';
import { requireChainedAppends } from '../audit/append.ts';
import { IncidentCommands } from '../commands/index.ts';
import type { Config } from '../config.ts';
import { openPGlite, openPostgres, type Database } from '../db/database.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { heldBackEvents } from '../eventstore/postgres/held-back.ts';
import { PostgresEventStore } from '../eventstore/postgres/index.ts';
import type { EventStore } from '../eventstore/port.ts';
import { openWebhooks, type WebhookTuning, type Webhooks } from '../webhooks/index.ts';
import { ServiceMetrics } from './metrics.ts';

/** Everything a process of ITS runs on, wired once: the composition root. */
export interface Runtime {
  config: Config;
  database: Database;
  store: EventStore;
  commands: IncidentCommands;
  /** Alert ingestion: each alert group's dedup state, and its incident writes through `commands`. */
  alertGroups: AlertGroupCommands;
  /** Tells when the read models include a position (read-your-writes). */
  progress: ProjectionProgress;
  metrics: ServiceMetrics;
  /** Outbound webhooks: endpoints, deliveries, and (with workers) the delivery worker. */
  webhooks: Webhooks;
  /** The projection daemon of this process (null with `workers: false`): `onCommitted` feeds live consumers. */
  projections: ProjectionWorkers | null;
  /** Stops the projection workers at a checkpoint, then closes the store and the database it opened. */
  close(): Promise<void>;
}

export interface OpenRuntimeOptions {
  /** Run the projection workers in this process (`its serve --role all|projector`). Default true. */
  workers?: boolean;
  /** Apply pending migrations before anything else touches the database. */
  migrate?: boolean;
  /** Use this database instead of opening one from the config; the caller keeps ownership of it. */
  database?: Database;
  /** Use this event store instead of opening one from the config; the caller keeps ownership of it. */
  store?: EventStore;
  logger?: Logger;
  /** Webhook resolver, retry schedule and timings (tests). */
  webhooks?: WebhookTuning;
}

/** The database the config names: a PostgreSQL server, or embedded PGlite under DATA_DIR. */
export async function openConfiguredDatabase(config: Config): Promise<Database> {
  return config.databaseUrl
    ? openPostgres(config.databaseUrl, { poolSize: config.databasePoolSize })
    : openPGlite(path.resolve(config.dataDir, 'pglite'));
}

async function openConfiguredStore(config: Config, database: Database, logger?: Logger): Promise<EventStore> {
  if (!config.eventStoreUrl) return new PostgresEventStore(database);
  // Loaded only when used: the EventStoreDB client is heavy.
  const { openEventStoreDb } = await import('../eventstore/eventstoredb/index.ts');
  return openEventStoreDb(config.eventStoreUrl, logger ? { logger } : {});
}

export async function openRuntime(config: Config, options: OpenRuntimeOptions = {}): Promise<Runtime> {
  const database = options.database ?? (await openConfiguredDatabase(config));
  const closing: (() => Promise<void>)[] = [];
  if (!options.database) closing.push(() => database.close());
  try {
    if (options.migrate) await migrateToLatest(database.db);
    const opened = options.store ?? (await openConfiguredStore(config, database, options.logger));
    if (!options.store) closing.unshift(() => opened.close());
    // Every writer in this process appends through appendChained (src/audit/append.ts).
    const store = requireChainedAppends(opened);
    const metrics = new ServiceMetrics();
    const commands = new IncidentCommands({ store, database, metrics });
    const alertGroups = new AlertGroupCommands({ store, commands });
    metrics.setProjectionLagSource(async () => projectionStatus(database, store));
    if (store.kind === 'postgres') metrics.setHeldBackSource(() => heldBackEvents(database.db));

    const progress = new ProjectionProgress(database, undefined, {
      onCannotListen(error) {
        metrics.readYourWritesUnconfirmed('cannot_listen');
        options.logger?.warn({ err: error }, 'cannot listen for projection progress: writes answer 202');
      },
    });
    closing.unshift(() => progress.stop());
    const webhooks = openWebhooks({
      config,
      database,
      store,
      registry: metrics.registry,
      logger: options.logger,
      tuning: options.webhooks,
    });
    closing.unshift(() => webhooks.stop());
    let projections: ProjectionWorkers | null = null;
    if (options.workers !== false) {
      webhooks.startWorker();
      const workers = (projections = startProjectionWorkers({
        database,
        store,
        ...(options.logger ? { logger: options.logger } : {}),
      }));
      // Stopped first: each worker finishes the batch it is committing, at a checkpoint.
      closing.unshift(() => workers.stop());
    }

    let closed: Promise<void> | null = null;
    return {
      config,
      database,
      store,
      commands,
      alertGroups,
      progress,
      metrics,
      webhooks,
      projections,
      close() {
        closed ??= (async () => {
          for (const step of closing)
            await step().catch((error: unknown) =>
              options.logger?.warn({ err: error }, 'closing the runtime'),
            );
        })();
        return closed;
      },
    };
  } catch (error) {
    for (const step of closing) await step().catch(() => {});
    throw error;
  }
}
