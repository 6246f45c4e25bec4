/**
 * The event store port: the only thing the domain, the command handler and the projections know
 * about where events live. Adapters: `postgres/` (PostgreSQL or embedded PGlite) and `eventstoredb/`.
 *
 * Versions are stream revisions (first event = 0). Positions are places in the global log, carried
 * as opaque strings of the form `<major>-<minor>` (two unsigned decimal integers) so that bigints
 * never pass through JSON as numbers; compare them only with `comparePositions`.
 */

export type ExpectedVersion = 'no_stream' | 'any' | number;

export interface EventToAppend {
  /** UUID; a retried append that reuses it lands at most once. */
  eventId: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

export interface RecordedEvent {
  eventId: string;
  type: string;
  streamName: string;
  /** The event's revision in its stream, from 0. */
  version: number;
  /** The event's place in the global log. */
  position: string;
  /** When the store recorded it, ISO-8601 UTC. */
  createdAt: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

export interface AppendResult {
  /** Version of the last appended event (the stream's new version). */
  version: number;
  /** Global position of the last appended event. */
  position: string;
}

export interface ReadStreamOptions {
  /** Inclusive start version: default 0 forwards, the last event backwards. */
  fromVersion?: number;
  direction?: 'forwards' | 'backwards';
  /** Maximum number of events; default unbounded. */
  limit?: number;
}

export interface ReadAllOptions {
  /** Exclusive: only events after this position; null or absent = from the start. */
  fromPosition?: string | null;
  /** Only streams whose name starts with this prefix. */
  streamPrefix?: string;
  limit: number;
}

export interface SubscribeOptions {
  /** Exclusive: deliver events after this position; null or absent = from the start. */
  fromPosition?: string | null;
  streamPrefix?: string;
  /** Aborting ends the iteration cleanly. */
  signal?: AbortSignal;
}

export interface EventStore {
  readonly kind: 'postgres' | 'eventstoredb';
  append(streamName: string, events: EventToAppend[], expected: ExpectedVersion): Promise<AppendResult>;
  /** A stream that does not exist reads as empty. */
  readStream(streamName: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /** Global log in position order. */
  readAll(options: ReadAllOptions): Promise<RecordedEvent[]>;
  /** Catch up from `fromPosition`, then stay live; never skips or repeats an event. */
  subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent>;
  /** How many events `readAll` would return after `fromPosition` (counting stops at `limit`). */
  countEvents(options: {
    fromPosition?: string | null;
    streamPrefix?: string;
    limit?: number;
  }): Promise<number>;
  /** Position of the newest event in the global log (optionally under a prefix), null if none. */
  headPosition(streamPrefix?: string): Promise<string | null>;
  /** Answers when the store is reachable; throws otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A lost race: the stream is not at the version the append expected. */
export class WrongExpectedVersion extends Error {
  override readonly name = 'WrongExpectedVersion';
  constructor(
    readonly streamName: string,
    readonly expected: ExpectedVersion,
    /** The stream's actual version, or 'no_stream' when it does not exist. */
    readonly actual: number | 'no_stream',
  ) {
    super(`stream ${streamName} expected at ${String(expected)}, actually at ${String(actual)}`);
  }
}

/** The store could not be reached or did not answer; the outcome of a write is unknown. */
export class EventStoreUnavailable extends Error {
  override readonly name = 'EventStoreUnavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A well-formed position the store never issued (a crafted `fromPosition`): the caller's input is wrong. */
export class InvalidPosition extends RangeError {
  override readonly name = 'InvalidPosition';
}

const POSITION = /^(\d{1,20})-(\d{1,20})$/;

export function isPosition(value: string): boolean {
  return POSITION.test(value);
}

export function formatPosition(major: bigint, minor: bigint): string {
  return `${major.toString()}-${minor.toString()}`;
}

export function parsePosition(value: string): [bigint, bigint] {
  const match = POSITION.exec(value);
  if (!match) throw new RangeError(`not a position: ${value}`);
  return [BigInt(match[1]!), BigInt(match[2]!)];
}

/** Negative when a comes before b in the global log; null sorts before everything. */
export function comparePositions(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  const [a1, a2] = parsePosition(a);
  const [b1, b2] = parsePosition(b);
  if (a1 !== b1) return a1 < b1 ? -1 : 1;
  return a2 === b2 ? 0 : a2 < b2 ? -1 : 1;
}

/** A recorded event as the API serves it (a stream's page; with `streamName`, the org feed and live streams). */
export const eventJson = (event: RecordedEvent) => ({
  eventId: event.eventId,
  type: event.type,
  version: event.version,
  position: event.position,
  createdAt: event.createdAt,
  data: event.data,
  metadata: event.metadata,
});

/** The same, naming its stream: the org feed's and the live streams' form. */
export const eventJsonWithStream = (event: RecordedEvent) => ({
  ...eventJson(event),
  streamName: event.streamName,
});
