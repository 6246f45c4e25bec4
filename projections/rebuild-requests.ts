import type { Logger } from 'pino';
import type { Database, SessionLock } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import { isRebuildRequested } from './checkpoints.ts';
import { ProjectionDaemon } from './daemon.ts';
import type { Lane } from './lane.ts';
import { leadWhileLocked, localLane, lockName } from './leadership.ts';
import { ProjectionProgress } from './progress.ts';
import { INCIDENT_STREAM_PREFIX, type Projector } from './projector.ts';
import { Stopped, rebuildWhileLive, type RebuildProgress } from './rebuild.ts';

/** Another process leads this projection; ask it with `requestRebuild`. */
export class ProjectionBusy extends Error {
  override readonly name = 'ProjectionBusy';
  constructor(readonly projection: string) {
    super(`projection ${projection} is being run by another process`);
  }
}

/** How long a rebuild waits for others asked about the same time, so one pass serves them all. */
const REBUILD_GATHER_MS = 50;

// The rebuild of each database that is still taking projections in.
const gathering = new WeakMap<Database, { lanes: Lane[]; outcomes: Promise<PromiseSettledResult<void>[]> }>();

/** Runs a lane's rebuild in one pass with those of every lane in this process asked about the same time. */
async function rebuildTogether(lane: Lane): Promise<void> {
  const { database } = lane;
  let pass = gathering.get(database);
  if (!pass) {
    const lanes: Lane[] = [];
    const outcomes = new Promise<void>((resolve) => setTimeout(resolve, REBUILD_GATHER_MS)).then(() => {
      gathering.delete(database);
      return rebuildWhileLive(lanes);
    });
    pass = { lanes, outcomes };
    gathering.set(database, pass);
  }
  const index = pass.lanes.push(lane) - 1;
  const outcome = (await pass.outcomes)[index]!;
  if (outcome.status === 'rejected') throw outcome.reason;
}

/**
 * Rebuilds a lane beside its live side (joins the rebuild already running if any). Afterwards a lane
 * parked at a failed event tries it again at once: the fresh table may take it.
 */
export async function rebuildLane(lane: Lane, onProgress?: RebuildProgress): Promise<void> {
  const unlisten = onProgress ? lane.listenToRebuild(onProgress) : () => {};
  try {
    lane.rebuilding ??= rebuildTogether(lane).finally(() => {
      lane.rebuilding = null;
      lane.retryNow();
    });
    await lane.rebuilding;
  } finally {
    unlisten();
  }
}

/** Starts the rebuild someone asked for in the checkpoint row (`requestRebuild`), if any. */
export function serveRebuildRequest(lane: Lane): void {
  if (lane.rebuilding || lane.signal.aborted) return;
  isRebuildRequested(lane.database, lane.name)
    .then((requested) => (requested ? rebuildLane(lane) : undefined))
    .catch((error: unknown) => {
      if (!(error instanceof Stopped))
        lane.logger.error({ err: error }, 'requested rebuild did not complete');
    });
}

/** Waits until the live side has projected the head of the log, unless it stops or fails first. */
async function catchUp(lane: Lane): Promise<void> {
  const head = await lane.store.headPosition(INCIDENT_STREAM_PREFIX);
  if (head === null) return;
  const progress = new ProjectionProgress(lane.database, [lane.name]);
  try {
    // In slices, so a live side that fails or loses the lock does not hold the caller forever.
    while (!(await progress.waitFor(head, 1000))) {
      if (lane.signal.aborted || lane.failed) return;
    }
  } finally {
    await progress.stop();
  }
}

/**
 * Rebuilds projections now, together in one pass over the log: each through this process's lane of
 * it if there is one, else by leading it for the while in a daemon of its own (live included, so the
 * old table stays current). Resolves with each projection's outcome, in the order given:
 * ProjectionBusy for one that another process leads.
 */
export async function rebuildWithLeaders(options: {
  database: Database;
  store: EventStore;
  logger?: Logger;
  projectors: readonly Projector[];
  onProgress?: RebuildProgress;
}): Promise<PromiseSettledResult<void>[]> {
  const { database } = options;
  const stopping = new AbortController();
  let daemon: ProjectionDaemon | null = null;
  const borrowed: { lane: Lane; lock: SessionLock; leading: Promise<unknown> }[] = [];
  try {
    const lanes = await Promise.allSettled(
      options.projectors.map(async (projector) => {
        const local = localLane(database, projector.name);
        if (local) return local;
        const lock = await database.tryLock(lockName(projector.name));
        if (!lock) throw new ProjectionBusy(projector.name);
        daemon ??= new ProjectionDaemon(options);
        const host = daemon;
        let joined!: (lane: Lane) => void;
        const lane = new Promise<Lane>((resolve) => (joined = resolve));
        // Handled at once: the temporary leader may fail while the rebuild is still being awaited.
        const leading = leadWhileLocked(host, projector, lock, stopping.signal, joined).catch(
          (error: unknown) => {
            host.logger.error({ projection: projector.name, err: error }, 'temporary leader failed');
            throw error;
          },
        );
        const led = await Promise.race([lane, leading.then(() => null)]);
        if (!led) throw new Error(`could not lead ${projector.name}`);
        borrowed.push({ lane: led, lock, leading: leading.catch(() => {}) });
        return led;
      }),
    );
    // Asked in one turn, so they share one pass.
    const outcomes = await Promise.allSettled(
      lanes.map((found) =>
        found.status === 'fulfilled'
          ? rebuildLane(found.value, options.onProgress)
          : Promise.reject(found.reason),
      ),
    );
    // Nobody else leads the borrowed ones: catch up with the log before letting go, so "rebuilt" means current.
    const rebuilt = (lane: Lane) =>
      outcomes[options.projectors.indexOf(lane.projector)]?.status === 'fulfilled';
    await Promise.all(borrowed.filter(({ lane }) => rebuilt(lane)).map(({ lane }) => catchUp(lane)));
    return outcomes;
  } finally {
    stopping.abort();
    await (daemon as ProjectionDaemon | null)?.stop();
    await Promise.all(borrowed.map(({ leading }) => leading));
    await Promise.all(borrowed.map(({ lock }) => lock.release().catch(() => {})));
  }
}
