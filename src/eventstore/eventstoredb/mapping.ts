/**
 * Pure translations between the port and `@eventstore/db-client` 6.2.1: expected versions, positions,
 * recorded events and errors. Nothing here talks to a server, so all of it is unit-tested.
 */
import {
  ANY,
  ErrorType,
  NO_STREAM,
  START,
  convertToCommandError,
  isCommandError,
  type AppendExpectedRevision,
  type Position,
  type ReadPosition,
  type RecordedEvent as EsdbRecordedEvent,
} from '@eventstore/db-client';
import {
  EventStoreUnavailable,
  InvalidPosition,
  WrongExpectedVersion,
  comparePositions,
  formatPosition,
  parsePosition,
  type ExpectedVersion,
  type RecordedEvent,
} from '../port.ts';

/** A stored event the port cannot carry: its data or metadata is not a JSON object. */
export class EventDecodingError extends Error {
  override readonly name = 'EventDecodingError';
}

export function toExpectedRevision(expected: ExpectedVersion): AppendExpectedRevision {
  if (expected === 'no_stream') return NO_STREAM;
  if (expected === 'any') return ANY;
  if (!Number.isSafeInteger(expected) || expected < 0)
    throw new RangeError(`not a stream version: ${expected}`);
  return BigInt(expected);
}

/** The client's `actualVersion` is a bigint revision or "no_stream"; a negative revision also means no stream. */
export function toActualVersion(actual: bigint | 'no_stream'): number | 'no_stream' {
  if (actual === 'no_stream' || actual < 0n) return 'no_stream';
  return Number(actual);
}

export function positionToString(position: Position): string {
  return formatPosition(position.commit, position.prepare);
}

const UNKNOWN_POSITION_PART = 2n ** 64n - 1n;

/**
 * A position the server does not know: it sends 2^64-1 for "no position", and the generated
 * getters read an absent one as "0", so (0, 0) is never a real event's (the log starts with an epoch record).
 */
export function isUnknownPosition(position: Position): boolean {
  if (position.commit === UNKNOWN_POSITION_PART || position.prepare === UNKNOWN_POSITION_PART) return true;
  return position.commit === 0n && position.prepare === 0n;
}

/** A port position (or null for the start) as a `$all` read/subscribe position. */
export function toReadPosition(position: string | null): ReadPosition {
  if (position === null) return START;
  const [commit, prepare] = parsePosition(position);
  return { commit, prepare };
}

/** True when `position` is strictly after `from` (null = before everything): the port's `fromPosition` is exclusive. */
export function isAfter(position: string, from: string | null): boolean {
  return from === null || comparePositions(position, from) > 0;
}

/** Server bookkeeping (`$`-streams such as `$stats-…`, `$`-types such as `$metadata`, `$>` links). */
export function isSystemEvent(streamName: string, type: string): boolean {
  return streamName.startsWith('$') || type.startsWith('$');
}

