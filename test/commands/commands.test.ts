import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { GENESIS_HASH, hashEvent, verifyChain } from '../../src/audit/chain.ts';
import {
  IdempotencyKeyReused,
  IncidentCommands,
  VersionConflict,
  type CommandContext,
  type CommandInput,
} from '../../src/commands/index.ts';
import {
  IncidentNotFound,
  InvalidTransition,
  fold,
  initialState,
  parseEvent,
} from '../../src/domain/incident/index.ts';
import { StreamCache } from '../../src/commands/stream-cache.ts';
import { incidentStreamName, orgStreamPrefix } from '../../src/domain/streams.ts';
import type { EventStore } from '../../src/eventstore/port.ts';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';
import { checkoutIncident } from '../support/incidents.ts';

const create: CommandInput = {
  type: 'CreateIncident',
  ...checkoutIncident,
};

describe(`command handling on ${databaseLabel}`, () => {
  let test: TestDatabase;
  let store: EventStore;
  let commands: IncidentCommands;
  let orgId: string;
  const ctx = (extra: Partial<CommandContext> = {}): CommandContext => ({
    orgId,
    actor: { type: 'USER', ref: 'alice' },
    correlationId: `req-${randomUUID()}`,
    ...extra,
  });
  const streamOf = (incidentId: string) => store.readStream(incidentStreamName(orgId, incidentId));

  beforeAll(async () => {
    test = await openTestDatabase();
    store = test.store;
    commands = new IncidentCommands({ store, database: test.database, snapshotEvery: 50 });
  });
  afterAll(async () => {
    await test?.cleanup();
  });
  const freshOrg = () => (orgId = `org${randomUUID().slice(0, 8)}`);

  it('creates an incident at version 0 with the metadata EVENTS.md names', async () => {
    freshOrg();
    const context = ctx({ idempotencyKey: undefined });
    const created = await commands.execute(context, null, create);
    expect(created.incidentId).toMatch(/^inc_[0-9A-Za-z_-]+$/);
    expect(created.version).toBe(0);
    const [event] = await streamOf(created.incidentId);
    expect(event!.type).toBe('INCIDENT_CREATED');
    expect(event!.position).toBe(created.position);
    expect(event!.metadata).toEqual({
      orgId,
      incidentId: created.incidentId,
      actor: { type: 'USER', ref: 'alice' },
      occurredAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      correlationId: context.correlationId,
      schemaVersion: 1,
      // AUDIT.md: the first event of a stream chains onto 64 zeros.
      hash: hashEvent(GENESIS_HASH, event!),
    });
    expect(event!.data).toMatchObject({
      projectId: 'payments',
      severity: 'SEV2',
      tags: ['latency'],
      correlationKeys: [],
    });
  });

  it('decides no event for a no-op and answers with the unchanged version', async () => {
    freshOrg();
    const { incidentId } = await commands.execute(ctx(), null, create);
    const moved = await commands.execute(ctx(), incidentId, {
      type: 'ChangeStatus',
      newStatus: 'INVESTIGATING',
    });
    const again = await commands.execute(ctx(), incidentId, {
      type: 'ChangeStatus',
      newStatus: 'INVESTIGATING',
    });
    expect(again).toMatchObject({ version: moved.version, position: moved.position });
    const noTag = await commands.execute(ctx(), incidentId, { type: 'RemoveTag', tag: 'absent' });
    expect(noTag.version).toBe(1);
    expect(await streamOf(incidentId)).toHaveLength(2);
  });

  it('refuses a forbidden move and an unknown incident, appending nothing', async () => {
    freshOrg();
    const { incidentId } = await commands.execute(ctx(), null, create);
    await commands.execute(ctx(), incidentId, { type: 'ChangeStatus', newStatus: 'CANCELLED' });
    await expect(
      commands.execute(ctx(), incidentId, { type: 'ChangeStatus', newStatus: 'RESOLVED' }),
    ).rejects.toBeInstanceOf(InvalidTransition);
    await expect(commands.execute(ctx(), 'inc_missing', { type: 'AddTag', tag: 'x' })).rejects.toBeInstanceOf(
      IncidentNotFound,
    );
    expect(await streamOf(incidentId)).toHaveLength(2);
    expect(await streamOf('inc_missing')).toHaveLength(0);
  });

  it('fails a write pinned with If-Match to another version, with the actual version', async () => {
    freshOrg();
    const { incidentId } = await commands.execute(ctx(), null, create);
    await commands.execute(ctx(), incidentId, { type: 'AddTag', tag: 'db' });
    const pinned = commands.execute(ctx({ ifMatch: 0 }), incidentId, { type: 'AddTag', tag: 'cache' });
    await expect(pinned).rejects.toBeInstanceOf(VersionConflict);
    await expect(
      commands.execute(ctx({ ifMatch: 0 }), incidentId, { type: 'AddTag', tag: 'cache' }),
    ).rejects.toMatchObject({ actual: 1 });
    const ok = await commands.execute(ctx({ ifMatch: 1 }), incidentId, { type: 'AddTag', tag: 'cache' });
    expect(ok.version).toBe(2);
  });

  it('re-decides and retries lost races so concurrent writers never lose each other’s events', async () => {
    freshOrg();
    const { incidentId } = await commands.execute(ctx(), null, create);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        commands.execute(ctx(), incidentId, { type: 'RecordAction', actionKind: 'NOTE', label: `note ${i}` }),
      ),
    );
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const labels = (await streamOf(incidentId)).slice(1).map((e) => e.data.label);
    expect(new Set(labels).size).toBe(12);
  });

  it('replays an idempotent request without appending, and refuses the key for another request', async () => {
    freshOrg();
    const key = `key-${randomUUID()}`;
    const first = await commands.execute(
      ctx({ idempotencyKey: key, requestFingerprint: 'create-A' }),
      null,
      create,
    );
    const second = await commands.execute(
      ctx({ idempotencyKey: key, requestFingerprint: 'create-A' }),
      null,
      create,
    );
    expect(second).toEqual({ ...first, replayed: true });
    await expect(
      commands.execute(ctx({ idempotencyKey: key, requestFingerprint: 'create-B' }), null, create),
    ).rejects.toBeInstanceOf(IdempotencyKeyReused);
    expect(await streamOf(first.incidentId)).toHaveLength(1);
    // On PostgreSQL straight from the table: the port's global reads wait for older transactions anywhere on the server.
    const stored =
      store.kind === 'postgres'
        ? await test.database.db
            .selectFrom('its_events')
            .select('event_id')
            .where('stream_name', 'like', `${orgStreamPrefix(orgId)}%`)
            .execute()
        : await store.readAll({ streamPrefix: orgStreamPrefix(orgId), limit: 10 });
    expect(stored).toHaveLength(1);
  });

  it('lands a retried command once when the first attempt’s answer was lost after the append', async () => {
    freshOrg();
    const { incidentId } = await commands.execute(ctx(), null, create);
    // The append reaches the database but its answer never comes back (the connection drops).
    let dropAnswer = true;
    const lossy: EventStore = Object.create(store, {
      append: {
        value: async (...args: Parameters<EventStore['append']>) => {
          const result = await store.append(...args);
          if (dropAnswer) {
            dropAnswer = false;
            throw new Error('connection terminated before the answer arrived');
          }
          return result;
        },
      },
    });
    const flaky = new IncidentCommands({ store: lossy, database: test.database });
    const request = ctx({ idempotencyKey: 'retry-me', requestFingerprint: 'note-1' });
    const note: CommandInput = { type: 'RecordAction', actionKind: 'NOTE', label: 'paged the DBA' };
    await expect(flaky.execute(request, incidentId, note)).rejects.toThrow(/connection terminated/);
    const retried = await flaky.execute({ ...request, correlationId: 'retry' }, incidentId, note);
    expect(retried.version).toBe(1);
    const events = await streamOf(incidentId);
    expect(events.map((e) => e.type)).toEqual(['INCIDENT_CREATED', 'INCIDENT_NOTE_ADDED']);
    expect(retried.itemId).toBe(events[1]!.data.actionId);
  });

  it('gives the same incident id every time a create is retried with its key', async () => {
    freshOrg();
    const request = ctx({ idempotencyKey: 'create-once', requestFingerprint: 'same' });
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) ids.add((await commands.execute(request, null, create)).incidentId);
    expect(ids.size).toBe(1);
  });

  it('snapshots long streams, and a load from a snapshot equals the full fold', async () => {
    freshOrg();
    const { incidentId } = await commands.execute(ctx(), null, create);
    for (let i = 0; i < 120; i++) {
      await commands.execute(
        ctx(),
        incidentId,
        i % 2
          ? { type: 'AddTag', tag: `t${i}` }
          : { type: 'RecordAction', actionKind: 'NOTE', label: `n${i}` },
      );
    }
    const stream = incidentStreamName(orgId, incidentId);
    const snapshot = await test.database.db
      .selectFrom('incident_snapshots')
      .selectAll()
      .where('stream_name', '=', stream)
      .executeTakeFirstOrThrow();
    expect(Number(snapshot.version)).toBe(99); // every 50 events: at versions 49 and 99
    const loaded = await commands.load(stream);
    const events = await store.readStream(stream);
    expect(loaded.version).toBe(120);
    expect(loaded.state).toEqual(fold(events.map((e) => parseEvent(e.type, e.data, 1))));
    // Commands at versions 50 and 100 loaded from a snapshot with no event after it, yet chained on.
    expect(loaded.last?.metadata.hash).toEqual(events[120]!.metadata.hash);
    expect(verifyChain(events)).toMatchObject({ events: 121, unchained: 0, valid: true, headVersion: 120 });
  });

  it('creates with its append alone, writes again from what it appended, and decides on a read when another process wrote meanwhile', async () => {
    freshOrg();
    let reads = 0;
    // Counts the handler's reads only: the store's own calls (the EventStoreDB adapter reads an
    // append back) stay on the real store, so a Proxy that binds to it rather than Object.create.
    const counting = new Proxy(store, {
      get(target, property) {
        if (property === 'readStream')
          return (...args: Parameters<EventStore['readStream']>) => {
            reads++;
            return target.readStream(...args);
          };
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const here = new IncidentCommands({ store: counting, database: test.database });
    const elsewhere = new IncidentCommands({ store, database: test.database });

    const { incidentId } = await here.execute(ctx(), null, create);
    const tagged = await here.execute(ctx(), incidentId, { type: 'AddTag', tag: 'db' });
    expect(reads).toBe(0);
    expect(tagged.version).toBe(1);

    // Another process moves the incident on: this one's view is stale.
    await elsewhere.execute(ctx(), incidentId, { type: 'ChangeStatus', newStatus: 'INVESTIGATING' });
    const same = await here.execute(ctx(), incidentId, { type: 'ChangeStatus', newStatus: 'INVESTIGATING' });
    expect(same).toMatchObject({ version: 2, replayed: false });
    const next = await here.execute(ctx(), incidentId, { type: 'AddTag', tag: 'network' });
    expect(next.version).toBe(3);
    await expect(here.execute(ctx({ ifMatch: 2 }), incidentId, { type: 'AddTag', tag: 'x' })).rejects.toThrow(
      VersionConflict,
    );
    expect((await streamOf(incidentId)).map((event) => event.version)).toEqual([0, 1, 2, 3]);
  });
});

describe("the command handler's stream cache", () => {
  it('keeps at most its capacity, dropping the least recently used first', () => {
    const cache = new StreamCache(2);
    const entry = (version: number) => ({
      state: initialState,
      version,
      position: `1-${version}`,
      snapshotVersion: -1,
      last: { eventId: randomUUID(), type: 'INCIDENT_CREATED', metadata: {} },
    });
    cache.set('a', entry(0));
    cache.set('b', entry(1));
    expect(cache.get('a')?.version).toBe(0);
    cache.set('c', entry(2));
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.version).toBe(0);
    expect(cache.get('c')?.version).toBe(2);
  });
});
