import { createHash } from 'node:crypto';
import { appendChained } from '../audit/append.ts';
import { storedHash, type ChainHead } from '../audit/chain.ts';
import type { Database } from '../db/database.ts';
import {
  CURRENT_SCHEMA_VERSION,
  DomainError,
  IncidentNotFound,
  createsIncident,
  decide,
  evolve,
  initialState,
  parseEvent,
  type IncidentEvent,
  type IncidentState,
} from '../domain/incident/index.ts';
import { incidentStreamName } from '../domain/streams.ts';
import { WrongExpectedVersion, type EventStore, type EventToAppend } from '../eventstore/port.ts';
import { conflictBackoff, sleep } from '../retry.ts';
import { IdempotentRequests } from './idempotency.ts';
import { planCommand, type CommandInput, type CommandResult, type Plan, type RunResult } from './plan.ts';
import { IncidentSnapshots } from './snapshots.ts';
import { StreamCache, type CachedStream } from './stream-cache.ts';

export { IdempotencyKeyReused } from './idempotency.ts';
export type { CommandInput, CommandResult, Plan } from './plan.ts';

export type ActorType = 'USER' | 'SYSTEM' | 'INTEGRATION';

export interface CommandContext {
  orgId: string;
  actor: { type: ActorType; ref: string };
  correlationId: string;
  causationId?: string;
  idempotencyKey?: string;
  /** Hash of what identifies the request (method, route, params, body); required with an idempotency key. */
  requestFingerprint?: string;
  /** `If-Match`: the version(s) the caller saw; the write fails with VersionConflict at any other. */
  ifMatch?: number | readonly number[];
}

export interface CommandMetrics {
  commandDone(type: string, outcome: 'ok' | 'noop' | 'replayed' | 'rejected' | 'conflict' | 'error'): void;
  appendDuration(seconds: number): void;
  retry(): void;
}

/** `If-Match` named a version the incident is no longer (or not yet) at. */
export class VersionConflict extends Error {
  override readonly name = 'VersionConflict';
  constructor(
    readonly expected: number | readonly number[],
    readonly actual: number,
  ) {
    super(`incident is at version ${actual}, not ${[expected].flat().join(' or ') || 'the one named'}`);
  }
}

const matchesIfMatch = (ifMatch: number | readonly number[], version: number) =>
  typeof ifMatch === 'number' ? ifMatch === version : ifMatch.includes(version);

/** Every retry lost its race: the stream is too hot right now. */
export class ConcurrencyRetriesExhausted extends Error {
  override readonly name = 'ConcurrencyRetriesExhausted';
}

interface Loaded {
  state: IncidentState;
  version: number;
  position: string | null;
  /** Ids of the events read past the snapshot, to recognise a command that already landed. */
  landed: Map<string, { version: number; position: string }>;
  /** The version of the snapshot it was folded from (-1 for none). */
  snapshotVersion: number;
  /** The stream's last event (its metadata included); undefined for a stream that does not exist. */
  last?: CachedStream['last'];
  /**
   * `read`: from the store. `cached`: this process's last view of it. `new`: assumed not to exist
   * (a create). The last two are guesses the append's expected version checks.
   */
  source: 'read' | 'cached' | 'new';
}

export interface IncidentCommandsOptions {
  store: EventStore;
  database: Database;
  metrics?: CommandMetrics;
  /** Snapshot the incident after this many events since the last snapshot. */
  snapshotEvery?: number;
  maxRetries?: number;
  clock?: () => Date;
  /** How many incidents to keep in memory between writes (default 10,000; 0 turns the cache off). */
  cachedStreams?: number;
}

/** Load → decide → append, with retries on lost races, idempotency keys and snapshots. */
export class IncidentCommands {
  private readonly store: EventStore;
  private readonly snapshots: IncidentSnapshots;
  private readonly idempotent: IdempotentRequests;
  private readonly metrics: CommandMetrics | undefined;
  private readonly snapshotEvery: number;
  private readonly maxRetries: number;
  private readonly clock: () => Date;
  private readonly cache: StreamCache;

  constructor(options: IncidentCommandsOptions) {
    this.store = options.store;
    this.snapshots = new IncidentSnapshots(options.database);
    this.idempotent = new IdempotentRequests(options.database);
    this.metrics = options.metrics;
    this.snapshotEvery = options.snapshotEvery ?? 100;
    this.maxRetries = options.maxRetries ?? 10;
    this.clock = options.clock ?? (() => new Date());
    this.cache = new StreamCache(options.cachedStreams ?? 10_000);
  }

