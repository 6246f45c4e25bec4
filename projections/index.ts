/**
 * The read side: one projector per read model, workers that keep the read models at the head of
 * the incident streams, read-your-writes waits, status, and rebuilds without downtime.
 */
import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import { PROJECTION_NAMES, projectorNamed } from './catalog.ts';
import type { RebuildProgress } from './rebuild.ts';
import { rebuildWithLeaders, startProjectionRunners, type ProjectionWorkers } from './runner.ts';

export { PROJECTION_NAMES } from './catalog.ts';
export { ProjectionProgress } from './progress.ts';
export { ProjectionBusy, type ProjectionWorkers } from './runner.ts';
export { projectionStatus, requestRebuild, type ProjectionState, type ProjectionStatus } from './status.ts';

/** Starts a worker for each projection (all by default): it leads when it gets the lock, else stands by. */
export function startProjectionWorkers(opts: {
  database: Database;
  store: EventStore;
  logger?: Logger;
  names?: string[];
}): ProjectionWorkers {
  const names = opts.names ?? PROJECTION_NAMES;
  return startProjectionRunners({
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
