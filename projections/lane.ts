import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import type { Projector } from './projector.ts';
import type { LiveProjection, RebuildProgress } from './rebuild.ts';

/** What a lane asks of the daemon that carries it. */
export interface LaneHost {
  readonly database: Database;
  readonly store: EventStore;
  /** Holds every lane between two batches; the daemon carries on when the returned function is called. */
  pause(): Promise<() => void>;
  /** The lane may project again (its retry is due, or a rebuild replaced what it failed on). */
  rejoin(lane: Lane): void;
}

/**
 * One projection led by this process, as the daemon carries it: where its checkpoint stands, whether
 * it is held back by an event that keeps failing, and its rebuild. The daemon moves `position` after
 * each commit; a rebuild reads it (see `LiveProjection`).
 */
export class Lane implements LiveProjection {
  readonly database: Database;
  readonly store: EventStore;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  /** Aborted when this process stops leading the projection. */
  private readonly leading = new AbortController();
  /** Set aside until its retry is due: the daemon's batches pass it by. */
  parked = false;
  /** Recorded as failed at an event (until it gets past it). */
  failed = false;
  /** The event that failed last, and how many tries it failed. */
  failing: { position: string; tries: number } | null = null;
  rebuilding: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private readonly progressListeners = new Set<RebuildProgress>();

  constructor(
    private readonly host: LaneHost,
    readonly projector: Projector,
    public position: string | null,
    logger: Logger,
  ) {
    this.database = host.database;
    this.store = host.store;
    this.logger = logger.child({ projection: projector.name });
    this.signal = this.leading.signal;
  }

  get name(): string {
    return this.projector.name;
  }

  /** Projects live batches: led, not parked. */
  get active(): boolean {
    return !this.parked && !this.signal.aborted;
  }

  liveState(): 'running' | 'failed' {
    return this.failed ? 'failed' : 'running';
  }

  pause(): Promise<() => void> {
    return this.host.pause();
  }

  rebuildProgress(done: number, total: number): void {
    for (const listener of this.progressListeners) listener(done, total);
  }

  listenToRebuild(listener: RebuildProgress): () => void {
    this.progressListeners.add(listener);
    return () => this.progressListeners.delete(listener);
  }

  /** Sets the lane aside for `ms`, then the daemon takes it on again from its checkpoint. */
  park(ms: number): void {
    this.parked = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => this.retryNow(), ms);
  }

  /** A parked lane tries again at once (a rebuild replaced what it failed on). */
  retryNow(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    if (!this.parked || this.signal.aborted) return;
    this.parked = false;
    this.host.rejoin(this);
  }

  /** This process no longer leads the projection. */
  end(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.leading.abort();
  }
}