  async execute(ctx: CommandContext, incidentId: string | null, input: CommandInput): Promise<CommandResult> {
    try {
      const plan = () => planCommand(incidentId, input, this.clock());
      const result = ctx.idempotencyKey
        ? await this.idempotent.once(
            { orgId: ctx.orgId, key: ctx.idempotencyKey, fingerprint: ctx.requestFingerprint ?? '' },
            plan,
            (planned, stored) => this.run(ctx, planned, stored),
          )
        : await this.run(ctx, plan());
      this.metrics?.commandDone(input.type, result.replayed ? 'replayed' : result.outcome);
      return result;
    } catch (error) {
      const outcome =
        error instanceof VersionConflict || error instanceof ConcurrencyRetriesExhausted
          ? 'conflict'
          : error instanceof DomainError
            ? 'rejected'
            : 'error';
      this.metrics?.commandDone(input.type, outcome);
      throw error;
    }
  }

  /**
   * Runs a command planned elsewhere (ingestion keeps its plans in the alert group's stream): its
   * event ids are fixed, so running the same plan again, from any process, lands it once.
   */
  async executePlanned(ctx: CommandContext, plan: Plan): Promise<CommandResult> {
    try {
      const { outcome, ...result } = await this.run(ctx, plan);
      this.metrics?.commandDone(plan.command.type, outcome);
      return result;
    } catch (error) {
      this.metrics?.commandDone(plan.command.type, error instanceof DomainError ? 'rejected' : 'error');
      throw error;
    }
  }

  /**
   * Load → decide → append, again on a lost race. A create assumes its new stream does not exist and
   * other writes start from this process's cached view: the append's expected version checks either
   * guess, and any answer other than an append (a no-op, a refusal) is decided again on a fresh read.
   */
  private async run(ctx: CommandContext, plan: Plan, mustRead = false): Promise<RunResult> {
    const streamName = incidentStreamName(ctx.orgId, plan.incidentId);
    let fresh = mustRead;
    for (let attempt = 0; ; attempt++) {
      const loaded = await this.loadFor(streamName, plan, fresh);
      let events: IncidentEvent[];
      try {
        const done = loaded.landed.get(plan.eventId);
        if (done) return { ...this.result(plan, done.version, done.position), outcome: 'ok' };
        if (loaded.state === initialState && !createsIncident(plan.command))
          throw new IncidentNotFound(plan.incidentId);
        if (ctx.ifMatch !== undefined && !matchesIfMatch(ctx.ifMatch, loaded.version))
          throw new VersionConflict(ctx.ifMatch, loaded.version);
        events = decide(plan.command, loaded.state);
      } catch (error) {
        if (loaded.source === 'read') throw error;
        fresh = true;
        attempt--;
        continue;
      }
      if (events.length === 0) {
        if (loaded.source !== 'read') {
          fresh = true;
          attempt--;
          continue;
        }
        return {
          incidentId: plan.incidentId,
          version: loaded.version,
          position: loaded.position!,
          replayed: false,
          outcome: 'noop',
        };
      }
      const started = performance.now();
      const envelopes = events.map((event, index) => this.envelope(ctx, plan, event, index));
      try {
        const appended = await appendChained(this.store, streamName, chainHead(loaded), envelopes);
        this.metrics?.appendDuration((performance.now() - started) / 1000);
        const { head } = appended;
        if (head) await this.remember(streamName, loaded, events, envelopes.at(-1)!, { ...appended, head });
        else this.cache.delete(streamName); // an earlier landing of these ids: only a read knows its hashes
        return { ...this.result(plan, appended.version, appended.position), outcome: 'ok' };
      } catch (error) {
        // Whatever the cache said is in doubt now.
        this.cache.delete(streamName);
        if (!(error instanceof WrongExpectedVersion)) throw error;
        fresh = true;
        // A guess that was wrong is no lost race: decide again on a read, at once.
        if (loaded.source !== 'read' && ctx.ifMatch === undefined) {
          attempt--;
          continue;
        }
        if (ctx.ifMatch !== undefined) {
          throw new VersionConflict(ctx.ifMatch, error.actual === 'no_stream' ? -1 : error.actual);
        }
        if (attempt >= this.maxRetries)
          throw new ConcurrencyRetriesExhausted(`gave up on ${streamName} after ${attempt + 1} lost races`);
        this.metrics?.retry();
        await sleep(conflictBackoff.delayMs(attempt));
      }
    }
  }

