import { randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import {
  ANY,
  AccessDeniedError,
  CancelledError,
  DeadlineExceededError,
  NO_STREAM,
  NotLeaderError,
  START,
  StreamNotFoundError,
  TimeoutError,
  UnavailableError,
  UnknownError,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type EventStoreDBClient,
  type SubscribeToAllOptions,
} from '@eventstore/db-client';
// The client's own subscription stream, fed by a fake gRPC call: the loop is tested against the real
// transform (checkpoint callback, error forwarding, unsubscribe) without a server.
import { Subscription } from '@eventstore/db-client/dist/streams/utils/Subscription.js';
import { describe, expect, it, vi } from 'vitest';
import { EventStoreDbEventStore } from '../../src/eventstore/eventstoredb/index.ts';
import {
  EventDecodingError,
  isAfter,
  isPermanentError,
  isStreamNotFound,
  isSystemEvent,
  isWanted,
  positionToString,
  toActualVersion,
  toAppendError,
  toExpectedRevision,
  toPortError,
  toReadPosition,
  toRecordedEvent,
} from '../../src/eventstore/eventstoredb/mapping.ts';
import {
  LivenessWatchdog,
  MAX_RETRY_MS,
  ResumeCursor,
  resubscribeDelay,
} from '../../src/eventstore/eventstoredb/resubscribe.ts';
import {
  EventStoreUnavailable,
  WrongExpectedVersion,
  type RecordedEvent,
} from '../../src/eventstore/port.ts';

const ABOVE_2_53 = 2n ** 53n + 1n;
const MAX_U64 = 2n ** 64n - 1n;

/** A gRPC failure as grpc-js reports it, before the client types it. */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

describe('expected versions', () => {
  it('maps the port expectation to the client revision', () => {
    expect(toExpectedRevision('no_stream')).toBe(NO_STREAM);
    expect(toExpectedRevision('any')).toBe(ANY);
    expect(toExpectedRevision(0)).toBe(0n);
    expect(toExpectedRevision(Number.MAX_SAFE_INTEGER)).toBe(BigInt(Number.MAX_SAFE_INTEGER));
  });

  it('refuses what is not a stream version', () => {
    expect(() => toExpectedRevision(-1)).toThrow(RangeError);
    expect(() => toExpectedRevision(1.5)).toThrow(RangeError);
  });

  it('reads the actual version the server reports', () => {
    expect(toActualVersion('no_stream')).toBe('no_stream');
    expect(toActualVersion(0n)).toBe(0);
    expect(toActualVersion(41n)).toBe(41);
    expect(toActualVersion(-1n)).toBe('no_stream');
  });
});

describe('positions', () => {
  it('carries commit and prepare as exact decimal strings, above 2^53 too', () => {
    expect(positionToString({ commit: 0n, prepare: 0n })).toBe('0-0');
    expect(positionToString({ commit: MAX_U64, prepare: ABOVE_2_53 })).toBe(
      '18446744073709551615-9007199254740993',
    );
  });

  it('turns a port position back into the client position without losing digits', () => {
    expect(toReadPosition(null)).toBe(START);
    expect(toReadPosition('18446744073709551615-9007199254740993')).toEqual({
      commit: MAX_U64,
      prepare: ABOVE_2_53,
    });
  });

  it('treats fromPosition as exclusive', () => {
    expect(isAfter('5-5', null)).toBe(true);
    expect(isAfter('5-5', '5-5')).toBe(false);
    expect(isAfter('5-4', '5-5')).toBe(false);
    expect(isAfter('5-6', '5-5')).toBe(true);
    expect(isAfter(`${ABOVE_2_53}-0`, `${ABOVE_2_53 - 1n}-99`)).toBe(true);
  });
});

describe('system events and prefixes', () => {
  it('knows a system event by its stream or its type', () => {
    expect(isSystemEvent('$stats-127.0.0.1:2113', 'StatsCollected')).toBe(true);
    expect(isSystemEvent('incident-acme.inc_1', '$metadata')).toBe(true);
    expect(isSystemEvent('incident-acme.inc_1', 'INCIDENT_CREATED')).toBe(false);
  });

  it('keeps only the streams under the prefix', () => {
    expect(isWanted('incident-acme.inc_1', 'INCIDENT_CREATED', 'incident-acme.')).toBe(true);
    expect(isWanted('incident-acme2.inc_1', 'INCIDENT_CREATED', 'incident-acme.')).toBe(false);
    expect(isWanted('incident-acme.inc_1', 'INCIDENT_CREATED', undefined)).toBe(true);
    expect(isWanted('$ce-incident', '$>', undefined)).toBe(false);
  });
});

describe('recorded events', () => {
  const created = new Date('2024-05-06T07:08:09.123Z');
  const base = {
    streamId: 'incident-acme.inc_1',
    id: '0190b3c4-0000-7000-8000-000000000001',
    isJson: true as const,
    revision: 3n,
    type: 'INCIDENT_NOTE_ADDED',
    created,
    data: { label: 'note' } as Record<string, unknown>,
    metadata: { schemaVersion: 1 } as Record<string, unknown> | undefined,
    position: { commit: MAX_U64 - 1n, prepare: ABOVE_2_53 },
  };

  it('maps every field, the position without loss', () => {
    expect(toRecordedEvent(base)).toEqual<RecordedEvent>({
      eventId: base.id,
      type: 'INCIDENT_NOTE_ADDED',
      streamName: 'incident-acme.inc_1',
      version: 3,
      position: '18446744073709551614-9007199254740993',
      createdAt: '2024-05-06T07:08:09.123Z',
      data: { label: 'note' },
      metadata: { schemaVersion: 1 },
    });
  });

  it('reads absent metadata as an empty object', () => {
    expect(toRecordedEvent({ ...base, metadata: undefined }).metadata).toEqual({});
  });

  it('refuses data or metadata that is not a JSON object, and an event without a position', () => {
    expect(() =>
      toRecordedEvent({ ...base, data: 'not json {' as unknown as Record<string, unknown> }),
    ).toThrow(EventDecodingError);
    expect(() =>
      toRecordedEvent({ ...base, metadata: new Uint8Array([1, 2]) as unknown as Record<string, unknown> }),
    ).toThrow(EventDecodingError);
    expect(() =>
      toRecordedEvent({ ...base, position: undefined as unknown as typeof base.position }),
    ).toThrow(EventDecodingError);
  });

  it('refuses the positions that mean "none": the server’s 2^64-1 and the generated getters’ default 0', () => {
    for (const position of [
      { commit: MAX_U64, prepare: MAX_U64 },
      { commit: MAX_U64, prepare: 10n },
      { commit: 0n, prepare: 0n },
    ])
      expect(() => toRecordedEvent({ ...base, position }), JSON.stringify(String(position.commit))).toThrow(
        EventDecodingError,
      );
  });
});

describe('errors, mapped by type', () => {
  it('turns a wrong expected version into the port error with the actual version', () => {
    const error = new WrongExpectedVersionError(undefined, {
      streamName: 'incident-acme.inc_1',
      expected: 0n,
      current: 4n,
    });
    const mapped = toAppendError(error, 'incident-acme.inc_1', 0);
    expect(mapped).toBeInstanceOf(WrongExpectedVersion);
    expect(mapped).toMatchObject({ streamName: 'incident-acme.inc_1', expected: 0, actual: 4 });
  });

  it('reports a missing stream as no_stream', () => {
    const error = new WrongExpectedVersionError(undefined, {
      streamName: 's',
      expected: 3n,
      current: 'no_stream',
    });
    expect(toAppendError(error, 's', 3)).toMatchObject({ actual: 'no_stream' });
  });

  it('does not read the message', () => {
    const error = new WrongExpectedVersionError(undefined, {
      streamName: 's',
      expected: NO_STREAM,
      current: 0n,
    });
    error.message = 'Unavailable: something else entirely';
    expect(toAppendError(error, 's', 'no_stream')).toMatchObject({ actual: 0 });
    const unavailable = new UnavailableError(undefined, 'wrong expected version');
    expect(toAppendError(unavailable, 's', 'no_stream')).toBeInstanceOf(EventStoreUnavailable);
  });

  it('turns connection failures into EventStoreUnavailable, keeping the cause', () => {
    const notLeader = new NotLeaderError(
      Object.assign(grpcError(5, 'Leader info available'), {
        metadata: { getMap: () => ({ 'leader-endpoint-host': '10.0.0.2', 'leader-endpoint-port': '2113' }) },
      }) as unknown as ConstructorParameters<typeof NotLeaderError>[0],
    );
    for (const error of [
      new UnavailableError(),
      new DeadlineExceededError(),
      new TimeoutError(),
      new CancelledError(),
      notLeader,
    ]) {
      const mapped = toPortError(error);
      expect(mapped).toBeInstanceOf(EventStoreUnavailable);
      expect((mapped as EventStoreUnavailable).cause).toBe(error);
      expect(toAppendError(error, 's', 1)).toBeInstanceOf(EventStoreUnavailable);
    }
  });

  it('types a raw gRPC failure before mapping it', () => {
    expect(toPortError(grpcError(14, 'No connection established'))).toBeInstanceOf(EventStoreUnavailable);
    expect(toPortError(grpcError(4, 'Deadline exceeded'))).toBeInstanceOf(EventStoreUnavailable);
    expect(toPortError(grpcError(16, 'Unauthenticated'))).toBeInstanceOf(AccessDeniedError);
  });

  it('leaves other errors as they are', () => {
    const denied = new AccessDeniedError();
    expect(toPortError(denied)).toBe(denied);
    const unknown = new UnknownError();
    expect(toPortError(unknown)).toBe(unknown);
    const plain = new Error('boom');
    expect(toPortError(plain)).toBe(plain);
  });

  it('recognises a missing stream and the errors no retry can cure', () => {
    expect(isStreamNotFound(new StreamNotFoundError(undefined, 'incident-acme.inc_9'))).toBe(true);
    expect(isStreamNotFound(new UnavailableError())).toBe(false);
    expect(isPermanentError(new AccessDeniedError())).toBe(true);
    expect(isPermanentError(new EventDecodingError('bad'))).toBe(true);
    expect(isPermanentError(new UnavailableError())).toBe(false);
    expect(isPermanentError(new Error('Failed to discover after 10 attempts.'))).toBe(false);
  });
});

describe('resume cursor', () => {
  it('delivers only events after the last delivered one, and starts anywhere when it has none', () => {
    const cursor = new ResumeCursor(null);
    expect(cursor.deliver('10-10')).toBe(true);
    expect(cursor.deliver('10-10')).toBe(false);
    expect(cursor.deliver('9-12')).toBe(false);
    expect(cursor.deliver('10-11')).toBe(true);
    expect(cursor.position).toBe('10-11');
  });

  it('starts after the given position, exclusive', () => {
    const cursor = new ResumeCursor(`${ABOVE_2_53}-5`);
    expect(cursor.deliver(`${ABOVE_2_53}-5`)).toBe(false);
    expect(cursor.deliver(`${ABOVE_2_53}-6`)).toBe(true);
  });

  it('lets a checkpoint move where it resumes, never which events it delivers', () => {
    const cursor = new ResumeCursor(null);
    expect(cursor.checkpoint('500-500')).toBe(true);
    expect(cursor.position).toBe('500-500');
    expect(cursor.deliver('20-20')).toBe(true);
    expect(cursor.position).toBe('500-500');
    expect(cursor.delivered).toBe('20-20');
  });

  it('refuses a checkpoint no real log reaches (KDB-710 sends 2^64-1), and distrusts one beyond the head', () => {
    const cursor = new ResumeCursor('10-10');
    expect(cursor.checkpoint(`${MAX_U64}-${MAX_U64}`)).toBe(false);
    expect(cursor.checkpoint(`${2n ** 63n}-1`)).toBe(false);
    expect(cursor.position).toBe('10-10');
    expect(cursor.checkpoint('900-900')).toBe(true);
    expect(cursor.aheadOfDelivered).toBe(true);
    cursor.distrustBeyond('800-800');
    expect(cursor.position).toBe('10-10');
    expect(cursor.checkpoint('700-700')).toBe(true);
    cursor.distrustBeyond('800-800');
    expect(cursor.position).toBe('700-700');
  });
});

describe('resubscribe backoff', () => {
  it('doubles from 100 ms up to 5 s, jittered within the upper half', () => {
    expect(resubscribeDelay(0, () => 1)).toBe(100);
    expect(resubscribeDelay(0, () => 0)).toBe(50);
    expect(resubscribeDelay(1, () => 1)).toBe(200);
    expect(resubscribeDelay(5, () => 1)).toBe(3_200);
    expect(resubscribeDelay(6, () => 1)).toBe(MAX_RETRY_MS);
    expect(resubscribeDelay(50, () => 0)).toBe(MAX_RETRY_MS / 2);
    for (let failures = 0; failures < 12; failures++) {
      const delay = resubscribeDelay(failures);
      expect(delay).toBeGreaterThanOrEqual(50);
      expect(delay).toBeLessThanOrEqual(MAX_RETRY_MS);
    }
  });
});

describe('liveness watchdog', () => {
  it('fires once after the timeout, not while paused, and any word from the server resets it', () => {
    let now = 0;
    const onSilence = vi.fn();
    const watchdog = new LivenessWatchdog(1_000, onSilence, () => now);
    try {
      now = 900;
      watchdog.check();
      watchdog.heard();
      now = 1_800;
      watchdog.check();
      expect(onSilence).not.toHaveBeenCalled();
      watchdog.pause();
      now = 10_000;
      watchdog.check();
      expect(onSilence).not.toHaveBeenCalled();
      watchdog.resume();
      now = 10_999;
      watchdog.check();
      expect(onSilence).not.toHaveBeenCalled();
      now = 11_000;
      watchdog.check();
      watchdog.check();
      expect(onSilence).toHaveBeenCalledTimes(1);
    } finally {
      watchdog.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The resubscribe loop, against the client's real Subscription transform fed by a fake gRPC call.

/** Stands in for grpc-js's ClientReadableStream: messages in, `cancel()` like a client cancellation. */
class FakeGrpcRead extends PassThrough {
  cancelled = false;
  constructor() {
    super({ objectMode: true });
  }
  cancel(): void {
    this.cancelled = true;
    this.emit('error', grpcError(1, 'Cancelled on client'));
    this.destroy();
  }
}

const message = {
  confirmation: () => ({
    hasConfirmation: () => true,
    getConfirmation: () => ({ getSubscriptionId: () => 'sub-1' }),
  }),
  caughtUp: () => ({ hasCaughtUp: () => true }),
  checkpoint: (commit: bigint) => ({
    hasCheckpoint: () => true,
    getCheckpoint: () => ({
      getCommitPosition: () => commit.toString(),
      getPreparePosition: () => commit.toString(),
    }),
  }),
  event: (resolved: AllStreamResolvedEvent) => ({ hasEvent: () => true, getEvent: () => resolved }),
};

function stored(
  streamId: string,
  revision: number,
  commit: bigint,
  type = 'INCIDENT_NOTE_ADDED',
): AllStreamResolvedEvent {
  return {
    event: {
      streamId,
      id: randomUUID(),
      isJson: true,
      revision: BigInt(revision),
      type,
      created: new Date('2024-01-01T00:00:00.000Z'),
      data: { commit: commit.toString() },
      metadata: { schemaVersion: 1 },
      position: { commit, prepare: commit },
    },
  };
}

type Script = (grpc: FakeGrpcRead) => void;

/** A client whose nth `subscribeToAll` plays the nth script. */
class FakeClient {
  readonly calls: SubscribeToAllOptions[] = [];
  readonly reads: FakeGrpcRead[] = [];
  constructor(private readonly scripts: Script[]) {}

  subscribeToAll(options: SubscribeToAllOptions) {
    this.calls.push(options);
    const grpc = new FakeGrpcRead();
    this.reads.push(grpc);
    const script = this.scripts.shift();
    setImmediate(() => script?.(grpc));
    return new Subscription(
      async () => grpc as never,
      (resolved: unknown) => resolved as AllStreamResolvedEvent,
      {},
      options.filter?.checkpointReached,
    );
  }

  /** The newest event of the log, for the ping and the head lookup: a server that answers. */
  readAll() {
    const read = Readable.from([stored('$settings', 0, 1_000_000n, '$settings')]) as Readable & {
      cancel(): Promise<void>;
    };
    read.cancel = async () => {};
    return read;
  }

  async dispose(): Promise<void> {}
}

/** A client whose server answers subscriptions but not reads (a ping fails). */
class FakeClientWithoutReads extends FakeClient {
  override readAll(): never {
    throw new UnavailableError();
  }
}

function storeOn(client: FakeClient, options: { livenessTimeoutMs?: number } = {}) {
  const logger = { warn: vi.fn() };
  const store = new EventStoreDbEventStore(client as unknown as EventStoreDBClient, { logger, ...options });
  return { store, logger };
}

async function take(
  iterable: AsyncIterable<RecordedEvent>,
  count: number,
  signal?: AbortController,
): Promise<RecordedEvent[]> {
  const received: RecordedEvent[] = [];
  for await (const event of iterable) {
    received.push(event);
    if (received.length >= count) break;
  }
  signal?.abort();
  return received;
}

const later = (ms: number, action: () => void) => setTimeout(action, ms);
const streamA = 'incident-acme.inc_1';

describe('subscription loop', () => {
  it('asks for the prefix filter from the given position, or from the start', async () => {
    const client = new FakeClient([(g) => g.write(message.event(stored(streamA, 0, 20n)))]);
    const { store } = storeOn(client);
    await take(store.subscribe({ streamPrefix: 'incident-acme.', fromPosition: '10-10' }), 1);
    expect(client.calls[0]!.fromPosition).toEqual({ commit: 10n, prepare: 10n });
    expect(client.calls[0]!.filter).toMatchObject({ filterOn: 'streamName', prefixes: ['incident-acme.'] });

    const unfiltered = new FakeClient([(g) => g.write(message.event(stored(streamA, 0, 20n)))]);
    await take(storeOn(unfiltered).store.subscribe({}), 1);
    expect(unfiltered.calls[0]!.fromPosition).toBe(START);
    expect(unfiltered.calls[0]!.filter).toMatchObject({ filterOn: 'streamName', regex: '^[^$]' });
  });

  it('survives a drop: resumes after the last delivered event and never repeats one', async () => {
    const client = new FakeClient([
      (g) => {
        g.write(message.confirmation());
        g.write(message.event(stored(streamA, 0, 10n)));
        g.write(message.event(stored('$stats-node', 0, 15n, 'StatsCollected')));
        g.write(message.event(stored(streamA, 1, 20n)));
        later(30, () => g.emit('error', grpcError(14, 'Connection dropped')));
      },
      (g) => {
        // A server that resends what was already delivered must not cause a repeat.
        g.write(message.event(stored(streamA, 0, 10n)));
        g.write(message.event(stored(streamA, 1, 20n)));
        g.write(message.event(stored(streamA, 2, 30n)));
      },
    ]);
    const { store, logger } = storeOn(client);
    const events = await take(store.subscribe({ streamPrefix: 'incident-acme.' }), 3);
    expect(events.map((e) => [e.version, e.position])).toEqual([
      [0, '10-10'],
      [1, '20-20'],
      [2, '30-30'],
    ]);
    expect(client.calls).toHaveLength(2);
    expect(client.calls[1]!.fromPosition).toEqual({ commit: 20n, prepare: 20n });
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatchObject({ reason: 'failed', resumeAfter: '20-20' });
  });

  it('backs off while the server keeps failing, and starts afresh after a healthy run', async () => {
    const fail: Script = (g) => g.emit('error', grpcError(14, 'No connection established'));
    const client = new FakeClient([
      fail,
      fail,
      fail,
      (g) => {
        g.write(message.event(stored(streamA, 0, 10n)));
        later(20, () => g.emit('error', grpcError(14, 'Connection reset')));
      },
      (g) => g.write(message.event(stored(streamA, 1, 20n))),
    ]);
    const { store, logger } = storeOn(client);
    const events = await take(store.subscribe({}), 2);
    expect(events.map((e) => e.position)).toEqual(['10-10', '20-20']);
    const delays = logger.warn.mock.calls.map(([fields]) => (fields as { delayMs: number }).delayMs);
    expect(delays).toHaveLength(4);
    const ceilings = [100, 200, 400, 100];
    delays.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(ceilings[i]! / 2);
      expect(delay).toBeLessThanOrEqual(ceilings[i]!);
    });
  });

  it('resumes from a checkpoint once every event before it was handed over', async () => {
    const client = new FakeClient([
      (g) => {
        g.write(message.event(stored(streamA, 0, 10n)));
        g.write(message.checkpoint(500n));
        later(30, () => g.end()); // the server ends the call: unexpected, so resubscribe
      },
      (g) => g.write(message.event(stored(streamA, 1, 600n))),
    ]);
    const { store, logger } = storeOn(client);
    const events = await take(store.subscribe({ streamPrefix: 'incident-acme.' }), 2);
    expect(events.map((e) => e.position)).toEqual(['10-10', '600-600']);
    expect(client.calls[1]!.fromPosition).toEqual({ commit: 500n, prepare: 500n });
    expect(logger.warn.mock.calls[0]![0]).toMatchObject({ reason: 'ended' });
  });

  it('keeps a silent subscription while the server answers a ping, caught up or not; replaces it when the ping fails', async () => {
    for (const script of [
      (g: FakeGrpcRead) => {
        g.write(message.confirmation());
        g.write(message.caughtUp());
      },
      (g: FakeGrpcRead) => g.write(message.confirmation()),
    ]) {
      const idle = new FakeClient([script]);
      const quiet = storeOn(idle, { livenessTimeoutMs: 40 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      for await (const _ of quiet.store.subscribe({ signal: controller.signal })) break;
      expect(idle.calls).toHaveLength(1);
      expect(quiet.logger.warn).not.toHaveBeenCalled();
    }

    const stuck = new FakeClientWithoutReads([
      (g) => g.write(message.confirmation()),
      (g) => g.write(message.event(stored(streamA, 0, 10n))),
    ]);
    const loud = storeOn(stuck, { livenessTimeoutMs: 40 });
    await take(loud.store.subscribe({}), 1);
    expect(loud.logger.warn.mock.calls[0]![0]).toMatchObject({ reason: 'stalled' });
  });

  it('does not count a slow consumer as a silent server', async () => {
    const client = new FakeClient([
      (g) => {
        g.write(message.event(stored(streamA, 0, 10n)));
        later(120, () => g.write(message.event(stored(streamA, 1, 20n))));
      },
    ]);
    const { store } = storeOn(client, { livenessTimeoutMs: 200 });
    const received: string[] = [];
    for await (const event of store.subscribe({})) {
      received.push(event.position);
      if (received.length === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 300)); // holding the event longer than the timeout
    }
    expect(received).toEqual(['10-10', '20-20']);
    expect(client.calls).toHaveLength(1);
  });

  it('ends cleanly when the signal aborts, and cancels the call', async () => {
    const client = new FakeClient([(g) => g.write(message.confirmation())]);
    const { store } = storeOn(client);
    const controller = new AbortController();
    later(30, () => controller.abort());
    let seen = 0;
    for await (const _ of store.subscribe({ signal: controller.signal })) seen++;
    expect(seen).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.reads[0]!.cancelled).toBe(true);
    expect(client.calls).toHaveLength(1);
  });

  it('ends every subscription on close', async () => {
    const client = new FakeClient([(g) => g.write(message.confirmation())]);
    const { store } = storeOn(client);
    later(30, () => void store.close());
    let seen = 0;
    for await (const _ of store.subscribe({})) seen++;
    expect(seen).toBe(0);
  });

  it('gives up on an error no retry can cure', async () => {
    const client = new FakeClient([(g) => later(10, () => g.emit('error', new AccessDeniedError()))]);
    const { store } = storeOn(client);
    await expect(take(store.subscribe({}), 1)).rejects.toBeInstanceOf(AccessDeniedError);
    expect(client.calls).toHaveLength(1);
  });
});
