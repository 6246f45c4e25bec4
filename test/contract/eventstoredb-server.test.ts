/**
 * The test server's own behaviour, through the real `@eventstore/db-client`, pinned to what
 * EventStoreDB does (the source lines are cited in test/support/eventstoredb-server/).
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  ANY,
  BACKWARDS,
  END,
  ErrorType,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type Position,
} from '@eventstore/db-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_U64,
  startEventStoreDbTestServer,
  type EventStoreDbTestServer,
} from '../support/eventstoredb-server/index.ts';
import { sharedPb, streamsGrpc, streamsPb } from '../support/eventstoredb-server/protocol.ts';

const event = (data: Record<string, unknown> = {}, id = randomUUID()) =>
  jsonEvent({ id, type: 'TestEvent', data, metadata: { m: 1 } });

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

interface Observed {
  events: AllStreamResolvedEvent[];
  checkpoints: Position[];
  caughtUp: number;
}

/** Subscribes to $all and records what arrives until `done` says so or the timeout passes. */
async function observe(
  client: EventStoreDBClient,
  options: Parameters<EventStoreDBClient['subscribeToAll']>[0],
  done: (seen: Observed) => boolean,
  timeoutMs = 3_000,
): Promise<Observed> {
  const seen: Observed = { events: [], checkpoints: [], caughtUp: 0 };
  const filter = options?.filter
    ? {
        ...options.filter,
        checkpointReached: (_: unknown, position: Position) => void seen.checkpoints.push(position),
      }
    : undefined;
  const subscription = client.subscribeToAll({ ...options, ...(filter ? { filter } : {}) });
  subscription.on('caughtUp', () => seen.caughtUp++);
  const timer = setTimeout(() => subscription.destroy(), timeoutMs);
  try {
    const check = setInterval(() => done(seen) && subscription.destroy(), 10);
    try {
      for await (const resolved of subscription) {
        seen.events.push(resolved as AllStreamResolvedEvent);
        if (done(seen)) break;
      }
    } catch {
      // destroyed on purpose
    } finally {
      clearInterval(check);
    }
  } finally {
    clearTimeout(timer);
    await subscription.unsubscribe().catch(() => {});
  }
  return seen;
}

/**
 * A `$all` read with a stream-prefix filter, on the wire (6.2.1's readAll sends no filter; its
 * successor does): the streams of the events that came back, their positions, and any other message.
 */
