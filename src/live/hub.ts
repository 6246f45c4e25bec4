import { orgStreamPrefix, parseIncidentStreamName } from '../domain/streams.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../eventstore/port.ts';
import { INCIDENT_STREAM_PREFIX } from '../../projections/projector.ts';
import type { CommittedEvents } from './committed.ts';
import type { SseConnection } from './sse.ts';

export interface LiveOptions {
  /** Open streams one token may hold (STREAM_MAX_PER_TOKEN). */
  maxPerToken: number;
  /** Interval of the `: keep-alive` comment. */
  keepAliveMs: number;
  /** Bytes a live stream may have waiting unsent before it is cut off. */
  maxBufferedBytes: number;
}

/** Which events one stream carries: an org's incident events, or one incident's, optionally of some types. */
export interface StreamSelection {
  orgId: string;
  /** Only this incident stream. */
  streamName?: string;
  types?: ReadonlySet<string>;
}

/** Where a stream starts: after a position, at a version of its incident, or (null) from now on. */
export type ResumePoint = { afterPosition: string } | { fromVersion: number } | null;

/** Events of the backlog read per page. */
const BACKLOG_PAGE = 500;
/** Live events a stream holds while it reads its backlog; past that it drops them and reads the store again. */
const MAX_PENDING = 1_000;
/** How long a backlog waits for a client to take what was written before cutting it off. */
const BACKLOG_DRAIN_TIMEOUT_MS = 30_000;

/**
 * The fan-out: one source of committed events feeds every open stream of this process. Streams
 * register under their incident stream name or their org's prefix, so an event costs a map lookup
 * or two, not a pass over every stream.
 */
