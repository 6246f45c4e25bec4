import type { Status } from './events.ts';

/** Every code a domain error carries; the HTTP edge maps each one explicitly (http/errors.ts). */
export type DomainErrorCode = 'NOT_FOUND' | 'INCIDENT_EXISTS' | 'INVALID_TRANSITION';

/** A command the incident refuses. `code` is what the HTTP edge maps to a status. */
export abstract class DomainError extends Error {
  abstract readonly code: DomainErrorCode;
}

export class IncidentNotFound extends DomainError {
  override readonly name = 'IncidentNotFound';
  readonly code = 'NOT_FOUND';
  constructor(readonly incidentId?: string) {
    super(incidentId ? `incident ${incidentId} not found` : 'incident not found');
  }
}

export class IncidentAlreadyExists extends DomainError {
  override readonly name = 'IncidentAlreadyExists';
  readonly code = 'INCIDENT_EXISTS';
  constructor(readonly incidentId?: string) {
    super(incidentId ? `incident ${incidentId} already exists` : 'incident already exists');
  }
}

export class InvalidTransition extends DomainError {
  override readonly name = 'InvalidTransition';
  readonly code = 'INVALID_TRANSITION';
  constructor(
    readonly from: Status,
    readonly to: Status,
  ) {
    super(`an incident cannot move from ${from} to ${to}`);
  }
}
