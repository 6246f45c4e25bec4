/**
 * An in-process server that speaks EventStoreDB's gRPC protocol (Streams, ServerFeatures) to the
 * real `@eventstore/db-client`, over a loopback port, with switches that inject the faults a real
 * node shows. What it models and what it does not: README, "EventStoreDB test server".
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type {
  AppendReq,
  AppendResp,
  BatchAppendReq,
  BatchAppendResp,
  ReadReq,
  ReadResp,
} from '@eventstore/db-client/generated/streams_pb.js';
import {
  EventLog,
  MAX_U64,
  comparePosition,
  matches,
  type EventFilter,
  type Expected,
  type Position,
  type ProposedEvent,
  type StoredEvent,
} from './log.ts';
import {
  anyPb,
  emptyPb,
  featuresGrpc,
  featuresPb,
  sharedPb,
  statusPb,
  streamsGrpc,
  streamsPb,
} from './protocol.ts';

export { EventLog, MAX_U64, type Position, type StoredEvent } from './log.ts';

/** What the server does wrong on purpose; every switch is off on a fresh server. */
export interface Faults {
  /** Every call answers UNAVAILABLE "Server Is Not Ready", as a node that is starting or lost quorum. */
  unavailable: boolean;
  /** BatchAppend answers this many writes with the in-band "Server Is Not Ready" error. */
  batchAppendNotReady: number;
  /** GetSupportedMethods fails this many times with this status. */
  featuresFailures: { count: number; code: grpc.status };
  /** No `caughtUp` message, as servers before 23.10. */
  noCaughtUp: boolean;
  /** KDB-710: a checkpoint at (2^64-1, 2^64-1) when a filtered subscription from the start has matched nothing yet. */
  maxCheckpointAtStart: boolean;
  /** An extra checkpoint on going live, this far beyond the last event (releases before 23.10). */
  checkpointBeyondLive: bigint | null;
}

export interface CallRecord {
  method: 'read-stream' | 'read-all' | 'subscribe-all' | 'append' | 'batch-append' | 'features';
  requiresLeader: boolean;
}

export interface EventStoreDbTestServer {
  /** `esdb://127.0.0.1:<port>?tls=false` */
  readonly url: string;
  readonly port: number;
  readonly log: EventLog;
  readonly faults: Faults;
  /** Every call received, in order (for tests that check what the client asked for). */
  readonly calls: CallRecord[];
  /** Subscriptions open right now. */
  readonly openSubscriptions: number;
  /** Events sent to clients so far, over every read and subscription (what a read cost on the wire). */
  readonly eventsSent: number;
  /**
   * Reads that do not ask for the leader are answered by a follower that stops applying the log
   * here (until `followerCatchUp`), as a follower does while it lags or after a failover.
   */
  followerLag(): void;
  followerCatchUp(): void;
  /** Ends every open subscription with this status, as a node that drops its subscribers. */
  dropSubscriptions(code?: grpc.status): void;
  /** Turns every fault off again, as on a fresh server (for an afterEach). */
  resetFaults(): void;
  close(): Promise<void>;
}

const DEFAULT_MAX_SEARCH_WINDOW = 32;
const SERVER_VERSION = '24.10.0';

type ServerError = Partial<grpc.StatusObject> & { code: grpc.status };

function statusError(code: grpc.status, details: string): ServerError {
  return { code, details, metadata: new grpc.Metadata() };
}

const notReady = () => statusError(grpc.status.UNAVAILABLE, 'Server Is Not Ready');

export interface TestServerOptions {
  port?: number;
  /** Serve TLS with this key and certificate (PEM) instead of plain text. */
  tls?: { key: Buffer; cert: Buffer };
}

