import type { IncidentEvent, Severity, Status } from './events.ts';

export interface TicketRef {
  system: string;
  key: string;
}

/** What decide needs to know about an incident that exists. Plain JSON: it is stored as a snapshot. */
export interface ExistingIncident {
  status: Status;
  severity: Severity;
  projectId: string;
  title: string;
  description: string | null;
  serviceName: string;
  environment: string;
  detectedBy: string | null;
  runbookPath: string | null;
  tags: string[];
  correlationKeys: string[];
  /** A ticket's identity is its system and key. */
  tickets: TicketRef[];
  signalCount: number;
}

/** `null` until the incident is created. */
export type IncidentState = ExistingIncident | null;

export const initialState: IncidentState = null;

/** The lifecycle (EVENTS.md): where each status may move. */
export const ALLOWED_TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = {
  OPEN: ['INVESTIGATING', 'MITIGATED', 'RESOLVED', 'CANCELLED'],
  INVESTIGATING: ['MITIGATED', 'RESOLVED', 'CANCELLED'],
  MITIGATED: ['INVESTIGATING', 'RESOLVED'],
  RESOLVED: ['INVESTIGATING'],
  CANCELLED: [],
};

export function canTransition(from: Status, to: Status): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}

export function hasTicket(tickets: readonly TicketRef[], ticket: TicketRef): boolean {
  return tickets.some((t) => t.system === ticket.system && t.key === ticket.key);
}

/** `list` with `item` at the end unless it is there already; always a new array. */
export function withItem(list: readonly string[], item: string): string[] {
  return list.includes(item) ? [...list] : [...list, item];
}

/** Folds one event into the state. Total: an event that cannot apply leaves the state as it is. */
export function evolve(state: IncidentState, event: IncidentEvent): IncidentState {
  if (event.type === 'INCIDENT_CREATED') {
    const data = event.data;
    return {
      status: 'OPEN',
      severity: data.severity,
      projectId: data.projectId,
      title: data.title,
      description: data.description ?? null,
      serviceName: data.serviceName,
      environment: data.environment,
      detectedBy: data.detectedBy ?? null,
      runbookPath: data.runbookPath ?? null,
      tags: [...new Set(data.tags)],
      correlationKeys: [...new Set(data.correlationKeys)],
      tickets: [],
      signalCount: 0,
    };
  }
  // Only a create can start an incident; anything before it has nothing to apply to.
  if (state === null) return state;

  switch (event.type) {
    case 'INCIDENT_UPDATED': {
      const next = { ...state };
      const { changes } = event.data;
      if (changes.title !== undefined) next.title = changes.title;
      if (changes.description !== undefined) next.description = changes.description;
      if (changes.serviceName !== undefined) next.serviceName = changes.serviceName;
      if (changes.environment !== undefined) next.environment = changes.environment;
      if (changes.runbookPath !== undefined) next.runbookPath = changes.runbookPath;
      if (changes.projectId !== undefined) next.projectId = changes.projectId;
      if (changes.detectedBy !== undefined) next.detectedBy = changes.detectedBy;
      return next;
    }
    case 'INCIDENT_STATUS_CHANGED':
      return { ...state, status: event.data.to };
    case 'INCIDENT_RESOLVED':
      return { ...state, status: 'RESOLVED' };
    case 'INCIDENT_SEVERITY_CHANGED':
      return { ...state, severity: event.data.to };
    case 'INCIDENT_TAG_ADDED':
      return { ...state, tags: withItem(state.tags, event.data.tag) };
    case 'INCIDENT_TAG_REMOVED':
      return { ...state, tags: state.tags.filter((tag) => tag !== event.data.tag) };
    case 'INCIDENT_LINKED_TO_TICKET': {
      const ticket = { system: event.data.system, key: event.data.key };
      return hasTicket(state.tickets, ticket) ? state : { ...state, tickets: [...state.tickets, ticket] };
    }
    case 'INCIDENT_SIGNAL_INGESTED': {
      const key = event.data.correlationKey;
      return {
        ...state,
        signalCount: state.signalCount + 1,
        correlationKeys: key === undefined ? state.correlationKeys : withItem(state.correlationKeys, key),
      };
    }
    case 'INCIDENT_NOTE_ADDED':
    case 'INCIDENT_PLAYBOOK_ACTION_EXECUTED':
    case 'INCIDENT_SLO_VIOLATION_RECORDED':
      // Timeline and SLO rows live in the read models; decide needs nothing from them.
      return state;
  }
}
