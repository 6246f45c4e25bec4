import { hash as digest } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * The tamper-evidence chain of AUDIT.md, pure: every event's `metadata.hash` is the SHA-256 of the
 * previous event's hash and the event's canonical (RFC 8785) form, so changing, removing or
 * reordering a stored event breaks every hash from it on.
 */

/** The previous hash of a chain's first event. */
export const GENESIS_HASH = '0'.repeat(64);

const HASH = /^[0-9a-f]{64}$/;

/** What the hash covers: an event as stored, with its version in the stream. */
export interface ChainedEvent {
  eventId: string;
  type: string;
  version: number;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

/** The last event of a stream as a writer read it: version -1 for no stream, hash null when unhashed. */
export interface ChainHead {
  version: number;
  hash: string | null;
}

export const EMPTY_HEAD: ChainHead = { version: -1, hash: null };

/** The text an event's hash covers: `<previous>\n<eventId>\n<type>\n<version>\n<JCS data>\n<JCS metadata without hash>`. */
export function chainText(previousHash: string, event: ChainedEvent): string {
  return textAt(previousHash, event, event.version);
}

/** Lowercase hex SHA-256 of the UTF-8 bytes of `chainText`. */
export function hashEvent(previousHash: string, event: ChainedEvent): string {
  return hashAt(previousHash, event, event.version);
}

// The write path hashes with these, so that an event is not copied just to carry its version, nor
// its metadata when it has no hash yet: the chain's cost is mostly allocation and cold caches.
function textAt(previousHash: string, event: Omit<ChainedEvent, 'version'>, version: number): string {
  return `${previousHash}\n${event.eventId}\n${event.type}\n${version}\n${jcs(event.data)}\n${jcs(withoutHash(event.metadata))}`;
}

function withoutHash(metadata: Record<string, unknown>): Record<string, unknown> {
  if (!('hash' in metadata)) return metadata;
  const { hash: _hash, ...rest } = metadata;
  return rest;
}

function hashAt(previousHash: string, event: Omit<ChainedEvent, 'version'>, version: number): string {
  // The one-shot digest: on the write path it costs half of a createHash object's set-up.
  return digest('sha256', textAt(previousHash, event, version), 'hex');
}

function jcs(value: Record<string, unknown>): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('event data and metadata must be JSON objects');
  return text;
}

/** The stored hash of an event, or null when it has none (written before the chain existed). */
export function storedHash(event: { metadata: Record<string, unknown> }): string | null {
  const hash = event.metadata.hash;
  return typeof hash === 'string' ? hash : null;
}

export function isHash(value: unknown): value is string {
  return typeof value === 'string' && HASH.test(value);
}

/**
 * Gives each event its `hash`, chained from `head` (the stream's last event as the writer read it).
 * After an unhashed head (a stream from before the chain) the chain starts again from GENESIS_HASH.
 */
export function chainEvents<E extends Omit<ChainedEvent, 'version'>>(
  head: ChainHead,
  events: readonly E[],
): E[] {
  let previous = head.hash ?? GENESIS_HASH;
  return events.map((event, index) => {
    // The text leaves a stale hash out of what it covers.
    const hash = hashAt(previous, event, head.version + 1 + index);
    previous = hash;
    return { ...event, metadata: { ...event.metadata, hash } };
  });
}

/** AUDIT.md's verdict on one stream (without the read-model part). */
export interface ChainVerdict {
  events: number;
  /** Events before the first hashed one. */
  unchained: number;
  valid: boolean;
  /** Version of the last event read; -1 for an empty stream. */
  headVersion: number;
  headHash: string | null;
  firstInvalidVersion: number | null;
  reason: string | null;
}

/**
 * Checks one stream's events as they arrive, in the order they were read (by version). Holds only
 * the last hash, so a stream of any length checks in constant memory.
 */
export class ChainVerifier {
  private events = 0;
  private unchained = 0;
  private lastVersion = -1;
  private lastHash: string | null = null;
  private chained = false;
  private firstInvalid: { version: number; reason: string } | null = null;

  add(event: ChainedEvent): void {
    this.events++;
    const expected = this.lastVersion + 1;
    if (event.version !== expected) {
      this.fail(
        event.version > expected ? expected : event.version,
        event.version > expected
          ? `version ${expected} is missing: the next event is version ${event.version}`
          : `version ${event.version} comes again after version ${this.lastVersion}`,
      );
    }
    this.lastVersion = Math.max(this.lastVersion, event.version);
    const hash = storedHash(event);
    if (hash === null) {
      if (this.chained) this.fail(event.version, 'the event has no hash, but the chain started before it');
      else this.unchained++;
      this.lastHash = null;
      return;
    }
    const recomputed = hashEvent(this.chained ? (this.lastHash ?? GENESIS_HASH) : GENESIS_HASH, event);
    if (recomputed !== hash) {
      this.fail(
        event.version,
        isHash(hash)
          ? 'the stored hash does not match the event: it was altered, or moved from another version'
          : 'the hash is not a lowercase hex SHA-256',
      );
    }
    this.chained = true;
    // Carry the stored hash on: after a break, later events still check against what is there.
    this.lastHash = hash;
  }

  /** The verdict so far; `recordedHeadVersion` is the head another record holds (the read model's). */
  result(recordedHeadVersion: number | null = null): ChainVerdict {
    let firstInvalid = this.firstInvalid;
    if (firstInvalid === null && recordedHeadVersion !== null && recordedHeadVersion > this.lastVersion) {
      firstInvalid = {
        version: this.lastVersion + 1,
        reason: `the stream ends at version ${this.lastVersion}, but the read model recorded version ${recordedHeadVersion}: its last events were deleted`,
      };
    }
    return {
      events: this.events,
      unchained: this.unchained,
      valid: firstInvalid === null,
      headVersion: this.lastVersion,
      headHash: this.lastHash,
      firstInvalidVersion: firstInvalid?.version ?? null,
      reason: firstInvalid?.reason ?? null,
    };
  }

  private fail(version: number, reason: string): void {
    this.firstInvalid ??= { version, reason };
  }
}

/** Verifies a whole stream read by version. */
export function verifyChain(
  events: Iterable<ChainedEvent>,
  recordedHeadVersion: number | null = null,
): ChainVerdict {
  const verifier = new ChainVerifier();
  for (const event of events) verifier.add(event);
  return verifier.result(recordedHeadVersion);
}