export async function startEventStoreDbTestServer(
  options: TestServerOptions = {},
): Promise<EventStoreDbTestServer> {
  const log = new EventLog();
  const noFaults = (): Faults => ({
    unavailable: false,
    batchAppendNotReady: 0,
    featuresFailures: { count: 0, code: grpc.status.INTERNAL },
    noCaughtUp: false,
    maxCheckpointAtStart: false,
    checkpointBeyondLive: null,
  });
  const faults = noFaults();
  const calls: CallRecord[] = [];
  const counters = { eventsSent: 0 };
  const sendEvent = (
    call: grpc.ServerWritableStream<ReadReq, ReadResp>,
    event: StoredEvent,
    withPosition: boolean,
  ) => {
    counters.eventsSent++;
    return send(call, eventMessage(event, withPosition));
  };
  const subscriptions = new Set<grpc.ServerWritableStream<ReadReq, ReadResp>>();
  let followerHead: Position | null = null;

  const record = (method: CallRecord['method'], metadata: grpc.Metadata) =>
    calls.push({ method, requiresLeader: metadata.get('requires-leader')[0] === 'true' });
  /** What a read sees: the leader's log, or the lagging follower's. */
  const visibleHead = (metadata: grpc.Metadata): Position | null =>
    metadata.get('requires-leader')[0] === 'true' ? null : followerHead;

  const server = new grpc.Server();

  server.addService(featuresGrpc.ServerFeaturesService, {
    getSupportedMethods(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      record('features', call.metadata);
      if (faults.unavailable) return callback(notReady());
      if (faults.featuresFailures.count > 0) {
        faults.featuresFailures.count--;
        return callback(statusError(faults.featuresFailures.code, 'features failed (test fault)'));
      }
      const methods = (['read', 'append', 'batchappend', 'delete', 'tombstone'] as const).map((name) => {
        const method = new featuresPb.SupportedMethod();
        method.setServiceName('event_store.client.streams.streams');
        method.setMethodName(name);
        // Features as src/EventStore.Core/Services/Transport/Grpc/ServerFeatures.cs:38-42 lists them.
        if (name === 'read') method.setFeaturesList(['position', 'events']);
        if (name === 'batchappend') method.setFeaturesList(['deadline_duration']);
        return method;
      });
      const answer = new featuresPb.SupportedMethods();
      answer.setMethodsList(methods);
      answer.setEventStoreServerVersion(SERVER_VERSION);
      callback(null, answer);
    },
  });

  server.addService(streamsGrpc.StreamsService, {
    read(call: grpc.ServerWritableStream<ReadReq, ReadResp>) {
      const opts = call.request.getOptions();
      if (!opts) return call.emit('error', statusError(grpc.status.INVALID_ARGUMENT, 'no options'));
      const subscription = opts.hasSubscription();
      const all = opts.hasAll();
      record(all ? (subscription ? 'subscribe-all' : 'read-all') : 'read-stream', call.metadata);
      if (faults.unavailable) return call.emit('error', notReady());
      const run = all
        ? subscription
          ? subscribeAll(call, opts)
          : readAll(call, opts, visibleHead(call.metadata))
        : readStream(call, opts, visibleHead(call.metadata));
      run.catch((error: unknown) => {
        if (!call.cancelled) call.emit('error', statusError(grpc.status.INTERNAL, String(error)));
      });
    },

    append(call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>) {
      record('append', call.metadata);
      let options: AppendReq.Options | undefined;
      const proposed: ProposedEvent[] = [];
      call.on('data', (request: AppendReq) => {
        if (request.hasOptions()) options = request.getOptions();
        const message = request.getProposedMessage();
        if (message) proposed.push(toProposed(message));
      });
      call.on('end', () => {
        if (faults.unavailable) return callback(notReady());
        if (!options) return callback(statusError(grpc.status.INVALID_ARGUMENT, 'no options'));
        const stream = streamName(options.getStreamIdentifier());
        const expected: Expected = options.hasRevision()
          ? BigInt(options.getRevision())
          : options.hasNoStream()
            ? 'no_stream'
            : options.hasStreamExists()
              ? 'stream_exists'
              : 'any';
        const outcome = log.append(stream, proposed, expected);
        const answer = new streamsPb.AppendResp();
        if (outcome.kind === 'wrong_expected_version') {
          const wrong = new streamsPb.AppendResp.WrongExpectedVersion();
          if (outcome.current === 'no_stream') wrong.setCurrentNoStream(new sharedPb.Empty());
          else wrong.setCurrentRevision(outcome.current.toString());
          if (typeof expected === 'bigint') wrong.setExpectedRevision(expected.toString());
          else if (expected === 'no_stream') wrong.setExpectedNoStream(new sharedPb.Empty());
          else if (expected === 'stream_exists') wrong.setExpectedStreamExists(new sharedPb.Empty());
          else wrong.setExpectedAny(new sharedPb.Empty());
          answer.setWrongExpectedVersion(wrong);
        } else {
          const success = new streamsPb.AppendResp.Success();
          success.setCurrentRevision(outcome.revision.toString());
          if (outcome.kind === 'written') {
            const position = new streamsPb.AppendResp.Position();
            position.setCommitPosition(outcome.position.commit.toString());
            position.setPreparePosition(outcome.position.prepare.toString());
            success.setPosition(position);
          } else success.setNoPosition(new sharedPb.Empty());
          answer.setSuccess(success);
        }
        callback(null, answer);
      });
    },

    batchAppend(call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) {
      record('batch-append', call.metadata);
      if (faults.unavailable) return call.emit('error', notReady());
      const pending = new Map<
        string,
        { options: BatchAppendReq.Options | undefined; events: ProposedEvent[] }
      >();
      call.on('data', (request: BatchAppendReq) => {
        const correlation = request.getCorrelationId();
        const key = correlation?.getString() ?? '';
        const entry = pending.get(key) ?? { options: undefined, events: [] };
        pending.set(key, entry);
        if (request.hasOptions()) entry.options = request.getOptions();
        for (const message of request.getProposedMessagesList()) entry.events.push(toProposed(message));
        if (!request.getIsFinal()) return;
        pending.delete(key);
        const answer = new streamsPb.BatchAppendResp();
        answer.setCorrelationId(correlation);
        const identifier = entry.options?.getStreamIdentifier();
        answer.setStreamIdentifier(identifier);
        if (faults.batchAppendNotReady > 0 || faults.unavailable) {
          if (faults.batchAppendNotReady > 0) faults.batchAppendNotReady--;
          // An in-band error with an empty detail and no code: Streams.BatchAppend.cs:224-229.
          answer.setError(
            inBandError(
              0,
              'Server Is Not Ready',
              'google.protobuf.Empty',
              new emptyPb.Empty().serializeBinary(),
            ),
          );
          call.write(answer);
          return;
        }
        const options = entry.options;
        if (!options) return;
        const expected: Expected = options.hasStreamPosition()
          ? BigInt(options.getStreamPosition())
          : options.hasNoStream()
            ? 'no_stream'
            : options.hasStreamExists()
              ? 'stream_exists'
              : 'any';
        const outcome = log.append(streamName(identifier), entry.events, expected);
        if (outcome.kind === 'wrong_expected_version') {
          const wrong = new sharedPb.WrongExpectedVersion();
          if (outcome.current === 'no_stream') wrong.setCurrentNoStream(new emptyPb.Empty() as never);
          else wrong.setCurrentStreamRevision(outcome.current.toString());
          if (typeof expected === 'bigint') wrong.setExpectedStreamPosition(expected.toString());
          else if (expected === 'no_stream') wrong.setExpectedNoStream(new emptyPb.Empty() as never);
          else if (expected === 'stream_exists') wrong.setExpectedStreamExists(new emptyPb.Empty() as never);
          else wrong.setExpectedAny(new emptyPb.Empty() as never);
          // Status.WrongExpectedVersion in src/EventStore.Core/Services/Transport/Grpc/Status.cs: ALREADY_EXISTS.
          answer.setError(
            inBandError(
              grpc.status.ALREADY_EXISTS,
              'WrongExpectedVersion',
              'event_store.client.WrongExpectedVersion',
              wrong.serializeBinary(),
            ),
          );
        } else {
          const success = new streamsPb.BatchAppendResp.Success();
          success.setCurrentRevision(outcome.revision.toString());
          if (outcome.kind === 'written') {
            const position = new sharedPb.AllStreamPosition();
            position.setCommitPosition(outcome.position.commit.toString());
            position.setPreparePosition(outcome.position.prepare.toString());
            success.setPosition(position);
          } else success.setNoPosition(new emptyPb.Empty() as never);
          answer.setSuccess(success);
        }
        call.write(answer);
      });
      call.on('end', () => call.end());
    },

    delete(_call: unknown, callback: grpc.sendUnaryData<unknown>) {
      callback(statusError(grpc.status.UNIMPLEMENTED, 'delete is not modelled'));
    },
    tombstone(_call: unknown, callback: grpc.sendUnaryData<unknown>) {
      callback(statusError(grpc.status.UNIMPLEMENTED, 'tombstone is not modelled'));
    },
  });

  async function readStream(
    call: grpc.ServerWritableStream<ReadReq, ReadResp>,
    opts: ReadReq.Options,
    head: Position | null,
  ) {
    const streamOptions = opts.getStream()!;
    const name = streamName(streamOptions.getStreamIdentifier());
    const visible = (log.stream(name) ?? []).filter(
      (event) => !head || comparePosition(event.position, head) < 0,
    );
    if (visible.length === 0) {
      const notFound = new streamsPb.ReadResp.StreamNotFound();
      notFound.setStreamIdentifier(streamOptions.getStreamIdentifier());
      const answer = new streamsPb.ReadResp();
      answer.setStreamNotFound(notFound);
      await send(call, answer);
      return call.end();
    }
    const backwards = opts.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.BACKWARDS;
    const count = Number(
      BigInt(opts.getCount()) > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : opts.getCount(),
    );
    const last = visible.length - 1;
    const from = streamOptions.hasRevision()
      ? Number(
          BigInt(streamOptions.getRevision()) > BigInt(last + 1)
            ? BigInt(last + 1)
            : BigInt(streamOptions.getRevision()),
        )
      : streamOptions.hasEnd()
        ? last
        : 0;
    const page = backwards
      ? visible
          .slice(0, Math.min(from, last) + 1)
          .reverse()
          .slice(0, count)
      : visible.slice(from, from + count);
    for (const event of page) await sendEvent(call, event, false);
    call.end();
  }

  async function readAll(
    call: grpc.ServerWritableStream<ReadReq, ReadResp>,
    opts: ReadReq.Options,
    head: Position | null,
  ) {
    const allOptions = opts.getAll()!;
    const from = allOptions.hasPosition()
      ? readPosition(allOptions.getPosition()!)
      : allOptions.hasEnd()
        ? log.head
        : null;
    if (from && !log.isValidPosition(from)) {
      // RpcExceptions.InvalidPositionException (src/EventStore.Core/Services/Transport/Grpc/RpcExceptions.cs:260).
      return call.emit(
        'error',
        statusError(grpc.status.INVALID_ARGUMENT, 'Trying to read from an invalid position.'),
      );
    }
    const filter = opts.hasFilter() ? toFilter(opts.getFilter()!) : null;
    const backwards = opts.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.BACKWARDS;
    const count = BigInt(opts.getCount());
    const visibleEnd = head ? log.firstAtOrAfter(head) : log.events.length;
    let sent = 0n;
    // Forwards is inclusive of `from`, backwards exclusive (ReadAllEventsForward/Backward in the storage reader).
    if (backwards) {
      for (
        let i = Math.min(from ? log.firstAtOrAfter(from) : visibleEnd, visibleEnd) - 1;
        i >= 0 && sent < count;
        i--
      ) {
        const event = log.events[i]!;
        if (!matches(filter, event)) continue;
        await sendEvent(call, event, true);
        sent++;
      }
    } else {
      for (let i = from ? log.firstAtOrAfter(from) : 0; i < visibleEnd && sent < count; i++) {
        const event = log.events[i]!;
        if (!matches(filter, event)) continue;
        await sendEvent(call, event, true);
        sent++;
      }
    }
    // The end of the log (or of `count`) ends the call at once, whatever the client has not read yet
    // (src/EventStore.Core/Services/Transport/Enumerators/Enumerator.ReadAllForwards.cs:101-113).
    call.end();
  }

  /**
   * Catch up from the start position (exclusive), then live. A filtered subscription sends a
   * checkpoint every `checkpointIntervalMultiplier × maxSearchWindow` events it considered
   * (Enumerator.AllSubscriptionFiltered.cs:67), matched or not; `caughtUp` when it reaches the end.
   */
  async function subscribeAll(call: grpc.ServerWritableStream<ReadReq, ReadResp>, opts: ReadReq.Options) {
    const allOptions = opts.getAll()!;
    const fromStart = allOptions.hasStart();
    const from = allOptions.hasPosition()
      ? readPosition(allOptions.getPosition()!)
      : allOptions.hasEnd()
        ? log.head
        : null;
    if (from && !log.isValidPosition(from)) {
      return call.emit(
        'error',
        statusError(grpc.status.INVALID_ARGUMENT, 'Trying to read from an invalid position.'),
      );
    }
    const filterOptions = opts.hasFilter() ? opts.getFilter()! : null;
    const filter = filterOptions ? toFilter(filterOptions) : null;
    const window = filterOptions?.hasMax() ? filterOptions.getMax() : DEFAULT_MAX_SEARCH_WINDOW;
    const interval = filterOptions
      ? Math.max(1, filterOptions.getCheckpointintervalmultiplier()) * window
      : 0;

    subscriptions.add(call);
    let wake: (() => void) | null = null;
    const stopListening = log.onAppend(() => wake?.());
    const ended = () => call.cancelled || call.destroyed || !subscriptions.has(call);
    call.on('cancelled', () => wake?.());
    try {
      const confirmation = new streamsPb.ReadResp.SubscriptionConfirmation();
      confirmation.setSubscriptionId(randomUUID());
      const confirm = new streamsPb.ReadResp();
      confirm.setConfirmation(confirmation);
      await send(call, confirm);

      let next = from ? log.firstAfter(from) : 0;
      let considered = 0;
      let matched = 0;
      let live = false;
      while (!ended()) {
        if (next < log.events.length) {
          const event = log.events[next++]!;
          considered++;
          if (matches(filter, event)) {
            matched++;
            await sendEvent(call, event, true);
          }
          if (interval > 0 && considered % interval === 0)
            await send(call, checkpointMessage(event.position));
          continue;
        }
        if (!live) {
          live = true;
          if (filter && fromStart && matched === 0 && faults.maxCheckpointAtStart)
            await send(call, checkpointMessage({ commit: MAX_U64, prepare: MAX_U64 }));
          if (filter && faults.checkpointBeyondLive !== null) {
            const beyond = log.head.commit + faults.checkpointBeyondLive;
            await send(call, checkpointMessage({ commit: beyond, prepare: beyond }));
          }
          if (!faults.noCaughtUp) {
            const caughtUp = new streamsPb.ReadResp();
            caughtUp.setCaughtUp(new streamsPb.ReadResp.CaughtUp());
            await send(call, caughtUp);
          }
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (next < log.events.length || ended()) resolve();
        });
        wake = null;
      }
    } finally {
      stopListening();
      subscriptions.delete(call);
    }
  }

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `127.0.0.1:${options.port ?? 0}`,
      options.tls
        ? grpc.ServerCredentials.createSsl(null, [
            { private_key: options.tls.key, cert_chain: options.tls.cert },
          ])
        : grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );

  return {
    url: `esdb://127.0.0.1:${port}?tls=${options.tls ? 'true' : 'false'}`,
    port,
    log,
    faults,
    calls,
    resetFaults: () => Object.assign(faults, noFaults()),
    get openSubscriptions() {
      return subscriptions.size;
    },
    get eventsSent() {
      return counters.eventsSent;
    },
    followerLag() {
      followerHead = log.head;
    },
    followerCatchUp() {
      followerHead = null;
    },
    dropSubscriptions(code = grpc.status.UNAVAILABLE) {
      for (const call of [...subscriptions]) {
        subscriptions.delete(call);
        call.emit('error', statusError(code, 'subscription dropped (test fault)'));
      }
    },
    async close() {
      for (const call of subscriptions)
        call.emit('error', statusError(grpc.status.UNAVAILABLE, 'server shutting down'));
      subscriptions.clear();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      server.forceShutdown();
    },
  };
}

