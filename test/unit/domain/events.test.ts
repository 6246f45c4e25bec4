import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import {
  CURRENT_SCHEMA_VERSION,
  ClientActionKind,
  EVENT_TYPES,
  TimelineActionKind,
  UnknownEventType,
  UnsupportedSchemaVersion,
  eventDataSchemas,
  eventMetadataSchema,
  parseEvent,
  readEventWith,
  type UpcasterTable,
} from '../../../src/domain/incident/index.ts';

describe('event types', () => {
  it('are the twelve names of EVENTS.md', () => {
    expect(EVENT_TYPES).toEqual([
      'INCIDENT_CREATED',
      'INCIDENT_UPDATED',
      'INCIDENT_STATUS_CHANGED',
      'INCIDENT_SEVERITY_CHANGED',
      'INCIDENT_TAG_ADDED',
      'INCIDENT_TAG_REMOVED',
      'INCIDENT_SIGNAL_INGESTED',
      'INCIDENT_NOTE_ADDED',
      'INCIDENT_PLAYBOOK_ACTION_EXECUTED',
      'INCIDENT_SLO_VIOLATION_RECORDED',
      'INCIDENT_LINKED_TO_TICKET',
      'INCIDENT_RESOLVED',
    ]);
    expect(Object.keys(eventDataSchemas).sort()).toEqual([...EVENT_TYPES].sort());
  });

  it('are at schema version 1 today, but the signal at version 2 (fingerprint and status)', () => {
    expect(Object.keys(CURRENT_SCHEMA_VERSION).sort()).toEqual([...EVENT_TYPES].sort());
    const { INCIDENT_SIGNAL_INGESTED: signal, ...rest } = CURRENT_SCHEMA_VERSION;
    expect(signal).toBe(2);
    expect(new Set(Object.values(rest))).toEqual(new Set([1]));
  });

  it('timeline action kinds are the client kinds plus the service kinds', () => {
    expect(TimelineActionKind.options).toEqual([
      ...ClientActionKind.options,
      'STATUS_CHANGE',
      'SEVERITY_CHANGE',
      'TICKET_LINK',
    ]);
  });
});

describe('parseEvent', () => {
  it('reads a stored v1 event', () => {
    expect(parseEvent('INCIDENT_TAG_ADDED', { tag: 'db' }, 1)).toEqual({
      type: 'INCIDENT_TAG_ADDED',
      data: { tag: 'db' },
    });
  });

  it('accepts the arbitrary JSON object a signal carries', () => {
    const data = {
      signalId: 's',
      signalType: 'CUSTOM',
      source: 'x',
      summary: 'y',
      data: { nested: [1, { a: null }] },
      ts: '2025-01-01T00:00:00+02:00',
    };
    expect(parseEvent('INCIDENT_SIGNAL_INGESTED', data, 1).data).toEqual(data);
  });

  it('throws UnknownEventType for a type it does not know', () => {
    expect(() => parseEvent('INCIDENT_EXPLODED', {}, 1)).toThrow(UnknownEventType);
  });

  it('throws a ZodError for data that does not match the schema', () => {
    expect(() => parseEvent('INCIDENT_TAG_ADDED', { tag: 3 }, 1)).toThrow(ZodError);
    expect(() => parseEvent('INCIDENT_TAG_ADDED', null, 1)).toThrow(ZodError);
    expect(() => parseEvent('INCIDENT_TAG_ADDED', { tag: 'db', extra: 1 }, 1)).toThrow(ZodError);
    expect(() => parseEvent('INCIDENT_STATUS_CHANGED', { from: 'OPEN', to: 'RESOLVED' }, 1)).toThrow(
      ZodError,
    );
    expect(() =>
      parseEvent('INCIDENT_PLAYBOOK_ACTION_EXECUTED', { actionId: 'a', actionKind: 'NOTE', label: 'x' }, 1),
    ).toThrow(ZodError);
    expect(() => parseEvent('INCIDENT_UPDATED', { changes: {} }, 1)).toThrow(ZodError);
    expect(() =>
      parseEvent(
        'INCIDENT_SIGNAL_INGESTED',
        { signalId: 's', signalType: 'ALERT', source: 'x', summary: 'y', ts: 'yesterday' },
        1,
      ),
    ).toThrow(ZodError);
  });

  it('refuses a schema version newer than this code knows', () => {
    expect(() => parseEvent('INCIDENT_TAG_ADDED', { tag: 'db' }, 2)).toThrow(UnsupportedSchemaVersion);
    expect(() => parseEvent('INCIDENT_TAG_ADDED', { tag: 'db' }, 0)).toThrow(UnsupportedSchemaVersion);
  });
});