export class LiveHub {
  private readonly routes = new Map<string, Set<(event: RecordedEvent) => void>>();
  private readonly connections = new Set<SseConnection>();
  private readonly perToken = new Map<string, number>();
  private readonly keepAlive: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly source: CommittedEvents,
    private readonly store: EventStore,
    readonly options: LiveOptions,
  ) {
    this.unsubscribe = source.onCommitted((events) => {
      for (const event of events) this.route(event);
    });
    // One timer for every stream: an idle stream costs its socket and little more.
    this.keepAlive = setInterval(() => {
      for (const connection of this.connections) connection.keepAlive();
    }, options.keepAliveMs).unref();
  }

  get openStreams(): number {
    return this.connections.size;
  }

  /** Counts a stream against its token: a release function, or null when the token has its maximum open. */
  admit(tokenKey: string): (() => void) | null {
    const open = this.perToken.get(tokenKey) ?? 0;
    if (open >= this.options.maxPerToken) return null;
    this.perToken.set(tokenKey, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perToken.get(tokenKey) ?? 1) - 1;
      if (left === 0) this.perToken.delete(tokenKey);
      else this.perToken.set(tokenKey, left);
    };
  }

  private route(event: RecordedEvent): void {
    const ids = parseIncidentStreamName(event.streamName);
    if (!ids) return;
    for (const key of [event.streamName, orgStreamPrefix(ids.orgId)])
      for (const deliver of this.routes.get(key) ?? []) deliver(event);
  }

  private join(key: string, deliver: (event: RecordedEvent) => void): () => void {
    let set = this.routes.get(key);
    if (!set) this.routes.set(key, (set = new Set()));
    set.add(deliver);
    return () => {
      set.delete(deliver);
      if (set.size === 0) this.routes.delete(key);
    };
  }

  /**
   * Feeds one connection: its backlog from the store in pages, then live events, with no gap and no
   * repeat at the seam. The handshake: the stream joins the fan-out first and holds live events
   * back; it reads the backlog up to the position the source has reached (all of it projected);
   * then it sends the held events past that position and from there on sends live.
   */
  async serve(connection: SseConnection, selection: StreamSelection, resume: ResumePoint): Promise<void> {
    this.connections.add(connection);
    const fromVersion = resume && 'fromVersion' in resume ? resume.fromVersion : 0;
    const matches = (event: RecordedEvent) =>
      (selection.streamName === undefined || event.streamName === selection.streamName) &&
      (selection.types === undefined || selection.types.has(event.type)) &&
      event.version >= fromVersion;
    // Never send an event at or before one already sent (or the client's resume position).
    let sentUpTo: string | null = resume && 'afterPosition' in resume ? resume.afterPosition : null;
    const send = (event: RecordedEvent, fromBacklog = false) => {
      if (sentUpTo !== null && comparePositions(event.position, sentUpTo) <= 0) return;
      sentUpTo = event.position;
      connection.send(event, !fromBacklog);
    };
    let live = false;
    let pending: RecordedEvent[] = [];
    let overflowed = false;
    const leave = this.join(selection.streamName ?? orgStreamPrefix(selection.orgId), (event) => {
      if (!matches(event)) return;
      if (live) send(event);
      else if (pending.length < MAX_PENDING) pending.push(event);
      else overflowed = true;
    });
    connection.whenClosed(() => {
      leave();
      this.connections.delete(connection);
    });

    await this.source.start();
    // From now on: nothing the store held when the stream opened, even if the source has yet to hand it out.
    if (resume === null) sentUpTo = await this.store.headPosition(INCIDENT_STREAM_PREFIX);
    let cursor = resume;
    while (cursor !== null && connection.isOpen) {
      const limit = this.source.position;
      cursor = await this.replay(connection, selection, cursor, limit, send, matches);
      if (!overflowed) break;
      pending = [];
      overflowed = false;
    }
    const held = pending;
    pending = [];
    live = true;
    for (const event of held) send(event);
  }

  /** Sends the backlog after `cursor` up to `limit`; answers where a further pass would start. */
  private async replay(
    connection: SseConnection,
    selection: StreamSelection,
    cursor: Exclude<ResumePoint, null>,
    limit: string | null,
    send: (event: RecordedEvent, fromBacklog: boolean) => void,
    matches: (event: RecordedEvent) => boolean,
  ): Promise<Exclude<ResumePoint, null>> {
    const beyond = (event: RecordedEvent) => comparePositions(event.position, limit) > 0;
    if ('fromVersion' in cursor) {
      let version = cursor.fromVersion;
      for (;;) {
        const page = await this.store.readStream(selection.streamName!, {
          fromVersion: version,
          limit: BACKLOG_PAGE,
        });
        for (const event of page) {
          if (beyond(event)) return { fromVersion: version };
          if (matches(event)) send(event, true);
          version = event.version + 1;
          if (!(await connection.drained(BACKLOG_DRAIN_TIMEOUT_MS))) return { fromVersion: version };
        }
        if (page.length < BACKLOG_PAGE) return { fromVersion: version };
      }
    }
    let after: string = cursor.afterPosition;
    const streamPrefix = selection.streamName ?? orgStreamPrefix(selection.orgId);
    for (;;) {
      const page = await this.store.readAll({ fromPosition: after, streamPrefix, limit: BACKLOG_PAGE });
      for (const event of page) {
        if (beyond(event)) return { afterPosition: after };
        if (matches(event)) send(event, true);
        after = event.position;
        if (!(await connection.drained(BACKLOG_DRAIN_TIMEOUT_MS))) return { afterPosition: after };
      }
      if (page.length < BACKLOG_PAGE) {
        // Everything up to `limit` has been read, whether or not it was this stream's.
        return { afterPosition: comparePositions(limit, after) > 0 ? limit! : after };
      }
    }
  }

  /** Ends every open stream (the server is closing); clients reconnect with Last-Event-ID. */
  closeAll(): void {
    for (const connection of [...this.connections]) connection.end();
  }

  async stop(): Promise<void> {
    clearInterval(this.keepAlive);
    this.unsubscribe();
    this.closeAll();
    await this.source.stop();
  }
}
