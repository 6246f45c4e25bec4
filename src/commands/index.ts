import { createHash, randomUUID } from 'node:crypto';
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
  type IncidentCommand,
  type IncidentEvent,
  type IncidentState,
} from '../domain/incident/index.ts';
import { incidentStreamName, newIncidentId } from '../domain/streams.ts';
import { WrongExpectedVersion, type EventStore, type EventToAppend } from '../eventstore/port.ts';
import { conflictBackoff, sleep } from '../retry.ts';
import { StreamCache, type CachedStream } from './stream-cache.ts';

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

type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A command as a client states it: the service adds the new ids (and the default signal time). */
export type CommandInput =
  | Without<
      Exclude<IncidentCommand, { type: 'RecordAction' | 'IngestSignal' | 'RecordSloViolation' }>,
      'incidentId'
    >
  | Omit<Extract<IncidentCommand, { type: 'RecordAction' }>, 'actionId'>
  | (Omit<Extract<IncidentCommand, { type: 'IngestSignal' }>, 'signalId' | 'ts'> & { ts?: string })
  | Omit<Extract<IncidentCommand, { type: 'RecordSloViolation' }>, 'violationId'>;

export interface CommandResult {
  incidentId: string;
  /** The incident's version after the command (unchanged for a no-op). */
  version: number;
  /** Global position of the incident's last event. */
  position: string;
  /** Id of the item the command added: actionId, signalId or violationId. */
  itemId?: string;
  /** True when an idempotency key made this a replay of an earlier identical request. */
  replayed: boolean;
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

/** The idempotency key was used before for a different request. */
export class IdempotencyKeyReused extends Error {
  override readonly name = 'IdempotencyKeyReused';
  constructor(readonly key: string) {
    super(`Idempotency-Key ${key} was already used for a different request`);
  }
}

/** Every retry lost its race: the stream is too hot right now. */
export class ConcurrencyRetriesExhausted extends Error {
  override readonly name = 'ConcurrencyRetriesExhausted';
}

/** Everything a command needs that is not pure: fixed once, so a retry of it appends the very same events. */
export interface Plan {
  incidentId: string;
  command: IncidentCommand;
  eventId: string;
  occurredAt: string;
  itemId?: string;
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

/** How long a duplicate waits for the first request with its idempotency key to answer, polling this often. */
const IN_FLIGHT_WAIT_MS = 5_000;
const IN_FLIGHT_POLL_MS = 20;

/** Bump when IncidentState changes shape: older snapshots are then ignored. */
const SNAPSHOT_SCHEMA_VERSION = 1;

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
  private readonly database: Database;
  private readonly metrics: CommandMetrics | undefined;
  private readonly snapshotEvery: number;
  private readonly maxRetries: number;
  private readonly clock: () => Date;
  private readonly cache: StreamCache;
  /** Idempotent requests running in this process, by org and key; and keys whose last attempt here failed. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly abandoned = new Set<string>();

  constructor(options: IncidentCommandsOptions) {
    this.store = options.store;
    this.database = options.database;
    this.metrics = options.metrics;
    this.snapshotEvery = options.snapshotEvery ?? 100;
    this.maxRetries = options.maxRetries ?? 10;
    this.clock = options.clock ?? (() => new Date());
    this.cache = new StreamCache(options.cachedStreams ?? 10_000);
  }

  async execute(ctx: CommandContext, incidentId: string | null, input: CommandInput): Promise<CommandResult> {
    try {
      const result = ctx.idempotencyKey
        ? await this.executeOnce(ctx, ctx.idempotencyKey, () => this.plan(incidentId, input))
        : await this.run(ctx, this.plan(incidentId, input));
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

  private plan(incidentId: string | null, input: CommandInput): Plan {
    const occurredAt = this.clock().toISOString();
    const id = incidentId ?? newIncidentId();
    const eventId = randomUUID();
    switch (input.type) {
      case 'RecordAction': {
        const actionId = `act_${randomUUID()}`;
        return { incidentId: id, eventId, occurredAt, itemId: actionId, command: { ...input, actionId } };
      }
      case 'IngestSignal': {
        const signalId = `sig_${randomUUID()}`;
        return {
          incidentId: id,
          eventId,
          occurredAt,
          itemId: signalId,
          command: { ...input, signalId, ts: input.ts ?? occurredAt },
        };
      }
      case 'RecordSloViolation': {
        const violationId = `slo_${randomUUID()}`;
        return {
          incidentId: id,
          eventId,
          occurredAt,
          itemId: violationId,
          command: { ...input, violationId },
        };
      }
      case 'CreateIncident':
        return { incidentId: id, eventId, occurredAt, command: { ...input, incidentId: id } };
      default:
        return { incidentId: id, eventId, occurredAt, command: input };
    }
  }

  /**
   * With an idempotency key, the plan is stored before anything is appended. A repeat of the same
   * request returns the stored result, or, if the first attempt died before finishing, runs the
   * stored plan again: its events carry the same ids, so they land at most once.
   */
  private async executeOnce(
    ctx: CommandContext,
    key: string,
    plan: () => Plan,
  ): Promise<CommandResult & { outcome: 'ok' | 'noop' }> {
    // Duplicates in this process run one after another: each later one finds the answer stored.
    const id = `${ctx.orgId}\n${key}`;
    const earlier = this.inFlight.get(id);
    const attempt = (async () => {
      await earlier?.catch(() => {});
      try {
        const result = await this.reserveAndRun(ctx, key, id, plan);
        this.abandoned.delete(id);
        return result;
      } catch (error) {
        this.abandoned.add(id);
        if (this.abandoned.size > 10_000) this.abandoned.delete(this.abandoned.values().next().value!);
        throw error;
      }
    })();
    this.inFlight.set(id, attempt);
    try {
      return await attempt;
    } finally {
      if (this.inFlight.get(id) === attempt) this.inFlight.delete(id);
    }
  }