function filteredRead(
  port: number,
  options: { prefix: string; count: number; from?: Position | 'end'; backwards?: boolean },
): Promise<{ streams: string[]; positions: Position[]; others: string[] }> {
  const all = new streamsPb.ReadReq.Options.AllOptions();
  if (options.from === 'end') all.setEnd(new sharedPb.Empty());
  else if (options.from) {
    const position = new streamsPb.ReadReq.Options.Position();
    position.setCommitPosition(options.from.commit.toString());
    position.setPreparePosition(options.from.prepare.toString());
    all.setPosition(position);
  } else all.setStart(new sharedPb.Empty());
  const expression = new streamsPb.ReadReq.Options.FilterOptions.Expression();
  expression.setPrefixList([options.prefix]);
  const filter = new streamsPb.ReadReq.Options.FilterOptions();
  filter.setStreamIdentifier(expression);
  filter.setMax(32);
  filter.setCheckpointintervalmultiplier(1);
  const uuid = new streamsPb.ReadReq.Options.UUIDOption();
  uuid.setString(new sharedPb.Empty());
  const readOptions = new streamsPb.ReadReq.Options();
  readOptions.setAll(all);
  readOptions.setCount(options.count.toString());
  readOptions.setFilter(filter);
  readOptions.setUuidOption(uuid);
  readOptions.setReadDirection(
    options.backwards
      ? streamsPb.ReadReq.Options.ReadDirection.BACKWARDS
      : streamsPb.ReadReq.Options.ReadDirection.FORWARDS,
  );
  const request = new streamsPb.ReadReq();
  request.setOptions(readOptions);
  const client = new streamsGrpc.StreamsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const seen = { streams: [] as string[], positions: [] as Position[], others: [] as string[] };
  return new Promise((resolve, reject) => {
    const call = client.read(request);
    call.on('data', (answer: InstanceType<typeof streamsPb.ReadResp>) => {
      const recorded = answer.getEvent()?.getEvent();
      if (!recorded) return void seen.others.push(answer.hasCheckpoint() ? 'checkpoint' : 'other');
      seen.streams.push(Buffer.from(recorded.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8'));
      seen.positions.push({
        commit: BigInt(recorded.getCommitPosition()),
        prepare: BigInt(recorded.getPreparePosition()),
      });
    });
    call.on('error', (error) => {
      client.close();
      reject(error);
    });
    call.on('end', () => {
      client.close();
      resolve(seen);
    });
  });
}

describe('EventStoreDB test server, through the real client', () => {
  let server: EventStoreDbTestServer;
  let client: EventStoreDBClient;
  beforeAll(async () => {
    server = await startEventStoreDbTestServer();
    client = EventStoreDBClient.connectionString(server.url);
  });
  afterEach(() => {
    server.resetFaults();
  });
  afterAll(async () => {
    await client.dispose();
    await server.close();
  });

  it('answers GetSupportedMethods, so the client appends through BatchAppend', async () => {
    await client.appendToStream(`s-${randomUUID()}`, event());
    expect(server.calls.some((call) => call.method === 'features')).toBe(true);
    expect(server.calls.some((call) => call.method === 'batch-append')).toBe(true);
  });

  it('checks every expected-revision kind and answers a retry of the same ids as done, appending nothing', async () => {
    const stream = `s-${randomUUID()}`;
    const first = [event({ n: 0 }), event({ n: 1 })];
    expect(
      (await client.appendToStream(stream, first, { expectedRevision: NO_STREAM })).nextExpectedRevision,
    ).toBe(1n);
    // The same ids again, under every expectation that would otherwise fail, land nowhere.
    for (const expectedRevision of [NO_STREAM, ANY] as const) {
      const again = await client.appendToStream(stream, first, { expectedRevision });
      expect(again.nextExpectedRevision).toBe(1n);
    }
    expect(server.log.stream(stream)).toHaveLength(2);
    await expect(
      client.appendToStream(stream, event(), { expectedRevision: NO_STREAM }),
    ).rejects.toMatchObject({
      type: ErrorType.WRONG_EXPECTED_VERSION,
    });
    await expect(client.appendToStream(stream, event(), { expectedRevision: 0n })).rejects.toMatchObject({
      type: ErrorType.WRONG_EXPECTED_VERSION,
      actualVersion: 1n,
    });
    expect(
      (await client.appendToStream(stream, event(), { expectedRevision: 1n })).nextExpectedRevision,
    ).toBe(2n);
    expect(
      (await client.appendToStream(stream, event(), { expectedRevision: STREAM_EXISTS }))
        .nextExpectedRevision,
    ).toBe(3n);
    await expect(
      client.appendToStream(`s-${randomUUID()}`, event(), { expectedRevision: STREAM_EXISTS }),
    ).rejects.toMatchObject({ type: ErrorType.WRONG_EXPECTED_VERSION });
  });

  it('gives each event a commit position that differs from its prepare position, ordered by (commit, prepare)', async () => {
    const stream = `s-${randomUUID()}`;
    await client.appendToStream(stream, [event(), event(), event()]);
    const read = await collect(client.readStream(stream));
    const positions = read.map((resolved) => resolved.event!.position!);
    for (const position of positions) expect(position.commit).not.toBe(position.prepare);
    expect(new Set(positions.map((p) => p.commit)).size).toBe(1);
    expect(positions.map((p) => p.prepare)).toEqual(
      [...positions.map((p) => p.prepare)].sort((a, b) => (a < b ? -1 : 1)),
    );
  });

  it('reads streams forwards and backwards, and reports a missing stream as StreamNotFound', async () => {
    const stream = `s-${randomUUID()}`;
    await client.appendToStream(
      stream,
      [0, 1, 2, 3].map((n) => event({ n })),
    );
    const revisions = (items: { event?: { revision: bigint } }[]) =>
      items.map((item) => Number(item.event!.revision));
    expect(revisions(await collect(client.readStream(stream, { fromRevision: 1n, maxCount: 2 })))).toEqual([
      1, 2,
    ]);
    expect(
      revisions(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }))),
    ).toEqual([3, 2, 1, 0]);
    expect(
      revisions(
        await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: 2n, maxCount: 2 })),
      ),
    ).toEqual([2, 1]);
    await expect(collect(client.readStream(`s-${randomUUID()}`))).rejects.toMatchObject({
      type: ErrorType.STREAM_NOT_FOUND,
    });
  });

  it('reads $all forwards inclusive of the start position and backwards exclusive of it, system events included', async () => {
    const stream = `s-${randomUUID()}`;
    await client.appendToStream(stream, [event(), event(), event()]);
    const mine = (await collect(client.readAll())).filter((resolved) => resolved.event!.streamId === stream);
    const second = mine[1]!.event!.position;
    const forwards = await collect(client.readAll({ fromPosition: second, maxCount: 1 }));
    expect(forwards[0]!.event!.id).toBe(mine[1]!.event!.id);
    const backwards = await collect(
      client.readAll({ fromPosition: second, direction: BACKWARDS, maxCount: 1 }),
    );
    expect(backwards[0]!.event!.id).toBe(mine[0]!.event!.id);
    const first = await collect(client.readAll({ fromPosition: START, direction: FORWARDS, maxCount: 1 }));
    expect(first[0]!.event!.streamId.startsWith('$')).toBe(true);
  });

  it('reads $all with a filter: only matching events, `count` of them, forwards inclusive, backwards exclusive, no checkpoints', async () => {
    // Streams.Read.cs:147-196 routes a filtered Count read to Enumerator.ReadAll{Forwards,Backwards}Filtered,
    // which count only the events that match and end the call at `count` or the end of the log
    // (Enumerator.ReadAllForwardsFiltered.cs:117-130, Enumerator.ReadAllBackwardsFiltered.cs:115-127).
    const prefix = `f${randomUUID().slice(0, 8)}-`;
    for (let i = 0; i < 3; i++) {
      await client.appendToStream(`${prefix}${i}`, [event({ i })]);
      for (let j = 0; j < 40; j++) await client.appendToStream(`other-${randomUUID()}`, [event()]);
    }
    const read = (options: { count: number; from?: Position | 'end'; backwards?: boolean }) =>
      filteredRead(server.port, { prefix, ...options });
    const all = await read({ count: 10 });
    expect(all).toMatchObject({ streams: [`${prefix}0`, `${prefix}1`, `${prefix}2`], others: [] });
    const second = all.positions[1]!;
    expect((await read({ count: 2 })).streams).toEqual([`${prefix}0`, `${prefix}1`]);
    expect((await read({ count: 10, from: second })).streams).toEqual([`${prefix}1`, `${prefix}2`]);
    expect(await read({ count: 10, from: second, backwards: true })).toMatchObject({
      streams: [`${prefix}0`],
      others: [],
    });
    expect((await read({ count: 1, from: 'end', backwards: true })).streams).toEqual([`${prefix}2`]);
  });

  it('refuses a position that is not an event’s as INVALID_ARGUMENT, which the client reports as UnknownError', async () => {
    await expect(
      collect(client.readAll({ fromPosition: { commit: 1n, prepare: 1n } })),
    ).rejects.toMatchObject({
      type: ErrorType.UNKNOWN,
    });
  });

  it('starts a subscription after its position, filters, checkpoints every interval × 32 events considered, catches up and goes live', async () => {
    const prefix = `sub${randomUUID().slice(0, 8)}-`;
    await client.appendToStream(`${prefix}a`, event());
    const start = (
      await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }))
    )[0]!.event!.position;
    // 64 events after the start: 2 checkpoints with a multiplier of 1 (window 32), 3 of them match.
    for (let i = 0; i < 61; i++) await client.appendToStream(`other-${i}`, event());
    await client.appendToStream(`${prefix}b`, [event(), event(), event()]);
    const seen = await observe(
      client,
      { fromPosition: start, filter: streamNameFilter({ prefixes: [prefix], checkpointInterval: 1 }) },
      (s) => s.caughtUp > 0,
    );
    expect(seen.events.slice(0, 3).map((e) => e.event!.streamId)).toEqual([
      `${prefix}b`,
      `${prefix}b`,
      `${prefix}b`,
    ]);
    expect(seen.checkpoints).toHaveLength(2);
    expect(seen.caughtUp).toBe(1);
    expect(seen.events).toHaveLength(3);
    // Live: a new matching event arrives on the same subscription.
    const live = observe(
      client,
      { fromPosition: start, filter: streamNameFilter({ prefixes: [prefix] }) },
      (s) => s.events.length >= 4,
    );
    setTimeout(() => void client.appendToStream(`${prefix}c`, event()), 200);
    expect((await live).events.map((e) => e.event!.streamId).at(-1)).toBe(`${prefix}c`);
  });

  it('delivers everything to a client that starts reading late (flow control)', async () => {
    const prefix = `flow${randomUUID().slice(0, 8)}-`;
    const big = { blob: 'x'.repeat(20_000) };
    for (let i = 0; i < 100; i++) await client.appendToStream(`${prefix}${i}`, event(big));
    const subscription = client.subscribeToAll({
      fromPosition: START,
      filter: streamNameFilter({ prefixes: [prefix] }),
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    let count = 0;
    for await (const _ of subscription) if (++count === 100) break;
    await subscription.unsubscribe();
    expect(count).toBe(100);
  });

  it('fault: no caughtUp, as before 23.10', async () => {
    server.faults.noCaughtUp = true;
    const seen = await observe(client, { fromPosition: END }, () => false, 300);
    expect(seen.caughtUp).toBe(0);
  });

  it('fault: a (2^64-1, 2^64-1) checkpoint when a filtered subscription from the start has matched nothing (KDB-710)', async () => {
    server.faults.maxCheckpointAtStart = true;
    const seen = await observe(
      client,
      { fromPosition: START, filter: streamNameFilter({ prefixes: [`none${randomUUID()}`] }) },
      (s) => s.caughtUp > 0,
    );
    expect(seen.checkpoints.at(-1)).toEqual({ commit: MAX_U64, prepare: MAX_U64 });
  });

  it('fault: an extra checkpoint beyond the last event on going live', async () => {
    server.faults.checkpointBeyondLive = 10_000n;
    const head = server.log.head;
    const seen = await observe(
      client,
      { fromPosition: END, filter: streamNameFilter({ prefixes: ['x'] }) },
      (s) => s.caughtUp > 0,
    );
    expect(seen.checkpoints.at(-1)!.commit).toBe(head.commit + 10_000n);
  });

  it('fault: "Server Is Not Ready" on BatchAppend arrives as UnknownError; UNAVAILABLE as UnavailableError', async () => {
    server.faults.batchAppendNotReady = 1;
    await expect(client.appendToStream(`s-${randomUUID()}`, event())).rejects.toMatchObject({
      type: ErrorType.UNKNOWN,
      message: expect.stringContaining('Server Is Not Ready'),
    });
    server.faults.unavailable = true;
    await expect(collect(client.readStream(`s-${randomUUID()}`))).rejects.toMatchObject({
      type: ErrorType.UNAVAILABLE,
    });
  });

  it('fault: drops every open subscription', async () => {
    const subscription = client.subscribeToAll({ fromPosition: END });
    await new Promise((resolve) => subscription.once('confirmation', resolve));
    const failed = new Promise((resolve) => subscription.once('error', resolve));
    server.dropSubscriptions();
    expect(await failed).toMatchObject({ type: ErrorType.UNAVAILABLE });
    expect(server.openSubscriptions).toBe(0);
  });

  it('answers reads that do not ask for the leader from a lagging follower', async () => {
    const stream = `s-${randomUUID()}`;
    server.followerLag();
    try {
      await client.appendToStream(stream, event());
      await expect(collect(client.readStream(stream))).rejects.toMatchObject({
        type: ErrorType.STREAM_NOT_FOUND,
      });
      expect(await collect(client.readStream(stream, { requiresLeader: true }))).toHaveLength(1);
    } finally {
      server.followerCatchUp();
    }
  });
});
