import type { Logger } from 'pino';
import type { CommittedBatch, ProjectionWorkers } from '../../projections/index.ts';
import type { ProjectionProgress } from '../../projections/progress.ts';
import { INCIDENT_STREAM_PREFIX } from '../../projections/projector.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../eventstore/port.ts';
import { liveFeedBackoff, sleep } from '../retry.ts';
import type { CommittedEvents } from './committed.ts';

/** Events read per store page where the daemon's batches do not reach. */
const STORE_PAGE = 500;
/** Events of the daemon's batches held while other processes' projections catch up; past that the oldest are read again from the store. */
const MAX_HELD_EVENTS = 10_000;
/**
 * How long a checkpoint seen through NOTIFY waits for this daemon's own batch while it leads a
 * projection: the notice can arrive before the commit's answer does. Past that (the lead just
 * moved here, with events another process committed), the store.
 */
const BATCH_GRACE_MS = 500;

/**
 * The live feed of a process that runs the projection daemon, without a store subscription of its
 * own. An event is handed out once every projection includes it, which `ProjectionProgress` knows
 * (this daemon's commits at once, other processes' through NOTIFY); the events themselves come from
 * the batches this daemon committed, held in memory until then. Where those batches do not reach
 * back to the last position handed out (another process leads every projection, or this one took a
 * lead later), the events in between are read from the store in pages. So a process that leads
 * all projections costs the store nothing more, one that leads some waits for the others'
 * checkpoints, and one that leads none reads each committed range once for all its streams.
 */
export class DaemonCommittedEvents implements CommittedEvents {
  position: string | null = null;
  private readonly listeners = new Set<(events: readonly RecordedEvent[]) => void>();
  private readonly held: CommittedBatch[] = [];
  private heldEvents = 0;
  private batchHeard: () => void = () => {};
  private readonly abort = new AbortController();
  private readonly unsubscribe: (() => void)[] = [];
  private starting: Promise<void> | null = null;
  private running: Promise<void> | null = null;
  /** Set by every batch or checkpoint move, so a wake-up between a check and the nap is not lost. */
  private woken = false;
  private wake: () => void = () => {};

  constructor(
    private readonly workers: Pick<ProjectionWorkers, 'onCommitted' | 'leading'>,
    private readonly store: EventStore,
    private readonly progress: ProjectionProgress,
    private readonly logger?: Pick<Logger, 'warn'>,
  ) {}

  start(): Promise<void> {
    this.starting ??= this.open().catch((error: unknown) => {
      for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    // Both before the checkpoints are read: nothing committed after them goes unheard.
    this.unsubscribe.push(
      this.workers.onCommitted((batch) => this.hold(batch)),
      this.progress.onAdvance(() => this.alarm()),
    );
    await this.progress.start();
    this.position = this.progress.lowest();
    this.abort.signal.addEventListener('abort', () => this.alarm(), { once: true });
    this.running = this.pump();
  }

  onCommitted(listener: (events: readonly RecordedEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private hold(batch: CommittedBatch): void {
    this.held.push(batch);
    this.batchHeard();
    this.heldEvents += batch.events.length;
    while (this.heldEvents > MAX_HELD_EVENTS && this.held.length > 1)
      this.heldEvents -= this.held.shift()!.events.length;
    this.alarm();
  }

  private alarm(): void {
    this.woken = true;
    this.wake();
  }

  private async nap(): Promise<void> {
    if (!this.woken) await new Promise<void>((resolve) => (this.wake = resolve));
    this.woken = false;
  }

  /**
   * Hands out what every projection has passed, whenever a checkpoint moves. A local commit
   * announces its checkpoints before it hands its batch to `hold`, in the same turn, so the pump
   * woken by the first finds the batch in memory. The NOTIFY of that commit can come back before
   * the commit's answer, though: then, while this daemon leads a projection, `handOutTo` waits for
   * the batch (up to BATCH_GRACE_MS) instead of reading the store.
   */
  private async pump(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      const target = this.progress.lowest();
      if (target === null || comparePositions(target, this.position) <= 0) {
        await this.nap();
        continue;
      }
      try {
        await this.handOutTo(target);
        failures = 0;
      } catch (error) {
        if (this.abort.signal.aborted) return;
        this.logger?.warn({ err: error }, 'live feed: cannot read the store; retrying');
        await sleep(liveFeedBackoff.delayMs(failures++), this.abort.signal);
      }
    }
  }

  /** Hands out every event after `position` up to `target`, from the held batches where they reach, else from the store. */
  private async handOutTo(target: string): Promise<void> {
    while (comparePositions(target, this.position) > 0 && !this.abort.signal.aborted) {
      while (this.held[0] && comparePositions(this.held[0].position, this.position) <= 0)
        this.heldEvents -= this.held.shift()!.events.length;
      const batch = this.held[0];
      if (batch && comparePositions(batch.after, this.position) <= 0) {
        const upTo = comparePositions(batch.position, target) <= 0 ? batch.position : target;
        this.deliver(
          batch.events.filter(
            (event) =>
              comparePositions(event.position, this.position) > 0 &&
              comparePositions(event.position, upTo) <= 0,
          ),
          upTo,
        );
        continue;
      }
      if (!batch && this.workers.leading().length > 0 && (await this.nextBatch())) continue;
      const upTo = batch && comparePositions(batch.after, target) < 0 ? batch.after! : target;
      const page = await this.store.readAll({
        fromPosition: this.position,
        streamPrefix: INCIDENT_STREAM_PREFIX,
        limit: STORE_PAGE,
      });
      const within = page.filter((event) => comparePositions(event.position, upTo) <= 0);
      const complete = within.length < page.length || page.length < STORE_PAGE;
      this.deliver(within, complete ? upTo : within.at(-1)!.position);
    }
  }

  /** True once the daemon hands over a batch, false after BATCH_GRACE_MS without. */
  private nextBatch(): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), BATCH_GRACE_MS);
      this.batchHeard = () => {
        clearTimeout(timer);
        this.batchHeard = () => {};
        resolve(true);
      };
    });
  }

  private deliver(events: readonly RecordedEvent[], to: string): void {
    this.position = to;
    if (events.length === 0) return;
    for (const listener of [...this.listeners]) listener(events);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.alarm();
    this.batchHeard();
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    this.listeners.clear();
    await this.starting?.catch(() => {});
    await this.running;
  }
}