/** Writes one message, waiting while the client's window is full (flow control). */
async function send(call: grpc.ServerWritableStream<ReadReq, ReadResp>, message: ReadResp): Promise<void> {
  if (call.cancelled || call.destroyed) return;
  if (call.write(message)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      call.off('drain', done).off('cancelled', done).off('close', done);
      resolve();
    };
    call.on('drain', done).on('cancelled', done).on('close', done);
  });
}

function streamName(identifier: { getStreamName_asU8(): Uint8Array } | undefined): string {
  return identifier ? Buffer.from(identifier.getStreamName_asU8()).toString('utf8') : '';
}

function readPosition(position: ReadReq.Options.Position): Position {
  return { commit: BigInt(position.getCommitPosition()), prepare: BigInt(position.getPreparePosition()) };
}

function toProposed(message: AppendReq.ProposedMessage | BatchAppendReq.ProposedMessage): ProposedEvent {
  const metadata = message.getMetadataMap();
  return {
    eventId: message.getId()?.getString() ?? randomUUID(),
    type: metadata.get('type') ?? '',
    contentType: metadata.get('content-type') ?? 'application/octet-stream',
    data: message.getData_asU8(),
    metadata: message.getCustomMetadata_asU8(),
  };
}

function toFilter(options: ReadReq.Options.FilterOptions): EventFilter {
  const onType = options.hasEventType();
  const expression = onType ? options.getEventType()! : options.getStreamIdentifier()!;
  const regex = expression.getRegex();
  return {
    on: onType ? 'type' : 'stream',
    prefixes: expression.getPrefixList(),
    regex: regex ? new RegExp(regex) : null,
  };
}

