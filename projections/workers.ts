import { ProjectionDaemon, type CommittedListener, type DaemonOptions } from './daemon.ts';
import { localLane, standForLeadership } from './leadership.ts';
import { REBUILD_CHANNEL, listenForNotices } from './notices.ts';
import type { Projector } from './projector.ts';
import { serveRebuildRequest } from './rebuild-requests.ts';

export interface ProjectionWorkers {
  /** Hears every batch the daemon commits (see `ProjectionDaemon.onCommitted`); returns the unsubscribe. */
  onCommitted(listener: CommittedListener): () => void;
  /** The projections this process leads now. */
  leading(): string[];
  /** Stops the daemon at a checkpoint (a batch being committed finishes first) and lets go of the leads. */
  stop(): Promise<void>;
}

export interface WorkersOptions extends DaemonOptions {
  projectors: readonly Projector[];
  /** How often a standby tries to take the lead. */
  standbyRetryMs?: number;
}

/**
 * The projection runtime of a process: one daemon, and for each projector a bid for its lead; the
 * daemon carries every projection this process leads. Rebuild requests from any process (NOTIFY on
 * REBUILD_CHANNEL) reach the lane they name.
 */
export function startProjectionDaemon(options: WorkersOptions): ProjectionWorkers {
  const daemon = new ProjectionDaemon(options);
  const controller = new AbortController();
  const { database, logger } = daemon;
  const names = new Set(options.projectors.map((projector) => projector.name));
  const serve = (name: string) => {
    const lane = localLane(database, name);
    if (lane && names.has(name)) serveRebuildRequest(lane);
  };
  const unlisten = listenForNotices(database, REBUILD_CHANNEL, (payload) => {
    for (const name of payload === null ? names : [payload]) serve(name);
  }).catch((error: unknown) => {
    logger.warn({ err: error }, 'cannot listen for rebuild requests; they are served when a lead is taken');
    return async () => {};
  });
  const leaders = options.projectors.map((projector) =>
    standForLeadership(daemon, projector, {
      standbyRetryMs: options.standbyRetryMs ?? 1000,
      signal: controller.signal,
      onLead: (lane) => serveRebuildRequest(lane),
    }),
  );
  return {
    onCommitted: (listener) => daemon.onCommitted(listener),
    leading: () => [...names].filter((name) => daemon.lane(name)?.active === true),
    async stop() {
      controller.abort();
      await daemon.stop();
      await Promise.all(leaders);
      await (
        await unlisten
      )();
    },
  };
}
