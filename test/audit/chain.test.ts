import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  GENESIS_HASH,
  chainEvents,
  hashEvent,
  verifyChain,
  type ChainedEvent,
} from '../../src/audit/chain.ts';

const event = (
  version: number,
  data: Record<string, unknown> = { n: version },
): Omit<ChainedEvent, 'version'> => ({
  eventId: `00000000-0000-4000-a000-${String(version).padStart(12, '0')}`,
  type: 'INCIDENT_TAG_ADDED',
  data,
  metadata: { orgId: 'acme', occurredAt: '2026-12-01T00:00:00.000Z', schemaVersion: 1 },
});

const stream = (count: number): ChainedEvent[] =>
  chainEvents(
    { version: -1, hash: null },
    Array.from({ length: count }, (_, version) => event(version)),
  ).map((chained, version) => ({ ...chained, version }));

describe('the hash chain', () => {
  it('hashes the AUDIT.md text: previous hash, id, type, version, JCS data, JCS metadata without hash', () => {
    const e = { ...event(0, { b: 1, a: [true, null, 'é'] }), version: 0 };
    const text = `${GENESIS_HASH}\n${e.eventId}\nINCIDENT_TAG_ADDED\n0\n{"a":[true,null,"é"],"b":1}\n{"occurredAt":"2026-12-01T00:00:00.000Z","orgId":"acme","schemaVersion":1}`;
    const expected = createHash('sha256').update(text, 'utf8').digest('hex');
    expect(hashEvent(GENESIS_HASH, e)).toBe(expected);
    expect(hashEvent(GENESIS_HASH, { ...e, metadata: { ...e.metadata, hash: 'x' } })).toBe(expected);
  });

  it('chains each event onto the one before it, across appends', () => {
    const first = chainEvents({ version: -1, hash: null }, [event(0), event(1)]);
    const second = chainEvents({ version: 1, hash: first[1]!.metadata.hash as string }, [event(2)]);
    const all = [...first, ...second].map((e, version) => ({ ...e, version }));
    expect(all).toEqual(stream(3));
    expect(verifyChain(all)).toEqual({
      events: 3,
      unchained: 0,
      valid: true,
      headVersion: 2,
      headHash: all[2]!.metadata.hash,
      firstInvalidVersion: null,
      reason: null,
    });
  });

  it('counts the events before the first hashed one as unchained', () => {
    const legacy = [0, 1].map((version) => ({ ...event(version), version }));
    const chained = chainEvents({ version: 1, hash: null }, [event(2)]).map((e) => ({ ...e, version: 2 }));
    expect(verifyChain([...legacy, ...chained])).toMatchObject({ events: 3, unchained: 2, valid: true });
    expect(verifyChain(legacy)).toMatchObject({ unchained: 2, valid: true, headHash: null });
  });

  it('finds the first altered, missing or reordered event', () => {
    const s = stream(5);
    const altered = s.map((e) => (e.version === 2 ? { ...e, data: { n: 99 } } : e));
    expect(verifyChain(altered)).toMatchObject({ valid: false, firstInvalidVersion: 2 });
    const stripped = s.map((e) =>
      e.version === 3 ? { ...e, metadata: { ...e.metadata, hash: undefined } } : e,
    );
    expect(verifyChain(stripped)).toMatchObject({ valid: false, firstInvalidVersion: 3 });
    expect(verifyChain(s.filter((e) => e.version !== 1))).toMatchObject({
      valid: false,
      firstInvalidVersion: 1,
      reason: expect.stringMatching(/missing/),
    });
    expect(verifyChain(s.slice(0, 3), 4)).toMatchObject({
      valid: false,
      headVersion: 2,
      firstInvalidVersion: 3,
      reason: expect.stringMatching(/deleted/),
    });
    expect(verifyChain([], 0)).toMatchObject({ valid: false, headVersion: -1, firstInvalidVersion: 0 });
  });
});