/** Whether a `$all` event belongs in a port read: not a system event and under the prefix, if any. */
export function isWanted(streamName: string, type: string, streamPrefix: string | undefined): boolean {
  if (isSystemEvent(streamName, type)) return false;
  return !streamPrefix || streamName.startsWith(streamPrefix);
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

/**
 * The client parses JSON data for `application/json` events (falling back to the raw string when it
 * is malformed), parses metadata as JSON when it can (else leaves the bytes), and gives `undefined`
 * for empty metadata; `created` is already a Date (converted from .NET ticks).
 */
export function toRecordedEvent(event: EsdbRecordedEvent): RecordedEvent {
  const where = `${event.streamId}@${event.revision.toString()}`;
  if (!event.position || isUnknownPosition(event.position)) {
    throw new EventDecodingError(
      `event ${where} came without a log position (EventStoreDB 22.6 or later sends it)`,
    );
  }
  if (!isJsonObject(event.data))
    throw new EventDecodingError(`event ${where} has data that is not a JSON object`);
  const metadata = event.metadata ?? {};
  if (!isJsonObject(metadata))
    throw new EventDecodingError(`event ${where} has metadata that is not a JSON object`);
  return {
    eventId: event.id,
    type: event.type,
    streamName: event.streamId,
    version: Number(event.revision),
    position: positionToString(event.position),
    createdAt: new Date(event.created).toISOString(),
    data: event.data,
    metadata,
  };
}

/** Errors after which nobody can tell whether the server acted: the connection or the node failed us. */
const UNAVAILABLE: ReadonlySet<ErrorType> = new Set([
  ErrorType.UNAVAILABLE,
  ErrorType.DEADLINE_EXCEEDED,
  ErrorType.TIMEOUT,
  ErrorType.CANCELLED,
  ErrorType.NOT_LEADER,
]);

/** Errors that resubscribing cannot cure. */
const PERMANENT: ReadonlySet<ErrorType> = new Set([
  ErrorType.ACCESS_DENIED,
  ErrorType.INVALID_ARGUMENT,
  ErrorType.UNSUPPORTED,
]);

/** The client sometimes rejects with a raw gRPC error; give it the client's typed form. */
function asCommandError(error: unknown): unknown {
  return error instanceof Error ? convertToCommandError(error) : error;
}

/** Outages the client does not type: the node's in-band "not ready/busy" answers and a failed discovery. */
const UNTYPED_OUTAGE = /Server Is (Not Ready|Busy|Too Busy)|^Failed to discover/i;
/** RpcExceptions.InvalidPositionException: INVALID_ARGUMENT, which the client turns into UnknownError. */
const INVALID_POSITION = /invalid position/i;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export function isUnavailableError(error: unknown): boolean {
  if (error instanceof EventStoreUnavailable) return true;
  const converted = asCommandError(error);
  if (converted instanceof Error && isCommandError(converted) && UNAVAILABLE.has(converted.type)) return true;
  return UNTYPED_OUTAGE.test(messageOf(converted));
}

export function isInvalidPositionError(error: unknown): boolean {
  if (error instanceof InvalidPosition) return true;
  const converted = asCommandError(error);
  return converted instanceof Error && isCommandError(converted) && INVALID_POSITION.test(converted.message);
}

export function isPermanentError(error: unknown): boolean {
  if (error instanceof EventDecodingError || isInvalidPositionError(error)) return true;
  const converted = asCommandError(error);
  return converted instanceof Error && isCommandError(converted) && PERMANENT.has(converted.type);
}

export function isStreamNotFound(error: unknown): boolean {
  const converted = asCommandError(error);
  return (
    converted instanceof Error && isCommandError(converted) && converted.type === ErrorType.STREAM_NOT_FOUND
  );
}

/** Any client error as the port's error when there is one for it; otherwise the client's typed error. */
export function toPortError(error: unknown): unknown {
  if (
    error instanceof WrongExpectedVersion ||
    error instanceof EventStoreUnavailable ||
    error instanceof InvalidPosition
  )
    return error;
  const converted = asCommandError(error);
  if (isInvalidPositionError(converted))
    return new InvalidPosition(`EventStoreDB refused the position: ${messageOf(converted)}`, {
      cause: error,
    });
  if (isUnavailableError(converted)) {
    const message = converted instanceof Error ? converted.message : String(converted);
    return new EventStoreUnavailable(`EventStoreDB did not answer: ${message}`, { cause: error });
  }
  return converted;
}

export function toAppendError(error: unknown, streamName: string, expected: ExpectedVersion): unknown {
  const converted = asCommandError(error);
  if (
    converted instanceof Error &&
    isCommandError(converted) &&
    converted.type === ErrorType.WRONG_EXPECTED_VERSION
  ) {
    return new WrongExpectedVersion(streamName, expected, toActualVersion(converted.actualVersion));
  }
  return toPortError(converted);
}
