import type { IncidentsTable } from '../src/db/schema.ts';
import type { Severity } from '../src/domain/incident/events.ts';
import { withItem } from '../src/domain/incident/state.ts';
import { UnprojectableEvent, type ProjectedEvent, type ProjectedRow, type Projector } from './projector.ts';

/** A row of `incidents`. */
export type IncidentRow = ProjectedRow<IncidentsTable>;

/** SEV1 sorts first. */
const SEVERITY_RANK: Record<Severity, number> = { SEV1: 1, SEV2: 2, SEV3: 3, SEV4: 4 };

function created(event: Extract<ProjectedEvent, { type: 'INCIDENT_CREATED' }>): IncidentRow {
  const data = event.data;
  return {
    org_id: event.orgId,
    id: event.incidentId,
    project_id: data.projectId,
    title: data.title,
    description: data.description ?? null,
    service_name: data.serviceName,
    status: 'OPEN',
    severity: data.severity,
    severity_rank: SEVERITY_RANK[data.severity],
    environment: data.environment,
    detected_by: data.detectedBy ?? null,
    primary_signal_id: null,
    runbook_path: data.runbookPath ?? null,
    external_refs: [],
    correlation_keys: [...new Set(data.correlationKeys)],
    tags: [...new Set(data.tags)],
    created_by_type: event.actor.type,
    created_by_ref: event.actor.ref,
    created_at: event.occurredAt,
    updated_at: event.occurredAt,
    acknowledged_at: null,
    mitigated_at: null,
    resolved_at: null,
    cancelled_at: null,
    version: event.version,
  };
}

/** The fields an event changes, besides version and updated_at which every event moves. */
function changes(row: IncidentRow, event: ProjectedEvent): Partial<IncidentRow> {
  const at = event.occurredAt;
  switch (event.type) {
    case 'INCIDENT_CREATED':
      throw new UnprojectableEvent(`incident ${event.incidentId} created twice`);
    case 'INCIDENT_UPDATED': {
      const { changes: c } = event.data;
      return {
        ...(c.title !== undefined && { title: c.title }),
        ...(c.description !== undefined && { description: c.description }),
        ...(c.serviceName !== undefined && { service_name: c.serviceName }),
        ...(c.environment !== undefined && { environment: c.environment }),
        ...(c.runbookPath !== undefined && { runbook_path: c.runbookPath }),
        ...(c.projectId !== undefined && { project_id: c.projectId }),
        ...(c.detectedBy !== undefined && { detected_by: c.detectedBy }),
      };
    }
    case 'INCIDENT_STATUS_CHANGED': {
      const { to } = event.data;
      return {
        status: to,
        ...(row.status === 'OPEN' && row.acknowledged_at === null && { acknowledged_at: at }),
        ...(to === 'MITIGATED' && row.mitigated_at === null && { mitigated_at: at }),
        ...(to === 'CANCELLED' && { cancelled_at: at }),
        ...(row.status === 'RESOLVED' && { resolved_at: null }),
      };
    }
    case 'INCIDENT_RESOLVED':
      return {
        status: 'RESOLVED',
        resolved_at: at,
        ...(row.status === 'OPEN' && row.acknowledged_at === null && { acknowledged_at: at }),
      };
    case 'INCIDENT_SEVERITY_CHANGED':
      return { severity: event.data.to, severity_rank: SEVERITY_RANK[event.data.to] };
    case 'INCIDENT_TAG_ADDED':
      return { tags: withItem(row.tags, event.data.tag) };
    case 'INCIDENT_TAG_REMOVED':
      return { tags: row.tags.filter((tag) => tag !== event.data.tag) };
    case 'INCIDENT_SIGNAL_INGESTED': {
      const key = event.data.correlationKey;
      return {
        primary_signal_id: row.primary_signal_id ?? event.data.signalId,
        ...(key !== undefined && { correlation_keys: withItem(row.correlation_keys, key) }),
      };
    }
    case 'INCIDENT_LINKED_TO_TICKET': {
      const { system, key, url } = event.data;
      // The domain ignores a second link of the same ticket; so does the read model.
      if (row.external_refs.some((ref) => ref.system === system && ref.key === key)) return {};
      return { external_refs: [...row.external_refs, { system, key, url: url ?? null, linkedAt: at }] };
    }
    case 'INCIDENT_NOTE_ADDED':
    case 'INCIDENT_PLAYBOOK_ACTION_EXECUTED':
    case 'INCIDENT_SLO_VIOLATION_RECORDED':
      return {};
  }
}

/** `incidents`: one row per incident, the fold of its whole stream. */
export const incidentsProjector: Projector<IncidentRow> = {
  name: 'incidents',
  table: 'incidents',
  keyColumns: ['org_id', 'id'],
  insertsOnly: false,
  rowKey: (event) => [event.orgId, event.incidentId],
  // An incident's row comes from its stream alone, and version 0 is that stream's first event.
  startsRow: (event) => event.type === 'INCIDENT_CREATED' && event.version === 0,
  evolve(row, event) {
    if (event.type === 'INCIDENT_CREATED' && row === undefined) return created(event);
    if (row === undefined)
      throw new UnprojectableEvent(`${event.type} for incident ${event.incidentId}, which was never created`);
    // Not `{ ...row, ...changes, updated_at, … }`: V8 builds that shape many times slower.
    return Object.assign({}, row, changes(row, event), {
      updated_at: event.occurredAt,
      version: event.version,
    });
  },
};
