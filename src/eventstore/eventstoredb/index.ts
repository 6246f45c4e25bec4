/**
 * The event store port on EventStoreDB, through `@eventstore/db-client` 6.2.1 (gRPC).
 *
 * Streams, versions and idempotency are EventStoreDB's own: a stream revision is the port's version
 * and an event id the server has already stored at that place makes a retried append a no-op.
 * Retrying after an unknown outcome (EventStoreUnavailable) is the caller's job: it resends the
 * same event ids with the same expected version, and the server answers as it did the first time.
 *
 * This client version has no server-side filter on `readAll` (only `subscribeToAll` takes one), so
 * `readAll` and `headPosition` filter by stream prefix on the client, reading `$all` until they
 * have what they need.
 */
import {
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  START,
  jsonEvent,
  streamNameFilter,
  type AllStreamRecordedEvent,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type Direction,
  type Filter,
  type Position,
  type ReadPosition,
  type StreamingRead,
} from '@eventstore/db-client';
import {
  EventStoreUnavailable,
  type AppendResult,
  type EventStore,
  type EventToAppend,
  type ExpectedVersion,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../port.ts';
import {
  isAfter,
  isPermanentError,
  isStreamNotFound,
  isWanted,
  positionToString,
  toAppendError,
  toExpectedRevision,
  toPortError,
  toReadPosition,
  toRecordedEvent,
} from './mapping.ts';
import { DEFAULT_LIVENESS_MS, LivenessWatchdog, ResumeCursor, resubscribeDelay } from './resubscribe.ts';

export interface EventStoreDbLogger {
  warn(obj: object, msg: string): void;
}

export interface EventStoreDbOptions {
  logger?: EventStoreDbLogger;
  /** A subscription that hears nothing for this long while waiting on the server is replaced. */
  livenessTimeoutMs?: number;
  /** How long `ping` waits for an answer. */
  pingTimeoutMs?: number;
}

const DEFAULT_PING_TIMEOUT_MS = 5_000;

/** e.g. `esdb://localhost:2113?tls=false`. The client connects lazily, on the first call. */
export function openEventStoreDb(
  connectionString: string,
  options: EventStoreDbOptions = {},
): EventStoreDbEventStore {
  return new EventStoreDbEventStore(EventStoreDBClient.connectionString(connectionString), options);
}

/** Pushed into the subscription by the checkpoint callback, so it reaches the loop in order with the events. */
class CheckpointReached {
  constructor(readonly position: string) {}
}

/** Thrown into a subscription the liveness watchdog gave up on. */
class SubscriptionStalled extends Error {
  override readonly name = 'SubscriptionStalled';
}

type SubscriptionEnd =
  | { reason: 'aborted' }
  | { reason: 'ended' | 'stalled' | 'failed'; error?: unknown; progressed: boolean; caughtUp: boolean };

export class EventStoreDbEventStore implements EventStore {
  readonly kind = 'eventstoredb';
  private readonly logger: EventStoreDbLogger | undefined;
  private readonly livenessTimeoutMs: number;
  private readonly pingTimeoutMs: number;
  /** Aborted by `close`, which ends every subscription still running. */
  private readonly lifetime = new AbortController();

  constructor(
    private readonly client: EventStoreDBClient,
    options: EventStoreDbOptions = {},
  ) {
    this.logger = options.logger;
    this.livenessTimeoutMs = options.livenessTimeoutMs ?? DEFAULT_LIVENESS_MS;
    this.pingTimeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  }

  async append(
    streamName: string,
    events: EventToAppend[],
    expected: ExpectedVersion,
  ): Promise<AppendResult> {
    if (events.length === 0) throw new RangeError('append needs at least one event');
    let revision: bigint;
    try {
      const result = await this.client.appendToStream(
        streamName,
        events.map(({ eventId, type, data, metadata }) => jsonEvent({ id: eventId, type, data, metadata })),
        { expectedRevision: toExpectedRevision(expected) },
      );
      revision = result.nextExpectedRevision;
    } catch (error) {
      throw toAppendError(error, streamName, expected);
    }
    // The append's own `position` is not the last event's `$all` position for every batch, and a
    // retry the server recognises as already done may come back without one; the stored last event
    // carries the exact position, the same for the first call and every retry. If this read fails
    // the append did land: the caller's retry with the same ids comes back as already done.
    const last = await this.readStream(streamName, { fromVersion: Number(revision), limit: 1 });
    if (!last[0])
      throw new EventStoreUnavailable(
        `event ${streamName}@${revision.toString()} was appended but cannot be read back`,
      );
    return { version: Number(revision), position: last[0].position };
  }

  async readStream(streamName: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    if (options.limit !== undefined && options.limit <= 0) return [];
    const backwards = options.direction === 'backwards';
    const events: RecordedEvent[] = [];
    let read: StreamingRead<unknown> | undefined;
    let finished = false;
    try {
      const stream = this.client.readStream(streamName, {
        direction: backwards ? BACKWARDS : FORWARDS,
        fromRevision:
          options.fromVersion === undefined ? (backwards ? END : START) : BigInt(options.fromVersion),
        ...(options.limit === undefined ? {} : { maxCount: options.limit }),
      });
      read = ignoreLateErrors(stream);
      for await (const resolved of stream) {
        if (resolved.event) events.push(toRecordedEvent(resolved.event));
      }
      finished = true;
    } catch (error) {
      // The client reports a missing stream as an error raised while iterating.
      if (isStreamNotFound(error)) return [];
      throw toPortError(error);
    } finally {
      if (read && !finished) stopReading(read);
    }
    return events;
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    if (options.limit <= 0) return [];
    const from = options.fromPosition ?? null;
    const events: RecordedEvent[] = [];
    // readAll's fromPosition is inclusive; the port's is exclusive, so the event at `from` is skipped.
    await this.scanAll({ fromPosition: toReadPosition(from), direction: FORWARDS }, (event, position) => {
      if (!isAfter(position, from) || !isWanted(event.streamId, event.type, options.streamPrefix))
        return true;
      events.push(toRecordedEvent(event));
      return events.length < options.limit;
    });
    return events;
  }

  async countEvents(options: {
    fromPosition?: string | null;
    streamPrefix?: string;
    limit?: number;
  }): Promise<number> {
    const from = options.fromPosition ?? null;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    let count = 0;
    if (limit <= 0) return 0;
    await this.scanAll({ fromPosition: toReadPosition(from), direction: FORWARDS }, (event, position) => {
      if (isAfter(position, from) && isWanted(event.streamId, event.type, options.streamPrefix)) count++;
      return count < limit;
    });
    return count;
  }

  async headPosition(streamPrefix?: string): Promise<string | null> {
    let head: string | null = null;
    // System events are skipped: a subscription never delivers them, so a head that counted them
    // would stay ahead of every subscriber's checkpoint.
    await this.scanAll({ fromPosition: END, direction: BACKWARDS }, (event, position) => {
      if (!isWanted(event.streamId, event.type, streamPrefix)) return true;
      head = position;
      return false;
    });
    return head;
  }

  async ping(): Promise<void> {
    const read = ignoreLateErrors(
      this.client.readAll({ fromPosition: END, direction: BACKWARDS, maxCount: 1 }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silence = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new EventStoreUnavailable(`EventStoreDB did not answer a ping within ${this.pingTimeoutMs} ms`),
          ),
        this.pingTimeoutMs,
      );
    });
    try {
      await Promise.race([drain(read), silence]);
    } catch (error) {
      const mapped = toPortError(error);
      throw mapped instanceof EventStoreUnavailable
        ? mapped
        : new EventStoreUnavailable('EventStoreDB ping failed', { cause: error });
    } finally {
      clearTimeout(timer);
      stopReading(read);
    }
  }

  async close(): Promise<void> {
    this.lifetime.abort();
    await this.client.dispose();
  }

  async *subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent> {
    const streamPrefix = options.streamPrefix || undefined;
    const cursor = new ResumeCursor(options.fromPosition ?? null);
    const stop = linkSignals(this.lifetime.signal, options.signal);
    let failures = 0;
    try {
      while (!stop.signal.aborted) {
        const end = yield* this.followOnce(cursor, streamPrefix, stop.signal);
        if (end.reason === 'aborted' || stop.signal.aborted) return;
        // A subscription that delivered or caught up was healthy: its drop starts the backoff afresh.
        if (end.progressed) failures = 0;
        // Caught up and silent is an idle log, not a fault: replace the subscription quietly.
        const idle = end.reason === 'stalled' && end.caughtUp;
        const delayMs = idle ? 0 : resubscribeDelay(failures++);
        if (!idle) {
          this.logger?.warn(
            { err: end.error, reason: end.reason, resumeAfter: cursor.position, delayMs, streamPrefix },
            'EventStoreDB subscription dropped; resubscribing',
          );
        }
        await sleep(delayMs, stop.signal);
      }
    } finally {
      stop.release();
    }
  }

  /**
   * One server subscription from the cursor (exclusive, as the server treats a catch-up start
   * position), until it fails, ends, goes silent or `stop` aborts. Events at or before the cursor
   * are dropped, so a resubscription never repeats one.
   */
  private async *followOnce(
    cursor: ResumeCursor,
    streamPrefix: string | undefined,
    stop: AbortSignal,
  ): AsyncGenerator<RecordedEvent, SubscriptionEnd> {
    if (stop.aborted) return { reason: 'aborted' };
    const subscription = this.client.subscribeToAll({
      fromPosition: toReadPosition(cursor.position),
      filter: subscriptionFilter(streamPrefix),
    });
    let progressed = false;
    let caughtUp = false;
    const watchdog = new LivenessWatchdog(this.livenessTimeoutMs, () => {
      subscription.destroy(
        new SubscriptionStalled(`no word from the server for ${this.livenessTimeoutMs} ms`),
      );
    });
    const heard = () => watchdog.heard();
    subscription
      .on('confirmation', heard)
      .on('caughtUp', () => {
        caughtUp = progressed = true;
        heard();
      })
      .on('fellBehind', () => {
        caughtUp = false;
        heard();
      });
    ignoreLateErrors(subscription);
    const onAbort = () => subscription.destroy();
    stop.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const item of subscription as AsyncIterable<AllStreamResolvedEvent | CheckpointReached>) {
        heard();
        progressed = true;
        if (item instanceof CheckpointReached) {
          cursor.advanceTo(item.position);
          continue;
        }
        const event = item.event;
        if (!event) continue;
        if (!cursor.advanceTo(positionToString(event.position))) continue;
        if (!isWanted(event.streamId, event.type, streamPrefix)) continue;
        const recorded = toRecordedEvent(event);
        watchdog.pause();
        yield recorded;
        watchdog.resume();
      }
      return stop.aborted ? { reason: 'aborted' } : { reason: 'ended', progressed, caughtUp };
    } catch (error) {
      if (stop.aborted) return { reason: 'aborted' };
      if (isPermanentError(error)) throw toPortError(error);
      const reason = error instanceof SubscriptionStalled ? 'stalled' : 'failed';
      return { reason, error, progressed, caughtUp };
    } finally {
      stop.removeEventListener('abort', onAbort);
      watchdog.stop();
      subscription.unsubscribe().catch(() => {});
      subscription.destroy();
    }
  }

  /**
   * Reads `$all` event by event until `visit` returns false or the log ends, then releases the
   * server-side read. `visit` gets each event with its port position.
   */
  private async scanAll(
    options: { fromPosition: ReadPosition; direction: Direction },
    visit: (event: AllStreamRecordedEvent, position: string) => boolean,
  ): Promise<void> {
    let read: StreamingRead<AllStreamResolvedEvent> | undefined;
    try {
      read = ignoreLateErrors(this.client.readAll(options));
      for await (const resolved of read) {
        const event = resolved.event;
        if (event && !visit(event, positionToString(event.position))) break;
      }
    } catch (error) {
      throw toPortError(error);
    } finally {
      if (read) stopReading(read);
    }
  }
}

