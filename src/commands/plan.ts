import { randomUUID } from 'node:crypto';
import type { IncidentCommand } from '../domain/incident/index.ts';
import { newIncidentId } from '../domain/streams.ts';

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

/** A command's result as the handler's run ends it: appended, or a no-op. */
export type RunResult = CommandResult & { outcome: 'ok' | 'noop' };

/** Everything a command needs that is not pure: fixed once, so a retry of it appends the very same events. */
export interface Plan {
  incidentId: string;
  command: IncidentCommand;
  eventId: string;
  occurredAt: string;
  itemId?: string;
}

/** Fixes the new ids and the time of `input`, for the incident `incidentId` (a new one when null). */
export function planCommand(incidentId: string | null, input: CommandInput, now: Date): Plan {
  const occurredAt = now.toISOString();
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
