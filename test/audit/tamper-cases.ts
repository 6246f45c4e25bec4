import { sql, type Kysely } from 'kysely';
import { expect } from 'vitest';
import type { Schema } from '../../src/db/schema.ts';
import type { EventToAppend, RecordedEvent } from '../../src/eventstore/port.ts';
import { validIncident } from '../http/support.ts';
import type { TestApp } from '../support/app.ts';

/**
 * The tampering AUDIT.md must catch, each as an edit of a stored stream of five events (v0..v4):
 * in PostgreSQL straight in `its_events`; for a store that cannot be edited (EventStoreDB) as the
 * altered copies to append, in order, to a fresh stream.
 */
export interface TamperCase {
  name: string;
  firstInvalidVersion: number;
  reason: RegExp;
  /** Whether the stream's fold still gives the read model's row. */
  readModelMatches: boolean;
  inPostgres(db: Kysely<Schema>, streamName: string): Promise<void>;
  copies(events: readonly RecordedEvent[]): EventToAppend[];
  /** Copies renumber versions: a removed event shows as an altered one. */
  copiesReason?: RegExp;
}

const ALTERED = /does not match/;
const at = (streamName: string, version: number) => sql`stream_name = ${streamName} and version = ${version}`;
/** An event as an append takes it again: the copy an attacker starts from. */
export const copy = ({ eventId, type, data, metadata }: RecordedEvent): EventToAppend => ({
  eventId,
  type,
  data,
  metadata,
});

export const TAMPER_CASES: TamperCase[] = [
  {
    name: "one event's data changed",
    firstInvalidVersion: 2,
    reason: ALTERED,
    readModelMatches: false,
    inPostgres: async (db, stream) => {
      await sql`update its_events set data = jsonb_set(data, '{to}', '"SEV4"') where ${at(stream, 2)}`.execute(
        db,
      );
    },
    copies: (events) =>
      events.map((e) => (e.version === 2 ? { ...copy(e), data: { ...e.data, to: 'SEV4' } } : copy(e))),
  },
  {
    name: "one event's metadata changed",
    firstInvalidVersion: 2,
    reason: ALTERED,
    readModelMatches: true,
    inPostgres: async (db, stream) => {
      await sql`update its_events set metadata = jsonb_set(metadata, '{actor,ref}', '"mallory"') where ${at(stream, 2)}`.execute(
        db,
      );
    },
    copies: (events) =>
      events.map((e) =>
        e.version === 2
          ? { ...copy(e), metadata: { ...e.metadata, actor: { type: 'USER', ref: 'mallory' } } }
          : copy(e),
      ),
  },
  {
    name: "one event's type changed",
    firstInvalidVersion: 1,
    reason: ALTERED,
    readModelMatches: false,
    inPostgres: async (db, stream) => {
      await sql`update its_events set type = 'INCIDENT_TAG_REMOVED' where ${at(stream, 1)}`.execute(db);
    },
    copies: (events) =>
      events.map((e) => (e.version === 1 ? { ...copy(e), type: 'INCIDENT_TAG_REMOVED' } : copy(e))),
  },
  {
    name: 'a middle event deleted',
    firstInvalidVersion: 2,
    reason: /version 2 is missing/,
    copiesReason: ALTERED,
    readModelMatches: false,
    inPostgres: async (db, stream) => {
      await sql`delete from its_events where ${at(stream, 2)}`.execute(db);
    },
    copies: (events) => events.filter((e) => e.version !== 2).map(copy),
  },
  {
    name: 'the last event deleted',
    firstInvalidVersion: 4,
    reason: /ends at version 3, but the read model recorded version 4/,
    readModelMatches: false,
    inPostgres: async (db, stream) => {
      await sql`delete from its_events where ${at(stream, 4)}`.execute(db);
    },
    copies: (events) => events.filter((e) => e.version !== 4).map(copy),
  },
  {
    name: "two events' versions swapped",
    firstInvalidVersion: 2,
    reason: ALTERED,
    // The severity and status changes commute: the fold is the same, only the chain sees it.
    readModelMatches: true,
    inPostgres: async (db, stream) => {
      // (stream_name, version) is unique and checked row by row: move one out of the way first.
      await db.transaction().execute(async (tx) => {
        await sql`update its_events set version = -1 where ${at(stream, 2)}`.execute(tx);
        await sql`update its_events set version = 2 where ${at(stream, 3)}`.execute(tx);
        await sql`update its_events set version = 3 where ${at(stream, -1)}`.execute(tx);
      });
    },
    copies: (events) => [events[0]!, events[1]!, events[3]!, events[2]!, events[4]!].map(copy),
  },
];

/** The stream the tamper cases edit: an incident of five events, v0..v4, written through the API. */
export async function incidentOfFiveEvents(t: TestApp, orgId: string, token: string): Promise<string> {
  const write = async (url: string, payload: Record<string, unknown>) => {
    const response = await t.request({ method: 'POST', url, payload, token });
    expect(response.statusCode, response.body).toBeLessThan(300);
    return response.json<{ incidentId: string }>();
  };
  const { incidentId } = await write(`/api/orgs/${orgId}/incidents`, validIncident);
  const base = `/api/orgs/${orgId}/incidents/${incidentId}`;
  await write(`${base}/tags`, { tag: 'db' });
  await write(`${base}/severity`, { newSeverity: 'SEV1' });
  await write(`${base}/status`, { newStatus: 'INVESTIGATING' });
  await write(`${base}/actions`, { actionKind: 'NOTE', label: 'rolled back' });
  return incidentId;
}
