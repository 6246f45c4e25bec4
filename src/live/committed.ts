import type { Logger } from 'pino';
import type { ProjectionProgress } from '../../projections/progress.ts';
import { INCIDENT_STREAM_PREFIX } from '../../projections/projector.ts';
import type { EventStore, RecordedEvent } from '../eventstore/port.ts';
import { liveFeedBackoff, sleep } from '../retry.ts';

/**
 * Where live streams learn of new events: batches, in log order, that every read model already
 * includes. A process that runs the projection daemon feeds them from its commits
 * (`DaemonCommittedEvents`); one without workers (`--role api`) from a store subscription of its own
 * (`StoreCommittedEvents`). The fan-out does not tell them apart.
 */
export interface CommittedEvents {
  /** Position of the newest event handed to listeners (every one up to it is projected); null before any. */
  readonly position: string | null;
  /** Resolves once `position` is known; listeners hear every event after it. */
  start(): Promise<void>;
  onCommitted(listener: (events: readonly RecordedEvent[]) => void): () => void;
  stop(): Promise<void>;
}

/** How long one wait for the read models lasts before it is renewed (the stream just waits longer). */
const VISIBILITY_WAIT_MS = 60_000;

/** One store subscription per process without workers, each event held back until the projections have committed it. */
export class StoreCommittedEvents implements CommittedEvents {
  position: string | null = null;
  private readonly listeners = new Set<(events: readonly RecordedEvent[]) => void>();
  private readonly abort = new AbortController();
  private starting: Promise<void> | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: EventStore,
    private readonly progress: ProjectionProgress,
    private readonly logger?: Pick<Logger, 'warn'>,
  ) {}

  start(): Promise<void> {
    this.starting ??= this.open().catch((error: unknown) => {
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    const head = await this.store.headPosition(INCIDENT_STREAM_PREFIX);
    if (head !== null) await this.visible(head);
    this.position = head;
    this.running = this.follow();
  }

  onCommitted(listener: (events: readonly RecordedEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Waits until every projection has passed `position`; false only when stopping. */
  private async visible(position: string): Promise<boolean> {
    while (!this.abort.signal.aborted) {
      if (await this.progress.waitFor(position, VISIBILITY_WAIT_MS)) return true;
    }
    return false;
  }

  /** The subscription, resumed from the last position handed out whenever it drops. */
  private async follow(): Promise<void> {
    const { signal } = this.abort;
    let failures = 0;
    while (!signal.aborted) {
      try {
        for await (const event of this.store.subscribe({
          fromPosition: this.position,
          streamPrefix: INCIDENT_STREAM_PREFIX,
          signal,
        })) {
          if (!(await this.visible(event.position))) return;
          this.position = event.position;
          failures = 0;
          const batch = [event];
          for (const listener of [...this.listeners]) listener(batch);
        }
      } catch (error) {
        if (signal.aborted) return;
        this.logger?.warn({ err: error }, 'live feed: the store subscription dropped; resuming');
        await sleep(liveFeedBackoff.delayMs(failures++), signal);
      }
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.listeners.clear();
    await this.starting?.catch(() => {});
    await this.running;
  }
}
