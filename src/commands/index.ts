import { createHash, randomUUID } from 'node:crypto';
import type { Database } from '../db/database.ts';
import {
  CURRENT_SCHEMA_VERSION,
  DomainError,
  IncidentNotFound,
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
interface Plan {
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
}

/** Load → decide → append, with retries on lost races, idempotency keys and snapshots. */
export class IncidentCommands {
  private readonly store: EventStore;
  private readonly database: Database;
  private readonly metrics: CommandMetrics | undefined;
  private readonly snapshotEvery: number;
  private readonly maxRetries: number;
  private readonly clock: () => Date;
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
        await new Promise((resolve) => setTimeout(resolve, IN_FLIGHT_POLL_MS));
        row = await readRow();
      }
      if (row.response) return { ...(row.response as CommandResult), replayed: true, outcome: 'ok' };
      reserved = row.reservation as Plan;
    }
    const result = await this.run(ctx, reserved);
    const stored: CommandResult = { ...withoutOutcome(result), replayed: false };
    await db
      .updateTable('idempotency_keys')
      .set({ response: JSON.stringify(stored) })
      .where('org_id', '=', ctx.orgId)
      .where('key', '=', key)
      .execute();
    return result;
  }

  private async run(ctx: CommandContext, plan: Plan): Promise<CommandResult & { outcome: 'ok' | 'noop' }> {
    const streamName = incidentStreamName(ctx.orgId, plan.incidentId);
    for (let attempt = 0; ; attempt++) {
      const loaded = await this.load(streamName);
      const done = loaded.landed.get(plan.eventId);
      if (done) return { ...this.result(plan, done.version, done.position), outcome: 'ok' };
      if (loaded.state === initialState && plan.command.type !== 'CreateIncident')
        throw new IncidentNotFound(plan.incidentId);
      if (ctx.ifMatch !== undefined && !matchesIfMatch(ctx.ifMatch, loaded.version))
        throw new VersionConflict(ctx.ifMatch, loaded.version);

      const events = decide(plan.command, loaded.state);
      if (events.length === 0) {
        return {
          incidentId: plan.incidentId,
          version: loaded.version,
          position: loaded.position!,
          replayed: false,
          outcome: 'noop',
        };
      }
      const started = performance.now();
      try {
        const appended = await this.store.append(
          streamName,
          events.map((event, index) => this.envelope(ctx, plan, event, index)),
          loaded.version === -1 ? 'no_stream' : loaded.version,
        );
        this.metrics?.appendDuration((performance.now() - started) / 1000);
        await this.maybeSnapshot(streamName, loaded, events, appended);
        return { ...this.result(plan, appended.version, appended.position), outcome: 'ok' };
      } catch (error) {
        if (!(error instanceof WrongExpectedVersion)) throw error;
        if (ctx.ifMatch !== undefined) {
          throw new VersionConflict(ctx.ifMatch, error.actual === 'no_stream' ? -1 : error.actual);
        }
        if (attempt >= this.maxRetries)
          throw new ConcurrencyRetriesExhausted(`gave up on ${streamName} after ${attempt + 1} lost races`);
        this.metrics?.retry();
        // Jittered backoff, so racing writers do not collide again in lockstep.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(100, 5 * 2 ** attempt)));
      }
    }
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
    let version = snapshot ? Number(snapshot.version) : -1;
    let position = snapshot?.position ?? null;
    const landed = new Map<string, { version: number; position: string }>();
    for (const recorded of await this.store.readStream(streamName, { fromVersion: version + 1 })) {
      state = evolve(
        state,
        parseEvent(recorded.type, recorded.data, Number(recorded.metadata.schemaVersion ?? 1)),
      );
      version = recorded.version;
      position = recorded.position;
      landed.set(recorded.eventId, { version, position });
    }
    return { state, version, position, landed };
  }

  private async maybeSnapshot(
    streamName: string,
    loaded: Loaded,
    events: IncidentEvent[],
    appended: { version: number; position: string },
  ): Promise<void> {
    const sinceSnapshot = appended.version - (loaded.version - loaded.landed.size);
    if (sinceSnapshot < this.snapshotEvery) return;
    const state = events.reduce(evolve, loaded.state);
    const row = {
      stream_name: streamName,
      version: appended.version,
      position: appended.position,
      schema_version: SNAPSHOT_SCHEMA_VERSION,
      state: JSON.stringify(state),
    };
    // A snapshot is only a cache: failing to write one must not fail the command that already landed.
    await this.database.db
      .insertInto('incident_snapshots')
      .values(row)
      .onConflict((conflict) => conflict.column('stream_name').doUpdateSet(row))
      .execute()
      .catch(() => {});
  }
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
