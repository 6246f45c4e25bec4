import type { ActionsTable } from '../src/db/schema.ts';
import type { TimelineActionKind } from '../src/domain/incident/events.ts';
import { UnprojectableEvent, type ProjectedEvent, type ProjectedRow, type Projector } from './projector.ts';

/** A row of `incident_actions`: the incident's timeline. */
export type ActionRow = ProjectedRow<ActionsTable>;

interface TimelineEntry {
  id: string;
  kind: TimelineActionKind;
  label: string;
  details: string | null;
}

/** Id of an entry the service writes for its own event: derived from the event id, so a replay gives the same one. */
export function serviceActionId(eventId: string): string {
  return `act_${eventId}`;
}

/** The timeline entry an event makes, or null when it makes none. */
function timelineEntry(event: ProjectedEvent): TimelineEntry | null {
  const id = serviceActionId(event.eventId);
  switch (event.type) {
    case 'INCIDENT_NOTE_ADDED':
      return {
        id: event.data.actionId,
        kind: 'NOTE',
        label: event.data.label,
        details: event.data.details ?? null,
      };
    case 'INCIDENT_PLAYBOOK_ACTION_EXECUTED':
      return {
        id: event.data.actionId,
        kind: event.data.actionKind,
        label: event.data.label,
        details: event.data.details ?? null,
      };
    case 'INCIDENT_STATUS_CHANGED':
      return {
        id,
        kind: 'STATUS_CHANGE',
        label: `Status ${event.data.from} → ${event.data.to}`,
        details: event.data.reason ?? null,
      };
    case 'INCIDENT_RESOLVED':
      return {
        id,
        kind: 'STATUS_CHANGE',
        label: `Status ${event.data.from} → RESOLVED`,
        details: event.data.reason ?? null,
      };
    case 'INCIDENT_SEVERITY_CHANGED':
      return {
        id,
        kind: 'SEVERITY_CHANGE',
        label: `Severity ${event.data.from} → ${event.data.to}`,
        details: event.data.reason ?? null,
      };
    case 'INCIDENT_LINKED_TO_TICKET':
      return {
        id,
        kind: 'TICKET_LINK',
        label: `Linked ${event.data.system} ${event.data.key}`,
        details: event.data.url ?? null,
      };
    default:
      return null;
  }
}

/** `incident_actions`: notes and playbook actions, and an entry for each status, severity and ticket event. */
export const actionsProjector: Projector<ActionRow> = {
  name: 'actions',
  table: 'incident_actions',
  keyColumns: ['org_id', 'incident_id', 'id'],
  insertsOnly: true,
  rowKey(event) {
    const entry = timelineEntry(event);
    return entry === null ? null : [event.orgId, event.incidentId, entry.id];
  },
  evolve(row, event) {
    const entry = timelineEntry(event);
    if (entry === null) throw new UnprojectableEvent(`${event.type} makes no timeline entry`);
    if (row !== undefined) throw new UnprojectableEvent(`action ${entry.id} recorded twice`);
    return {
      org_id: event.orgId,
      incident_id: event.incidentId,
      id: entry.id,
      action_kind: entry.kind,
      label: entry.label,
      details: entry.details,
      actor_type: event.actor.type,
      actor_ref: event.actor.ref,
      ts: event.occurredAt,
      version: event.version,
    };
  },
};