describe('the signal upcaster (v1 → v2)', () => {
  const v1 = {
    signalId: 'sig_1',
    signalType: 'ALERT',
    source: 'prometheus',
    summary: 'p99 > 2s',
    ts: '2026-11-26T10:00:00.000Z',
  };

  it('reads a stored v1 signal as v2 without fingerprint or status', () => {
    expect(parseEvent('INCIDENT_SIGNAL_INGESTED', v1, 1)).toEqual({
      type: 'INCIDENT_SIGNAL_INGESTED',
      data: v1,
    });
  });

  it('reads a v2 signal with its fingerprint and status', () => {
    const v2 = { ...v1, fingerprint: 'c0ffee', status: 'resolved' };
    expect(parseEvent('INCIDENT_SIGNAL_INGESTED', v2, 2).data).toEqual(v2);
  });

  it('refuses a status that is neither firing nor resolved', () => {
    expect(() => parseEvent('INCIDENT_SIGNAL_INGESTED', { ...v1, status: 'pending' }, 2)).toThrow(ZodError);
  });
});

describe('upcasters', () => {
  // Pretend INCIDENT_NOTE_ADDED v1 stored `{ actionId, text }` and today's shape (v2) is `{ actionId, label, details? }`.
  const table: UpcasterTable = {
    INCIDENT_NOTE_ADDED: {
      1: (data) => {
        const { actionId, text } = data as { actionId: string; text: string };
        return { actionId, label: text };
      },
    },
  };
  const reader = { upcasters: table, currentVersions: { ...CURRENT_SCHEMA_VERSION, INCIDENT_NOTE_ADDED: 2 } };

  it('reads a v1 event into the current v2 shape', () => {
    expect(
      readEventWith(reader, 'INCIDENT_NOTE_ADDED', { actionId: 'act_1', text: 'paged the DBA' }, 1),
    ).toEqual({
      type: 'INCIDENT_NOTE_ADDED',
      data: { actionId: 'act_1', label: 'paged the DBA' },
    });
  });

  it('reads a v2 event as it is', () => {
    expect(readEventWith(reader, 'INCIDENT_NOTE_ADDED', { actionId: 'act_1', label: 'x' }, 2).data).toEqual({
      actionId: 'act_1',
      label: 'x',
    });
  });

  it('chains upcasters from the stored version to the current one', () => {
    const chained = {
      upcasters: {
        INCIDENT_TAG_ADDED: {
          1: (d: unknown) => ({ name: (d as { t: string }).t }),
          2: (d: unknown) => ({ tag: (d as { name: string }).name }),
        },
      },
      currentVersions: { ...CURRENT_SCHEMA_VERSION, INCIDENT_TAG_ADDED: 3 },
    };
    expect(readEventWith(chained, 'INCIDENT_TAG_ADDED', { t: 'db' }, 1)).toEqual({
      type: 'INCIDENT_TAG_ADDED',
      data: { tag: 'db' },
    });
    expect(readEventWith(chained, 'INCIDENT_TAG_ADDED', { name: 'db' }, 2)).toEqual({
      type: 'INCIDENT_TAG_ADDED',
      data: { tag: 'db' },
    });
  });

  it('refuses an old version with no upcaster', () => {
    const missing = { upcasters: {}, currentVersions: { ...CURRENT_SCHEMA_VERSION, INCIDENT_NOTE_ADDED: 2 } };
    expect(() => readEventWith(missing, 'INCIDENT_NOTE_ADDED', { actionId: 'a', label: 'x' }, 1)).toThrow(
      UnsupportedSchemaVersion,
    );
  });
});

describe('eventMetadataSchema', () => {
  const metadata = {
    orgId: 'acme',
    incidentId: 'inc_0190a1b2c3d4',
    actor: { type: 'USER', ref: 'alice' },
    occurredAt: '2025-01-01T00:00:00.000Z',
    correlationId: 'req-1',
    schemaVersion: 1,
  };

  it('accepts the envelope metadata of EVENTS.md, with or without the optional ids', () => {
    expect(eventMetadataSchema.parse(metadata)).toEqual(metadata);
    const full = { ...metadata, causationId: 'evt-0', idempotencyKey: 'key-1' };
    expect(eventMetadataSchema.parse(full)).toEqual(full);
  });

  it('refuses a bad actor type, org id or schema version', () => {
    expect(eventMetadataSchema.safeParse({ ...metadata, actor: { type: 'ROBOT', ref: 'r' } }).success).toBe(
      false,
    );
    expect(eventMetadataSchema.safeParse({ ...metadata, orgId: 'a.b' }).success).toBe(false);
    expect(eventMetadataSchema.safeParse({ ...metadata, schemaVersion: 0 }).success).toBe(false);
  });
});