function eventMessage(event: StoredEvent, withPosition: boolean): ReadResp {
  const recorded = new streamsPb.ReadResp.ReadEvent.RecordedEvent();
  const id = new sharedPb.UUID();
  id.setString(event.eventId);
  recorded.setId(id);
  const identifier = new sharedPb.StreamIdentifier();
  identifier.setStreamName(Buffer.from(event.stream, 'utf8'));
  recorded.setStreamIdentifier(identifier);
  recorded.setStreamRevision(event.revision.toString());
  recorded.setCommitPosition(event.position.commit.toString());
  recorded.setPreparePosition(event.position.prepare.toString());
  recorded.getMetadataMap().set('type', event.type);
  recorded.getMetadataMap().set('content-type', event.contentType);
  recorded.getMetadataMap().set('created', event.created.toString());
  recorded.setCustomMetadata(event.metadata);
  recorded.setData(event.data);
  const readEvent = new streamsPb.ReadResp.ReadEvent();
  readEvent.setEvent(recorded);
  if (withPosition) readEvent.setCommitPosition(event.position.commit.toString());
  else readEvent.setNoPosition(new sharedPb.Empty());
  const answer = new streamsPb.ReadResp();
  answer.setEvent(readEvent);
  return answer;
}

function checkpointMessage(position: Position): ReadResp {
  const checkpoint = new streamsPb.ReadResp.Checkpoint();
  checkpoint.setCommitPosition(position.commit.toString());
  checkpoint.setPreparePosition(position.prepare.toString());
  const answer = new streamsPb.ReadResp();
  answer.setCheckpoint(checkpoint);
  return answer;
}

function inBandError(code: number, message: string, typeName: string, detail: Uint8Array) {
  const status = new statusPb.Status();
  status.setCode(code);
  status.setMessage(message);
  const details = new anyPb.Any();
  details.pack(detail, typeName);
  status.setDetails(details as never);
  return status;
}
