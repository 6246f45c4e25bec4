import path from 'node:path';
import type { Logger } from 'pino';
import { ProjectionProgress, projectionStatus, startProjectionWorkers } from '../../projections/index.ts';
import { IncidentCommands } from '../commands/index.ts';
import type { Config } from '../config.ts';
import { openPGlite, openPostgres, type Database } from '../db/database.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { heldBackEvents } from '../eventstore/postgres/held-back.ts';
import { PostgresEventStore } from '../eventstore/postgres/index.ts';
import type { EventStore } from '../eventstore/port.ts';
import { ServiceMetrics } from '../http/metrics.ts';

/** Everything a process of ITS runs on, wired once: the composition root. */
export interface Runtime {
  config: Config;
  database: Database;
  store: EventStore;
  commands: IncidentCommands;
  /** Tells when the read models include a position (read-your-writes). */
  progress: ProjectionProgress;
  metrics: ServiceMetrics;
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
}

/** The database the config names: a PostgreSQL server, or embedded PGlite under DATA_DIR. */
export async function openConfiguredDatabase(config: Config): Promise<Database> {
  return config.databaseUrl
    ? openPostgres(config.databaseUrl)
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
    const store = options.store ?? (await openConfiguredStore(config, database, options.logger));
    if (!options.store) closing.unshift(() => store.close());
    const metrics = new ServiceMetrics();
    const commands = new IncidentCommands({ store, database, metrics });
    metrics.setProjectionLagSource(async () => projectionStatus(database, store));
    if (store.kind === 'postgres') metrics.setHeldBackSource(() => heldBackEvents(database.db));

    const progress = new ProjectionProgress(database);
    closing.unshift(() => progress.stop());
    if (options.workers !== false) {
      const workers = startProjectionWorkers({
        database,
        store,
        ...(options.logger ? { logger: options.logger } : {}),
      });
      // Stopped first: each worker finishes the batch it is committing, at a checkpoint.
      closing.unshift(() => workers.stop());
    }

    let closed: Promise<void> | null = null;
    return {
      config,
      database,
      store,
      commands,
      progress,
      metrics,
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
