/**
 * The read side: one projector per read model, workers that keep the read models at the head of
 * the incident streams, read-your-writes waits, status, and rebuilds without downtime.
 */
import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import { PROJECTION_NAMES, projectorNamed } from './catalog.ts';
import type { RebuildProgress } from './rebuild.ts';
import { rebuildWithLeader, startProjectionRunners, type ProjectionWorkers } from './runner.ts';

export { PROJECTION_NAMES } from './catalog.ts';
export { ProjectionProgress } from './progress.ts';
export { ProjectionBusy, type ProjectionWorkers } from './runner.ts';
export { projectionStatus, requestRebuild, type ProjectionState, type ProjectionStatus } from './status.ts';

/** Starts a worker for each projection (all by default): it leads when it gets the lock, else stands by. */
export function startProjectionWorkers(opts: { database: Database; store: EventStore; logger?: Logger; names?: string[] }): ProjectionWorkers {
  const names = opts.names ?? PROJECTION_NAMES;
  return startProjectionRunners({ database: opts.database, store: opts.store, logger: opts.logger, projectors: names.map(projectorNamed) });
}

/**
 * Replays a projection into fresh tables while the old ones keep serving, then swaps them in.
 * Runs through this process's worker of it, or leads it for the while; throws ProjectionBusy when
 * another process leads it (use `requestRebuild`).
 */
export async function rebuildProjection(opts: { database: Database; store: EventStore; name: string; onProgress?: RebuildProgress; logger?: Logger }): Promise<void> {
  await rebuildWithLeader({ database: opts.database, store: opts.store, logger: opts.logger, projector: projectorNamed(opts.name), onProgress: opts.onProgress });
}
