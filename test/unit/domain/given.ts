import { incidentDecider, type IncidentEvent, type Status } from '../../../src/domain/incident/index.ts';
import { deciderSpecification } from '../../support/decider-specification.ts';
import { checkoutIncident } from '../../support/incidents.ts';

/** Given these events (folded from the initial state), when this command, then these events (or an error). */
export const { given } = deciderSpecification(incidentDecider);

export const created: IncidentEvent = {
  type: 'INCIDENT_CREATED',
  data: { ...checkoutIncident, correlationKeys: [] },
};

/** The shortest history that leaves a new incident in `status`. */
export function historyTo(status: Status): IncidentEvent[] {
  switch (status) {
    case 'OPEN':
      return [created];
    case 'RESOLVED':
      return [created, { type: 'INCIDENT_RESOLVED', data: { from: 'OPEN' } }];
    default:
      return [created, { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: status } }];
  }
}

/** The lifecycle exactly as EVENTS.md writes it, kept apart from the code it checks. */
export const LIFECYCLE_SPEC: Record<Status, Status[]> = {
  OPEN: ['INVESTIGATING', 'MITIGATED', 'RESOLVED', 'CANCELLED'],
  INVESTIGATING: ['MITIGATED', 'RESOLVED', 'CANCELLED'],
  MITIGATED: ['INVESTIGATING', 'RESOLVED'],
  RESOLVED: ['INVESTIGATING'],
  CANCELLED: [],
};
