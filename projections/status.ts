import { sql } from 'kysely';
import type { Database } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import { PROJECTION_NAMES, PROJECTORS } from './catalog.ts';
import { REBUILD_CHANNEL, announce } from './notices.ts';
import { INCIDENT_STREAM_PREFIX } from './projector.ts';
import { checkpointRows, markRebuildRequested } from './checkpoints.ts';
import { localRole, lockName } from './leadership.ts';

/** Lag is counted by reading the events behind the slowest checkpoint, at most this many. */
export const LAG_COUNT_LIMIT = 10_000;

export type ProjectionState = 'running' | 'standby' | 'rebuilding' | 'failed' | 'idle';

export interface ProjectionStatus {
  name: string;
  /** Position of the last event projected; null before the first. */
  position: string | null;
  /** Events after the checkpoint (counting stops at LAG_COUNT_LIMIT). */
  lag: number;
  /** Age of the oldest event not projected yet; 0 when none. */
  lagSeconds: number;
  state: ProjectionState;
  lastError: string | null;
  /** The event a failed projection is stuck on. */
  errorPosition: string | null;
  /** Events folded into the current tables. */
  eventsProcessed: number;
  rebuildRequestedAt: string | null;
  /** Progress of the running (or last) rebuild. */
  rebuildDone: number;
  rebuildTotal: number;
  /** When the last rebuild was swapped in. */
  rebuiltAt: string | null;
}

/** Asks the leader of `name` (in whichever process) to rebuild it; false for an unknown projection. */
export async function requestRebuild(database: Database, name: string): Promise<boolean> {
  if (!PROJECTORS.has(name)) return false;
  await markRebuildRequested(database.db, name);
  await sql`select pg_notify(${REBUILD_CHANNEL}, ${name})`.execute(database.db);
  announce(database, REBUILD_CHANNEL, name);
  return true;
}

/** Every projection's checkpoint, lag, state and last error. */
export async function projectionStatus(database: Database, store: EventStore): Promise<ProjectionStatus[]> {
  const rows = await checkpointRows(database, PROJECTION_NAMES);
  const byName = new Map(rows.map((row) => [row.name, row]));
  const now = Date.now();
  return Promise.all(
    PROJECTION_NAMES.map(async (name): Promise<ProjectionStatus> => {
      const row = byName.get(name);
      const position = row?.position ?? null;
      const [lag, [oldest]] = await Promise.all([
        store.countEvents({
          fromPosition: position,
          streamPrefix: INCIDENT_STREAM_PREFIX,
          limit: LAG_COUNT_LIMIT,
        }),
        store.readAll({ fromPosition: position, streamPrefix: INCIDENT_STREAM_PREFIX, limit: 1 }),
      ]);
      return {
        name,
        position,
        lag,
        lagSeconds: oldest ? Math.max(0, (now - Date.parse(oldest.createdAt)) / 1000) : 0,
        state: stateOf(row?.state ?? 'idle', await isLed(database, name), localRole(database, name)),
        lastError: row?.last_error ?? null,
        errorPosition: row?.error_position ?? null,
        eventsProcessed: Number(row?.events_processed ?? 0),
        rebuildRequestedAt: row?.rebuild_requested_at
          ? new Date(row.rebuild_requested_at).toISOString()
          : null,
        rebuildDone: Number(row?.rebuild_done ?? 0),
        rebuildTotal: Number(row?.rebuild_total ?? 0),
        rebuiltAt: row?.rebuilt_at ? new Date(row.rebuilt_at).toISOString() : null,
      };
    }),
  );
}

/** The row says what its leader does; with no leader alive, the projection is idle (or still failed). */
function stateOf(recorded: string, led: boolean, local: 'leader' | 'standby' | null): ProjectionState {
  if (recorded === 'failed') return 'failed';
  if (led) return recorded === 'rebuilding' ? 'rebuilding' : 'running';
  return local === 'standby' ? 'standby' : 'idle';
}

/** Whether some session holds the projection's lock: a probe that takes it and gives it straight back. */
async function isLed(database: Database, name: string): Promise<boolean> {
  const probe = await database.tryLock(lockName(name));
  if (probe === null) return true;
  await probe.release();
  return false;
}
