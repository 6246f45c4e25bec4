import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  WrongExpectedVersion,
  comparePositions,
  type EventStore,
  type EventToAppend,
  type RecordedEvent,
} from '../../src/eventstore/port.ts';

export interface OpenedStore {
  store: EventStore;
  cleanup(): Promise<void>;
}

function event(type = 'INCIDENT_NOTE_ADDED', data: Record<string, unknown> = {}): EventToAppend {
  return { eventId: randomUUID(), type, data, metadata: { schemaVersion: 1, note: 'contract' } };
}

/** Each test gets streams under its own org, so tests never see each other's events. */
function freshOrg(): string {
  return `c${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

/** Take events from a subscription until `count` arrived (or the timeout passes). */
async function take(
  store: EventStore,
  options: { fromPosition?: string | null; streamPrefix: string },
  count: number,
  timeoutMs = 20_000,
): Promise<RecordedEvent[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const received: RecordedEvent[] = [];
  try {
    for await (const recorded of store.subscribe({ ...options, signal: controller.signal })) {
      received.push(recorded);
      if (received.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return received;
}

/**
 * Resolves once the global log shows `position` under `streamPrefix`. A store may make a commit
 * visible to global reads a moment after the append returns (PostgreSQL waits for older
 * transactions anywhere on the server to end), so global-log tests wait on this, not on a sleep.
 */
export async function untilVisible(store: EventStore, streamPrefix: string, position: string): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 20_000);
  try {
    for await (const recorded of store.subscribe({ streamPrefix, signal: controller.signal })) {
      if (comparePositions(recorded.position, position) >= 0) return;
    }
    throw new Error(`position ${position} did not become visible`);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** The behaviour every event store adapter must show; run against each reachable adapter. */
export function describeEventStoreContract(
  name: string,
  open: () => Promise<OpenedStore>,
  options: { skipWhy?: string } = {},
): void {
  if (options.skipWhy) console.warn(`event store contract: ${name}: SKIPPED (${options.skipWhy})`);
  describe.skipIf(Boolean(options.skipWhy))(`event store contract: ${name}`, () => {
    let opened: OpenedStore;
    let store: EventStore;
    beforeAll(async () => {
      opened = await open();
      store = opened.store;
    });
    afterAll(async () => {
      await opened?.cleanup();
    });

    it('appends a new stream at version 0 onwards and reads it back in order', async () => {
      const stream = `incident-${freshOrg()}.inc_a`;
      const first = await store.append(stream, [event('A'), event('B')], 'no_stream');
      expect(first.version).toBe(1);
      const second = await store.append(stream, [event('C')], 1);
      expect(second.version).toBe(2);
      expect(comparePositions(first.position, second.position)).toBeLessThan(0);

      const events = await store.readStream(stream);
      expect(events.map((e) => [e.type, e.version])).toEqual([
        ['A', 0],
        ['B', 1],
        ['C', 2],
      ]);
      expect(events[2]!.position).toBe(second.position);
      expect(events[0]!.metadata).toEqual({ schemaVersion: 1, note: 'contract' });
      expect(Number.isNaN(Date.parse(events[0]!.createdAt))).toBe(false);
    });

    it('reads a stream that does not exist as empty', async () => {
      expect(await store.readStream(`incident-${freshOrg()}.missing`)).toEqual([]);
    });

    it('refuses an append at the wrong version with the actual version', async () => {
      const stream = `incident-${freshOrg()}.inc_b`;
      await store.append(stream, [event(), event()], 'no_stream');
      const stale = store.append(stream, [event()], 0);
      await expect(stale).rejects.toBeInstanceOf(WrongExpectedVersion);
      await expect(store.append(stream, [event()], 0)).rejects.toMatchObject({ actual: 1 });
      await expect(store.append(stream, [event()], 'no_stream')).rejects.toMatchObject({ actual: 1 });
      await expect(store.append(`incident-${freshOrg()}.none`, [event()], 3)).rejects.toMatchObject({
        actual: 'no_stream',
      });
      expect(await store.readStream(stream)).toHaveLength(2);
      const any = await store.append(stream, [event()], 'any');
      expect(any.version).toBe(2);
    });

    it('lets many writers race on one stream: each append lands at the next version or fails with the actual one', async () => {
      const stream = `incident-${freshOrg()}.inc_race`;
      await store.append(stream, [event()], 'no_stream');
      const writers = 16;
      const rounds = 5;
      let landed = 0;
      await Promise.all(
        Array.from({ length: writers }, async () => {
          for (let round = 0; round < rounds; round++) {
            for (;;) {
              const current = (await store.readStream(stream, { direction: 'backwards', limit: 1 }))[0]!
                .version;
              try {
                const result = await store.append(stream, [event()], current);
                expect(result.version).toBe(current + 1);
                landed++;
                break;
              } catch (error) {
                expect(error).toBeInstanceOf(WrongExpectedVersion);
                expect((error as WrongExpectedVersion).actual).toBeGreaterThan(current);
              }
            }
          }
        }),
      );
      const events = await store.readStream(stream);
      expect(landed).toBe(writers * rounds);
      expect(events.map((e) => e.version)).toEqual(Array.from({ length: writers * rounds + 1 }, (_, i) => i));
    });

    it('treats a retried append with the same event ids as already done', async () => {
      const stream = `incident-${freshOrg()}.inc_retry`;
      const batch = [event('A'), event('B')];
      const first = await store.append(stream, batch, 'no_stream');
      const retried = await store.append(stream, batch, 'no_stream');
      expect(retried).toEqual(first);
      const next = [event('C')];
      const third = await store.append(stream, next, 1);
      expect(await store.append(stream, next, 1)).toEqual(third);
      expect((await store.readStream(stream)).map((e) => e.type)).toEqual(['A', 'B', 'C']);
    });

    it('pages a stream forwards and backwards from a version', async () => {
      const stream = `incident-${freshOrg()}.inc_page`;
      await store.append(
        stream,
        Array.from({ length: 10 }, (_, i) => event(`E${i}`)),
        'no_stream',
      );
      const page = await store.readStream(stream, { fromVersion: 3, limit: 4 });
      expect(page.map((e) => e.version)).toEqual([3, 4, 5, 6]);
      const back = await store.readStream(stream, { fromVersion: 5, direction: 'backwards', limit: 3 });
      expect(back.map((e) => e.version)).toEqual([5, 4, 3]);
      const last = await store.readStream(stream, { direction: 'backwards', limit: 1 });
      expect(last[0]!.version).toBe(9);
      expect(await store.readStream(stream, { fromVersion: 10 })).toEqual([]);
    });

    it('reads the global log of one org by prefix, in a total order, paged without overlap or gaps', async () => {
      const org = freshOrg();
      const other = freshOrg();
      let last = '';
      for (let i = 0; i < 5; i++) {
        last = (
          await store.append(`incident-${org}.inc_${i}`, [event('A', { i }), event('B', { i })], 'no_stream')
        ).position;
        await store.append(`incident-${other}.inc_${i}`, [event('X')], 'no_stream');
      }
      await untilVisible(store, `incident-${org}.`, last);
      const all: RecordedEvent[] = [];
      let from: string | null = null;
      for (;;) {
        const page = await store.readAll({ fromPosition: from, streamPrefix: `incident-${org}.`, limit: 3 });
        if (page.length === 0) break;
        all.push(...page);
        from = page.at(-1)!.position;
      }
      expect(all).toHaveLength(10);
      expect(all.every((e) => e.streamName.startsWith(`incident-${org}.`))).toBe(true);
      for (let i = 1; i < all.length; i++)
        expect(comparePositions(all[i - 1]!.position, all[i]!.position)).toBeLessThan(0);
      expect(all.map((e) => `${e.streamName}/${e.version}`)).toEqual(
        Array.from({ length: 5 }, (_, i) => [
          `incident-${org}.inc_${i}/0`,
          `incident-${org}.inc_${i}/1`,
        ]).flat(),
      );
      const again = await store.readAll({
        fromPosition: all[3]!.position,
        streamPrefix: `incident-${org}.`,
        limit: 100,
      });
      expect(again.map((e) => e.eventId)).toEqual(all.slice(4).map((e) => e.eventId));
      expect(await store.headPosition(`incident-${org}.`)).toBe(all.at(-1)!.position);
      expect(await store.countEvents({ streamPrefix: `incident-${org}.` })).toBe(10);
      expect(
        await store.countEvents({ fromPosition: all[3]!.position, streamPrefix: `incident-${org}.` }),
      ).toBe(6);
      expect(await store.countEvents({ streamPrefix: `incident-${org}.`, limit: 4 })).toBe(4);
    });

    it('subscribes: catches up, goes live, and resumes from a checkpoint without gaps or repeats', async () => {
      const org = freshOrg();
      const prefix = `incident-${org}.`;
      for (let i = 0; i < 6; i++) await store.append(`${prefix}inc_${i}`, [event('A', { i })], 'no_stream');

      const firstPart = await take(store, { streamPrefix: prefix }, 4);
      expect(firstPart.map((e) => e.data)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
      const checkpoint = firstPart.at(-1)!.position;

      const rest = take(store, { fromPosition: checkpoint, streamPrefix: prefix }, 6);
      for (let i = 6; i < 10; i++) await store.append(`${prefix}inc_${i}`, [event('A', { i })], 'no_stream');
      expect((await rest).map((e) => e.data)).toEqual([4, 5, 6, 7, 8, 9].map((i) => ({ i })));
    });

    it('ends a subscription when its signal aborts', async () => {
      const controller = new AbortController();
      const iteration = (async () => {
        let seen = 0;
        for await (const _ of store.subscribe({
          streamPrefix: `incident-${freshOrg()}.`,
          signal: controller.signal,
        }))
          seen++;
        return seen;
      })();
      setTimeout(() => controller.abort(), 200);
      expect(await iteration).toBe(0);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
