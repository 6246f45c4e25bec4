import { z } from 'zod';
import type { Database } from '../db/database.ts';
import type { IncidentCommand, IncidentCommandType } from '../domain/incident/index.ts';
import { sleep } from '../retry.ts';
import type { CommandResult, Plan, RunResult } from './plan.ts';

/** The idempotency key was used before for a different request. */
export class IdempotencyKeyReused extends Error {
  override readonly name = 'IdempotencyKeyReused';
  constructor(readonly key: string) {
    super(`Idempotency-Key ${key} was already used for a different request`);
  }
}

/** How long a duplicate waits for the first request with its idempotency key to answer, polling this often. */
const IN_FLIGHT_WAIT_MS = 5_000;
const IN_FLIGHT_POLL_MS = 20;

/** Runs a plan; `stored` says it was read back from an earlier attempt, which may have landed it. */
export type RunPlan = (plan: Plan, stored: boolean) => Promise<RunResult>;

/**
 * Requests with an idempotency key (`idempotency_keys`): the plan is stored before anything is
 * appended. A repeat of the same request returns the stored result, or, if the first attempt died
 * before finishing, runs the stored plan again: its events carry the same ids, so they land at most once.
 */
export class IdempotentRequests {
  /** Requests running in this process, by org and key; and keys whose last attempt here failed. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly abandoned = new Set<string>();

  constructor(private readonly database: Database) {}

  async once(
    request: { orgId: string; key: string; fingerprint: string },
    plan: () => Plan,
    run: RunPlan,
  ): Promise<RunResult> {
    // Duplicates in this process run one after another: each later one finds the answer stored.
    const id = `${request.orgId}\n${request.key}`;
    const earlier = this.inFlight.get(id);
    const attempt = (async () => {
      await earlier?.catch(() => {});
      try {
        const result = await this.reserveAndRun(request, id, plan, run);
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
    request: { orgId: string; key: string; fingerprint: string },
    id: string,
    plan: () => Plan,
    run: RunPlan,
  ): Promise<RunResult> {
    const { orgId, key, fingerprint } = request;
    const candidate = plan();
    let reserved = candidate;
    if (!(await this.reserve(orgId, key, fingerprint, candidate))) {
      let row = await this.read(orgId, key);
      if (row.requestHash !== fingerprint) throw new IdempotencyKeyReused(key);
      // Another process may be landing it (duplicates in this one waited above): wait while its plan
      // is fresh, unless this process saw that attempt fail. Only a dead attempt's plan runs again.
      const planned = Date.parse(row.plan.occurredAt);
      while (!row.response && !this.abandoned.has(id) && Date.now() < planned + IN_FLIGHT_WAIT_MS) {
        await sleep(IN_FLIGHT_POLL_MS);
        row = await this.read(orgId, key);
      }
      if (row.response) return { ...row.response, replayed: true, outcome: 'ok' };
      reserved = row.plan;
    }
    // A stored plan may have landed already: only a read of the stream can tell.
    const result = await run(reserved, reserved !== candidate);
    const { outcome: _outcome, ...answer } = result;
    await this.answer(orgId, key, { ...answer, replayed: false });
    return result;
  }

  /** Stores `plan` under the key; false when the key is taken already. */
  private async reserve(orgId: string, key: string, requestHash: string, plan: Plan): Promise<boolean> {
    const inserted = await this.database.db
      .insertInto('idempotency_keys')
      .values({ org_id: orgId, key, request_hash: requestHash, reservation: JSON.stringify(plan) })
      .onConflict((conflict) => conflict.columns(['org_id', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  private async read(orgId: string, key: string): Promise<StoredRequest> {
    const row = await this.database.db
      .selectFrom('idempotency_keys')
      .select(['request_hash', 'reservation', 'response'])
      .where('org_id', '=', orgId)
      .where('key', '=', key)
      .executeTakeFirstOrThrow();
    return {
      requestHash: row.request_hash,
      plan: StoredPlan.parse(row.reservation),
      response: row.response ? StoredResult.parse(row.response) : null,
    };
  }

  private async answer(orgId: string, key: string, result: CommandResult): Promise<void> {
    await this.database.db
      .updateTable('idempotency_keys')
      .set({ response: JSON.stringify(result) })
      .where('org_id', '=', orgId)
      .where('key', '=', key)
      .execute();
  }
}

/** One `idempotency_keys` row, parsed. */
interface StoredRequest {
  requestHash: string;
  plan: Plan;
  /** The first request's answer, once it has one. */
  response: CommandResult | null;
}

/** Every command type, so that a new one cannot be left out of the check below. */
const COMMAND_TYPES: Record<IncidentCommandType, true> = {
  CreateIncident: true,
  UpdateIncident: true,
  ChangeStatus: true,
  ChangeSeverity: true,
  AddTag: true,
  RemoveTag: true,
  LinkTicket: true,
  RecordAction: true,
  IngestSignal: true,
  IngestAlerts: true,
  RecordSloViolation: true,
};

/**
 * A stored plan is one this module wrote from a typed `Plan`: its command is told apart by its
 * type, and its fields are as the handler planned them (repeating each command's shape here would
 * be a second copy of `domain/incident/commands.ts`).
 */
const StoredCommand = z.custom<IncidentCommand>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    'type' in value &&
    typeof value.type === 'string' &&
    Object.hasOwn(COMMAND_TYPES, value.type),
  'not an incident command',
);

/** A plan as stored (with an idempotency key) and read back. */
export const StoredPlan: z.ZodType<Plan> = z.strictObject({
  incidentId: z.string(),
  command: StoredCommand,
  eventId: z.string(),
  occurredAt: z.string(),
  itemId: z.string().optional(),
});

/** A result as stored for an idempotency key's replay. */
export const StoredResult: z.ZodType<CommandResult> = z.strictObject({
  incidentId: z.string(),
  version: z.number().int(),
  position: z.string(),
  itemId: z.string().optional(),
  replayed: z.boolean(),
});
