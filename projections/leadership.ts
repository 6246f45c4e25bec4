import type { Database, SessionLock } from '../src/db/database.ts';
import { recordStopped, takeCheckpoint } from './checkpoints.ts';
import { sleep } from '../src/retry.ts';
import type { ProjectionDaemon } from './daemon.ts';
import type { Lane } from './lane.ts';
import type { Projector } from './projector.ts';

/**
 * Leadership across processes: one session-level advisory lock per projection. The process holding
 * it carries the projection in its daemon; the others stand by and try again every `standbyRetryMs`,
 * so a standby takes over within that once the leader's session ends. A batch commits only where the
 * checkpoint still stands where the batch started (see `advanceStatement`), so a leader deposed
 * without noticing can never apply an event twice.
 */
export function lockName(projection: string): string {
  return `projection:${projection}`;
}

// What this process does for each projection, per database: so status and rebuilds can find it.
const localRoles = new WeakMap<Database, Map<string, Lane | 'standby'>>();

function rolesOf(database: Database): Map<string, Lane | 'standby'> {
  let roles = localRoles.get(database);
  if (!roles) localRoles.set(database, (roles = new Map()));
  return roles;
}

/** This process's part in a projection: leading it, waiting to, or none. */
export function localRole(database: Database, projection: string): 'leader' | 'standby' | null {
  const role = localRoles.get(database)?.get(projection);
  return role === undefined ? null : role === 'standby' ? 'standby' : 'leader';
}

/** The lane of a projection this process leads, if it does. */
export function localLane(database: Database, projection: string): Lane | undefined {
  const role = localRoles.get(database)?.get(projection);
  return role === 'standby' ? undefined : role;
}

/** Leads `projector` whenever its lock is free, until `signal` aborts; stands by otherwise. */
export async function standForLeadership(
  daemon: ProjectionDaemon,
  projector: Projector,
  options: { standbyRetryMs: number; signal: AbortSignal; onLead?: (lane: Lane) => void },
): Promise<void> {
  const { database, logger } = daemon;
  const roles = rolesOf(database);
  const { signal } = options;
  while (!signal.aborted) {
    let lock: SessionLock | null = null;
    try {
      lock = await database.tryLock(lockName(projector.name));
    } catch (error) {
      logger.warn(
        { projection: projector.name, err: error },
        'cannot reach the database to take the projection lock',
      );
    }
    if (!lock) {
      roles.set(projector.name, 'standby');
      await sleep(options.standbyRetryMs, signal);
      continue;
    }
    try {
      await leadWhileLocked(daemon, projector, lock, signal, options.onLead);
    } catch (error) {
      logger.error({ projection: projector.name, err: error }, 'projection worker stopped leading');
    } finally {
      await lock.release().catch(() => {});
    }
    // After losing the lead, give whoever took it a head start before trying again.
    if (!signal.aborted) await sleep(options.standbyRetryMs, signal);
  }
  roles.delete(projector.name);
}

/**
 * Carries a projection in `daemon` from its checkpoint while `lock` holds; returns once the lock is
 * lost, the daemon let go of the lane (its checkpoint moved), or `stopping` aborted.
 */
export async function leadWhileLocked(
  daemon: ProjectionDaemon,
  projector: Projector,
  lock: SessionLock,
  stopping: AbortSignal,
  onLead?: (lane: Lane) => void,
): Promise<void> {
  const { database, logger } = daemon;
  const roles = rolesOf(database);
  const position = await takeCheckpoint(database.db, projector.name);
  const lane = daemon.join(projector, position);
  roles.set(projector.name, lane);
  logger.info({ projection: projector.name }, 'leading projection');
  let lost = false;
  try {
    onLead?.(lane);
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      void lock.lost.then(() => {
        lost = true;
        done();
      });
      stopping.addEventListener('abort', done, { once: true });
      lane.signal.addEventListener('abort', done, { once: true });
      if (stopping.aborted || lane.signal.aborted) done();
    });
  } finally {
    // A clean stop waits for the batch in flight, so nothing commits after the row says idle.
    if (stopping.aborted) await daemon.stopped();
    daemon.leave(lane);
    if (roles.get(projector.name) === lane) roles.delete(projector.name);
    await lane.rebuilding?.catch(() => {});
    // A clean stop says so; a lost lock leaves the row to whoever leads now.
    if (stopping.aborted && !lost) await recordStopped(database, projector.name).catch(() => {});
  }
}
