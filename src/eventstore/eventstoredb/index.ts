/**
 * The event store port on EventStoreDB, through `@eventstore/db-client` 6.2.1 (gRPC).
 *
 * Streams, versions and idempotency are EventStoreDB's own: a stream revision is the port's version
 * and an event id the server has already stored at that place makes a retried append a no-op.
 * Retrying after an unknown outcome (EventStoreUnavailable) is the caller's job: it resends the
 * same event ids with the same expected version, and the server answers as it did the first time.
 *
 * This client version sends no filter on `readAll` (only `subscribeToAll` takes one), so reads of
 * `$all` under a prefix are filtered subscriptions that stop at the head of the log: the server
 * filters, and the client receives the page's events, not the log (README, "EventStoreDB").
 * Unfiltered reads go in bounded pages (`maxCount`) that end by themselves.
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
  WrongExpectedVersion,
  comparePositions,
  parsePosition,
  type AppendResult,
  type EventStore,
  type EventToAppend,
  type ExpectedVersion,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../port.ts';
import { linkSignals, sleep } from '../../retry.ts';
import { createClient } from './connect.ts';
import {
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
import {
  DEFAULT_LIVENESS_MS,
  LivenessWatchdog,
  ResumeCursor,
  UNTRUSTED_POSITION_PART,
  resubscribeDelay,
} from './resubscribe.ts';

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

/**
 * e.g. `esdb://localhost:2113?tls=false`. The client connects lazily, on the first call; a string
 * that does not parse throws here, with any password left out of the error.
 */
export function openEventStoreDb(
  connectionString: string,
  options: EventStoreDbOptions = {},
): EventStoreDbEventStore {
  createClient(connectionString); // parse now: a bad string fails at startup, not on the first request
  return new EventStoreDbEventStore(() => createClient(connectionString), options);
}

/** The checkpoint interval of filtered reads: one checkpoint per 1000 × 32 events the server considers. */
const READ_CHECKPOINT_MULTIPLIER = 1000;
/** Backwards pages of `headPosition` under a prefix grow by this factor, up to this many events… */
const HEAD_PAGE_GROWTH = 10;
const HEAD_BACKWARDS_BUDGET = 1_111;
/** …and then it asks the server for a filtered forward read instead. */