  /** The stream as the next decision starts from: assumed new for a create, cached, or read. */
  private async loadFor(streamName: string, plan: Plan, fresh: boolean): Promise<Loaded> {
    if (!fresh && plan.command.type === 'CreateIncident') {
      return {
        state: initialState,
        version: -1,
        position: null,
        landed: new Map(),
        snapshotVersion: -1,
        source: 'new',
      };
    }
    const cached = fresh ? undefined : this.cache.get(streamName);
    if (cached) return { ...cached, landed: new Map(), source: 'cached' };
    return this.load(streamName);
  }

  private result(plan: Plan, version: number, position: string): CommandResult {
    return {
      incidentId: plan.incidentId,
      version,
      position,
      ...(plan.itemId ? { itemId: plan.itemId } : {}),
      replayed: false,
    };
  }

  private envelope(ctx: CommandContext, plan: Plan, event: IncidentEvent, index: number): EventToAppend {
    const metadata = {
      orgId: ctx.orgId,
      incidentId: plan.incidentId,
      actor: ctx.actor,
      occurredAt: plan.occurredAt,
      correlationId: ctx.correlationId,
      ...(ctx.causationId ? { causationId: ctx.causationId } : {}),
      ...(ctx.idempotencyKey ? { idempotencyKey: ctx.idempotencyKey } : {}),
      schemaVersion: CURRENT_SCHEMA_VERSION[event.type],
    };
    return {
      eventId: index === 0 ? plan.eventId : derivedEventId(plan.eventId, index),
      type: event.type,
      data: event.data,
      metadata,
    };
  }

  /** Folds the incident from its latest snapshot and the events after it. */
  async load(streamName: string): Promise<Loaded> {
    const snapshot = await this.snapshots.latest(streamName);
    let state: IncidentState = snapshot?.state ?? initialState;
    const snapshotVersion = snapshot?.version ?? -1;
    let version = snapshotVersion;
    let position = snapshot?.position ?? null;
    let last: Loaded['last'];
    const landed = new Map<string, { version: number; position: string }>();
    // From the snapshot's own event (folded in it already), so the last event is known either way.
    for (const recorded of await this.store.readStream(streamName, { fromVersion: Math.max(0, version) })) {
      last = { eventId: recorded.eventId, type: recorded.type, metadata: recorded.metadata };
      if (recorded.version <= snapshotVersion) continue;
      state = evolve(
        state,
        parseEvent(recorded.type, recorded.data, Number(recorded.metadata.schemaVersion ?? 1)),
      );
      version = recorded.version;
      position = recorded.position;
      landed.set(recorded.eventId, { version, position });
    }
    return { state, version, position, landed, snapshotVersion, ...(last ? { last } : {}), source: 'read' };
  }

  /** Keeps the stream as the append left it for the next write, and snapshots it when one is due. */
  private async remember(
    streamName: string,
    loaded: Loaded,
    events: IncidentEvent[],
    last: EventToAppend,
    appended: { version: number; position: string; head: ChainHead },
  ): Promise<void> {
    const state = events.reduce(evolve, loaded.state);
    let snapshotVersion = loaded.snapshotVersion;
    if (state && appended.version - snapshotVersion >= this.snapshotEvery) {
      const { version, position } = appended;
      if (await this.snapshots.save({ streamName, state, version, position })) snapshotVersion = version;
    }
    this.cache.set(streamName, {
      state,
      version: appended.version,
      position: appended.position,
      snapshotVersion,
      last: {
        eventId: last.eventId,
        type: last.type,
        metadata: { ...last.metadata, hash: appended.head.hash },
      },
    });
  }
}

/** What the next events chain onto: the stream's last event as this decision saw it (src/audit). */
function chainHead(loaded: Loaded): ChainHead {
  return { version: loaded.version, hash: loaded.last ? storedHash(loaded.last) : null };
}

/** Stable ids for the 2nd, 3rd… event of one command, derived from its first. */
function derivedEventId(base: string, index: number): string {
  const hex = createHash('sha256').update(`${base}/${index}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