  private async reserveAndRun(
    ctx: CommandContext,
    key: string,
    id: string,
    plan: () => Plan,
  ): Promise<CommandResult & { outcome: 'ok' | 'noop' }> {
    const fingerprint = ctx.requestFingerprint ?? '';
    const candidate = plan();
    const db = this.database.db;
    const inserted = await db
      .insertInto('idempotency_keys')
      .values({ org_id: ctx.orgId, key, request_hash: fingerprint, reservation: JSON.stringify(candidate) })
      .onConflict((conflict) => conflict.columns(['org_id', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
    let reserved = candidate;
    if (!inserted) {
      const readRow = () =>
        db
          .selectFrom('idempotency_keys')
          .select(['request_hash', 'reservation', 'response'])
          .where('org_id', '=', ctx.orgId)
          .where('key', '=', key)
          .executeTakeFirstOrThrow();
      let row = await readRow();
      if (row.request_hash !== fingerprint) throw new IdempotencyKeyReused(key);
      // Another process may be landing it (duplicates in this one waited above): wait while its plan
      // is fresh, unless this process saw that attempt fail. Only a dead attempt's plan runs again.
      const planned = Date.parse((row.reservation as Plan).occurredAt);
      while (!row.response && !this.abandoned.has(id) && Date.now() < planned + IN_FLIGHT_WAIT_MS) {
        await sleep(IN_FLIGHT_POLL_MS);
        row = await readRow();
      }
      if (row.response) return { ...(row.response as CommandResult), replayed: true, outcome: 'ok' };
      reserved = row.reservation as Plan;
    }
    // A stored plan may have landed already: only a read of the stream can tell.
    const result = await this.run(ctx, reserved, reserved !== candidate);
    const stored: CommandResult = { ...withoutOutcome(result), replayed: false };
    await db
      .updateTable('idempotency_keys')
      .set({ response: JSON.stringify(stored) })
      .where('org_id', '=', ctx.orgId)
      .where('key', '=', key)
      .execute();
    return result;
  }

  /**
   * Load → decide → append, again on a lost race. A create assumes its new stream does not exist and
   * other writes start from this process's cached view: the append's expected version checks either
   * guess, and any answer other than an append (a no-op, a refusal) is decided again on a fresh read.
   */
  private async run(
    ctx: CommandContext,
    plan: Plan,
    mustRead = false,
  ): Promise<CommandResult & { outcome: 'ok' | 'noop' }> {
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
    const snapshot = await this.database.db
      .selectFrom('incident_snapshots')
      .select(['version', 'position', 'state'])
      .where('stream_name', '=', streamName)
      .where('schema_version', '=', SNAPSHOT_SCHEMA_VERSION)
      .executeTakeFirst();
    let state = snapshot ? (snapshot.state as IncidentState) : initialState;
    const snapshotVersion = snapshot ? Number(snapshot.version) : -1;
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
    if (appended.version - snapshotVersion >= this.snapshotEvery) {
      if (await this.snapshot(streamName, state, appended)) snapshotVersion = appended.version;
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

  private async snapshot(
    streamName: string,
    state: IncidentState,
    appended: { version: number; position: string },
  ): Promise<boolean> {
    const row = {
      stream_name: streamName,
      version: appended.version,
      position: appended.position,
      schema_version: SNAPSHOT_SCHEMA_VERSION,
      state: JSON.stringify(state),
    };
    // A snapshot is only a cache: failing to write one must not fail the command that already landed.
    return this.database.db
      .insertInto('incident_snapshots')
      .values(row)
      .onConflict((conflict) => conflict.column('stream_name').doUpdateSet(row))
      .execute()
      .then(
        () => true,
        () => false,
      );
  }
}

/** What the next events chain onto: the stream's last event as this decision saw it (src/audit). */
function chainHead(loaded: Loaded): ChainHead {
  return { version: loaded.version, hash: loaded.last ? storedHash(loaded.last) : null };
}

function withoutOutcome(result: CommandResult & { outcome?: string }): CommandResult {
  const { outcome: _outcome, ...rest } = result;
  return rest;
}

/** Stable ids for the 2nd, 3rd… event of one command, derived from its first. */
function derivedEventId(base: string, index: number): string {
  const hex = createHash('sha256').update(`${base}/${index}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