/** Pushed by the caughtUp listener, so it reaches a filtered read in order with the events. */
class CaughtUpReached {}

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
  private client: EventStoreDBClient;
  /** Learnt from the first filtered read that got one; until then reads also stop at the head of the log. */
  private sendsCaughtUp = false;
  private readonly connect: (() => EventStoreDBClient) | null;

  /** A client, or a function that makes one (then a client stuck on a failed features request is replaced). */
  constructor(client: EventStoreDBClient | (() => EventStoreDBClient), options: EventStoreDbOptions = {}) {
    this.connect = typeof client === 'function' ? client : null;
    this.client = typeof client === 'function' ? client() : client;
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
      const mapped = toAppendError(error, streamName, expected);
      if (!(mapped instanceof WrongExpectedVersion) && (await this.replaceIfFeaturesFailed()))
        throw new EventStoreUnavailable('EventStoreDB server features could not be read', { cause: error });
      throw mapped;
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
        // Reads that decide (load, the append read-back) must see the leader's log, not a lagging follower's.
        requiresLeader: true,
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
    const events: RecordedEvent[] = [];
    await this.scanFiltered(options.fromPosition ?? null, options.streamPrefix, (event) => {
      events.push(event);
      return events.length < options.limit;
    });
    return events;
  }

  async countEvents(options: {
    fromPosition?: string | null;
    streamPrefix?: string;
    limit?: number;
  }): Promise<number> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return 0;
    let count = 0;
    await this.scanFiltered(options.fromPosition ?? null, options.streamPrefix, () => ++count < limit);
    return count;
  }

  async headPosition(streamPrefix?: string): Promise<string | null> {
    // Backwards in growing pages: the newest matching event is usually near the end. System events
    // are skipped: a subscription never delivers them, so a head that counted them would stay
    // ahead of every subscriber's checkpoint.
    let from: ReadPosition = END;
    for (let size = 1, spent = 0; spent < HEAD_BACKWARDS_BUDGET; spent += size, size *= HEAD_PAGE_GROWTH) {
      const page = await this.readAllPage({ fromPosition: from, direction: BACKWARDS, maxCount: size });
      const found = page.find((event) => isWanted(event.streamId, event.type, streamPrefix));
      if (found) return positionToString(found.position!);
      if (page.length < size) return null;
      from = page.at(-1)!.position!;
    }
    // A prefix whose last event is far back: let the server filter, forwards (costs its events, not the log).
    let head: string | null = null;
    await this.scanFiltered(null, streamPrefix, (event) => {
      head = event.position;
      return true;
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

  /**
   * 6.2.1 keeps a failed GetSupportedMethods answer for the client's lifetime (`Client.capabilities`),
   * so every append after it would fail until a restart: replace such a client with a fresh one.
   */
  private async replaceIfFeaturesFailed(): Promise<boolean> {
    if (!this.connect) return false;
    const features = (this.client as unknown as { capabilities?: Promise<unknown> }).capabilities;
    if (
      !features ||
      !(await features.then(
        () => false,
        () => true,
      ))
    )
      return false;
    const stale = this.client;
    this.client = this.connect();
    stale.dispose().catch(() => {});
    return true;
  }

  /** The position of the newest record in `$all` (system events included), null on an empty log. */
  private async logHead(): Promise<string | null> {
    const [last] = await this.readAllPage({ fromPosition: END, direction: BACKWARDS, maxCount: 1 });
    return last?.position ? positionToString(last.position) : null;
  }

  /** One bounded page of `$all`: the server ends the call after `maxCount` events, so nothing stays open. */
  private async readAllPage(options: {
    fromPosition: ReadPosition;
    direction: Direction;
    maxCount: number;
  }): Promise<AllStreamRecordedEvent[]> {
    const events: AllStreamRecordedEvent[] = [];
    try {
      for await (const resolved of ignoreLateErrors(this.client.readAll(options))) {
        if (resolved.event) events.push(resolved.event);
      }
    } catch (error) {
      throw toPortError(error);
    }
    return events;
  }

  /**
   * The events after `from` (exclusive) under the prefix (else every non-system stream), in log
   * order, until `visit` returns false or the head of the log as it was when the read began: a
   * filtered subscription, so the server does the filtering and sends only what matches (and a
   * checkpoint per 32,000 events it passed over). It ends at `caughtUp`, or at an event or
   * checkpoint at or past the head (servers before 23.10 send no `caughtUp` but a checkpoint on
   * going live).
   */
  private async scanFiltered(
    from: string | null,
    streamPrefix: string | undefined,
    visit: (event: RecordedEvent) => boolean,
  ): Promise<void> {
    // Once the server has shown it sends caughtUp (23.10+), that alone ends a read: one call, not two.
    const head = this.sendsCaughtUp ? undefined : await this.logHead();
    if (head === null || (head !== undefined && from !== null && comparePositions(from, head) >= 0)) return;
    const pastHead = (position: string) => head !== undefined && comparePositions(position, head) >= 0;
    const subscription = this.client.subscribeToAll({
      fromPosition: toReadPosition(from),
      filter: subscriptionFilter(streamPrefix, READ_CHECKPOINT_MULTIPLIER),
    });
    ignoreLateErrors(subscription);
    subscription.on('caughtUp', () => {
      if (!subscription.destroyed) subscription.push(new CaughtUpReached());
    });
    const watchdog = new LivenessWatchdog(this.pingTimeoutMs, () => {
      // A server that stopped sending caughtUp (a downgrade) gets the head lookup again on the next read.
      this.sendsCaughtUp = false;
      subscription.destroy(
        new EventStoreUnavailable(`EventStoreDB sent nothing for ${this.pingTimeoutMs} ms during a read`),
      );
    });
    try {
      for await (const item of subscription as AsyncIterable<
        AllStreamResolvedEvent | CheckpointReached | CaughtUpReached
      >) {
        watchdog.heard();
        if (item instanceof CaughtUpReached) {
          this.sendsCaughtUp = true;
          return;
        }
        if (item instanceof CheckpointReached) {
          if (isTrustedPosition(item.position) && pastHead(item.position)) return;
          continue;
        }
        const event = item.event;
        if (!event) continue;
        if (isWanted(event.streamId, event.type, streamPrefix) && !visit(toRecordedEvent(event))) return;
        if (pastHead(positionToString(event.position))) return;
      }
      throw new EventStoreUnavailable('EventStoreDB ended a read before the head of the log');
    } catch (error) {
      throw toPortError(error);
    } finally {
      watchdog.stop();
      subscription.unsubscribe().catch(() => {});
      subscription.destroy();
    }
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
        const delayMs = resubscribeDelay(failures++);
        this.logger?.warn(
          { err: end.error, reason: end.reason, resumeAfter: cursor.position, delayMs, streamPrefix },
          'EventStoreDB subscription dropped; resubscribing',
        );
        await sleep(delayMs, stop.signal);
        // A checkpoint beyond the head of the log is a server bug: resume after the last event instead.
        if (cursor.aheadOfDelivered) cursor.distrustBeyond(await this.logHead().catch(() => null));
      }
    } finally {
      stop.release();
    }
  }

  /**
   * One server subscription from the cursor (exclusive, as the server treats a catch-up start
   * position), until it fails, ends, goes dead or `stop` aborts. Events at or before the last
   * delivered one are dropped, so a resubscription never repeats one; a silence is asked about
   * with a ping, and only a failed ping ends the subscription (a quiet log is not a fault, with or
   * without `caughtUp`, which servers before 23.10 never send).
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
      this.ping().then(
        () => watchdog.rearm(),
        (error: unknown) =>
          subscription.destroy(
            new SubscriptionStalled(
              `no word from the server for ${this.livenessTimeoutMs} ms and no answer to a ping`,
              {
                cause: error,
              },
            ),
          ),
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
          if (!isTrustedPosition(item.position))
            this.logger?.warn(
              { checkpoint: item.position, streamPrefix },
              'EventStoreDB sent an impossible checkpoint; ignored',
            );
          else cursor.checkpoint(item.position);
          continue;
        }
        const event = item.event;
        if (!event) continue;
        if (!cursor.deliver(positionToString(event.position))) continue;
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
function subscriptionFilter(streamPrefix: string | undefined, checkpointInterval = 1): Filter {
  const checkpointReached = (subscription: AllStreamSubscription, position: Position) => {
    if (!subscription.destroyed) subscription.push(new CheckpointReached(positionToString(position)));
  };
  return streamPrefix
    ? streamNameFilter({ prefixes: [streamPrefix], checkpointReached, checkpointInterval })
    : streamNameFilter({ regex: '^[^$]', checkpointReached, checkpointInterval });
}

/** KDB-710 sends (2^64-1, 2^64-1): no real log reaches 2^63. */
function isTrustedPosition(position: string): boolean {
  return parsePosition(position).every((part) => part < UNTRUSTED_POSITION_PART);
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