/**
 * The server-side filter: the prefix when there is one, else every stream that is not a system
 * stream. Each checkpoint the server sends vouches that every matching event before it was sent;
 * pushing it into the stream keeps it behind those events, so the cursor passes it only once the
 * consumer has them.
 */
function subscriptionFilter(streamPrefix: string | undefined): Filter {
  const checkpointReached = (subscription: AllStreamSubscription, position: Position) => {
    if (!subscription.destroyed) subscription.push(new CheckpointReached(positionToString(position)));
  };
  return streamPrefix
    ? streamNameFilter({ prefixes: [streamPrefix], checkpointReached })
    : streamNameFilter({ regex: '^[^$]', checkpointReached });
}

/**
 * The client emits a failed call's error on the stream; while a loop iterates, the error reaches it
 * through the iterator. Once the loop is gone, this listener keeps a late one from crashing the process.
 */
function ignoreLateErrors<T extends { on(event: 'error', listener: (err: Error) => void): unknown }>(
  stream: T,
): T {
  stream.on('error', () => {});
  return stream;
}

async function drain(read: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of read) {
    // only the answer matters
  }
}

/** Cancels the gRPC call behind a read; leaving the loop early only stops the local stream. */
function stopReading(read: StreamingRead<unknown>): void {
  read.cancel().catch(() => {});
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A signal that aborts when either input does (AbortSignal.any needs Node 20.3). */
function linkSignals(
  first: AbortSignal,
  second: AbortSignal | undefined,
): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  for (const signal of [first, second]) {
    if (signal?.aborted) controller.abort();
    signal?.addEventListener('abort', abort, { once: true });
  }
  return {
    signal: controller.signal,
    release() {
      first.removeEventListener('abort', abort);
      second?.removeEventListener('abort', abort);
    },
  };
}
