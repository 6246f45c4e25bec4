/**
 * The test server's transaction file: one in-memory log of records, with EventStoreDB's positions,
 * expected-revision checks and idempotency. Nothing here speaks gRPC.
 *
 * Layout: an append writes one prepare record per event and then one commit record, so every
 * event's position is (commit record's offset, its own prepare's offset) and the two always differ,
 * as for a transaction on a real node (`TFPos(commitPosition, preparePosition)` in
 * src/EventStore.Core/Data/TFPos.cs). `$all` is ordered by (commit, prepare).
 */

export interface Position {
  commit: bigint;
  prepare: bigint;
}

export interface StoredEvent {
  stream: string;
  revision: bigint;
  eventId: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: Uint8Array;
  /** .NET ticks (100 ns) since the Unix epoch, as the server sends `created`. */
  created: bigint;
  position: Position;
}

export interface ProposedEvent {
  eventId: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: Uint8Array;
}

/** bigint revision, or one of the kinds a client may state. */
export type Expected = bigint | 'any' | 'no_stream' | 'stream_exists';

export type AppendOutcome =
  | { kind: 'written'; revision: bigint; position: Position }
  /** The same event ids already stand where this append would put them: nothing is written. */
  | { kind: 'idempotent'; revision: bigint }
  | { kind: 'wrong_expected_version'; current: bigint | 'no_stream' };

export const MAX_U64 = 2n ** 64n - 1n;
const RECORD_OVERHEAD = 96n;
const COMMIT_RECORD_SIZE = 48n;

export function comparePosition(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  return a.prepare === b.prepare ? 0 : a.prepare < b.prepare ? -1 : 1;
}

export class EventLog {
  /** Every event in `$all` order. */
  readonly events: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  /** Where the next record goes (the writer checkpoint). */
  private end = 0n;
  private readonly listeners = new Set<() => void>();

  constructor() {
    // A fresh node writes its own records first (settings, the default users' streams), so `$all`
    // never starts with an application event and clients must filter system streams.
    const settings = new TextEncoder().encode('{"$userStreamAcl":{"$r":"$all"}}');
    this.append('$settings', [this.systemEvent('$settings', settings)], 'any');
    this.append(
      '$user-admin',
      [this.systemEvent('$User', new TextEncoder().encode('{"loginName":"admin"}'))],
      'any',
    );
  }

  private systemEvent(type: string, data: Uint8Array): ProposedEvent {
    return {
      eventId: crypto.randomUUID(),
      type,
      contentType: 'application/json',
      data,
      metadata: new Uint8Array(),
    };
  }

  get head(): Position {
    return { commit: this.end, prepare: this.end };
  }

  stream(name: string): readonly StoredEvent[] | undefined {
    return this.streams.get(name);
  }

  /** Calls `listener` after each append; returns the function that removes it. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The server's checks, in its order (src/EventStore.Core/Services/Storage/ReaderIndex/IndexWriter.cs,
   * CheckCommit): an exact or `no_stream` expectation the stream is past is idempotent when the
   * events after it carry the same ids; `any` is idempotent when the first id already stands in the
   * stream and the rest follow it.
   */
  append(stream: string, proposed: ProposedEvent[], expected: Expected): AppendOutcome {
    const existing = this.streams.get(stream) ?? [];
    const current = BigInt(existing.length) - 1n;
    const sameIdsFrom = (first: number) =>
      first >= 0 &&
      first + proposed.length <= existing.length &&
      proposed.every((event, i) => existing[first + i]!.eventId === event.eventId);

    if (expected === 'any') {
      const first = existing.findIndex((event) => event.eventId === proposed[0]?.eventId);
      if (first >= 0 && sameIdsFrom(first))
        return { kind: 'idempotent', revision: BigInt(first + proposed.length - 1) };
    } else if (expected === 'stream_exists') {
      if (existing.length === 0) return { kind: 'wrong_expected_version', current: 'no_stream' };
    } else {
      const want = expected === 'no_stream' ? -1n : expected;
      if (want !== current) {
        if (want < current && sameIdsFrom(Number(want + 1n)))
          return { kind: 'idempotent', revision: want + BigInt(proposed.length) };
        return { kind: 'wrong_expected_version', current: existing.length === 0 ? 'no_stream' : current };
      }
    }

    const created = BigInt(Date.now()) * 10_000n;
    const prepares: bigint[] = [];
    for (const event of proposed) {
      prepares.push(this.end);
      this.end += RECORD_OVERHEAD + BigInt(event.data.length + event.metadata.length + stream.length);
    }
    const commit = this.end;
    this.end += COMMIT_RECORD_SIZE;
    const written = proposed.map((event, i): StoredEvent => ({
      stream,
      revision: current + 1n + BigInt(i),
      eventId: event.eventId,
      type: event.type,
      contentType: event.contentType,
      data: event.data,
      metadata: event.metadata,
      created,
      position: { commit, prepare: prepares[i]! },
    }));
    this.events.push(...written);
    this.streams.set(stream, [...existing, ...written]);
    for (const listener of this.listeners) listener();
    // The write's answer carries the transaction's position: its commit and its first prepare.
    return {
      kind: 'written',
      revision: current + BigInt(proposed.length),
      position: { commit, prepare: prepares[0]! },
    };
  }

  /** Whether a client may start a `$all` read here: the start, the end, or an event's own position. */
  isValidPosition(position: Position): boolean {
    if (position.commit === 0n && position.prepare === 0n) return true;
    if (comparePosition(position, this.head) === 0) return true;
    return this.indexOf(position) !== null;
  }

  /** Index in `events` of the first event strictly after `position`. */
  firstAfter(position: Position): number {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (comparePosition(this.events[mid]!.position, position) <= 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Index in `events` of the first event at or after `position`. */
  firstAtOrAfter(position: Position): number {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (comparePosition(this.events[mid]!.position, position) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private indexOf(position: Position): number | null {
    const index = this.firstAtOrAfter(position);
    const found = this.events[index];
    return found && comparePosition(found.position, position) === 0 ? index : null;
  }
}

/** A server-side `$all` filter: on stream names or event types, by prefixes or a regular expression. */
export interface EventFilter {
  on: 'stream' | 'type';
  prefixes: string[];
  regex: RegExp | null;
}

export function matches(filter: EventFilter | null, event: StoredEvent): boolean {
  if (!filter) return true;
  const subject = filter.on === 'stream' ? event.stream : event.type;
  if (filter.regex && !filter.regex.test(subject)) return false;
  return filter.prefixes.length === 0 || filter.prefixes.some((prefix) => subject.startsWith(prefix));
}
