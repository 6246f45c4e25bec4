/**
 * The read side: one projector per read model, workers that keep the read models at the head of
 * the incident streams, read-your-writes waits, status, and rebuilds without downtime.
 */
import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import { PROJECTION_NAMES, projectorNamed } from './catalog.ts';
import type { RebuildProgress } from './rebuild.ts';
import { rebuildWithLeaders } from './rebuild-requests.ts';
import { startProjectionDaemon, type ProjectionWorkers } from './workers.ts';

export { PROJECTION_NAMES } from './catalog.ts';
export { ProjectionProgress } from './progress.ts';
export { ProjectionBusy } from './rebuild-requests.ts';
export type { CommittedBatch, CommittedListener } from './daemon.ts';
export type { ProjectionWorkers } from './workers.ts';
export { projectionStatus, requestRebuild, type ProjectionState, type ProjectionStatus } from './status.ts';

/**
 * Starts the projection daemon for the projections named (all by default): it carries each one this
 * process gets the lead of, and stands by for the others.
 */
export function startProjectionWorkers(opts: {
  database: Database;
  store: EventStore;
  logger?: Logger;
  names?: string[];
}): ProjectionWorkers {
  const names = opts.names ?? PROJECTION_NAMES;
  return startProjectionDaemon({
    database: opts.database,
    store: opts.store,
    logger: opts.logger,
    projectors: names.map(projectorNamed),
  });
}

/**
 * Replays projections (all by default) into fresh tables in one pass over the log while the old
 * tables keep serving, then swaps each in. Runs through this process's worker of each, or leads it
 * for the while. Resolves with each one's outcome, in the order given: ProjectionBusy for one that
 * another process leads (use `requestRebuild`).
 */
export function rebuildProjections(opts: {
  database: Database;
  store: EventStore;
  names?: readonly string[];
  onProgress?: RebuildProgress;
  logger?: Logger;
}): Promise<PromiseSettledResult<void>[]> {
  const names = opts.names ?? PROJECTION_NAMES;
  return rebuildWithLeaders({
    database: opts.database,
    store: opts.store,
    logger: opts.logger,
    projectors: names.map(projectorNamed),
    onProgress: opts.onProgress,
  });
}

/** Rebuilds one projection (see `rebuildProjections`); throws what stopped it. */
export async function rebuildProjection(opts: {
  database: Database;
  store: EventStore;
  name: string;
  onProgress?: RebuildProgress;
  logger?: Logger;
}): Promise<void> {
  const [outcome] = await rebuildProjections({ ...opts, names: [opts.name] });
  if (outcome!.status === 'rejected') throw outcome!.reason;
}
