import { IncidentAlreadyExists, IncidentNotFound, InvalidTransition } from './errors.ts';
import type {
  AlertStatus,
  ClientActionKind,
  IncidentChanges,
  IncidentEvent,
  Severity,
  SignalType,
  Status,
} from './events.ts';
import { canTransition, evolve, hasTicket, type ExistingIncident, type IncidentState } from './state.ts';

export interface CreateIncident {
  type: 'CreateIncident';
  incidentId: string;
  projectId: string;
  title: string;
  serviceName: string;
  severity: Severity;
  environment: string;
  detectedBy?: string;
  description?: string;
  runbookPath?: string;
  tags?: string[];
  initialCorrelationKey?: string;
}

export interface UpdateIncident {
  type: 'UpdateIncident';
  changes: IncidentChanges;
}

export interface ChangeStatus {
  type: 'ChangeStatus';
  newStatus: Status;
  reason?: string;
}

export interface ChangeSeverity {
  type: 'ChangeSeverity';
  newSeverity: Severity;
  reason?: string;
}

export interface AddTag {
  type: 'AddTag';
  tag: string;
}

export interface RemoveTag {
  type: 'RemoveTag';
  tag: string;
}

export interface LinkTicket {
  type: 'LinkTicket';
  system: string;
  key: string;
  url?: string;
}

export interface RecordAction {
  type: 'RecordAction';
  actionId: string;
  actionKind: ClientActionKind;
  label: string;
  details?: string;
}

export interface IngestSignal {
  type: 'IngestSignal';
  signalId: string;
  signalType: SignalType;
  source: string;
  summary: string;
  serviceName?: string;
  environment?: string;
  correlationKey?: string;
  traceId?: string;
  fingerprint?: string;
  status?: AlertStatus;
  data?: Record<string, unknown>;
  /** ISO-8601. */
  ts: string;
}

/**
 * What one alert notification does to its incident, in one append: open it (or reopen it), record
 * the alerts as signals, raise the severity, acknowledge or resolve it. Each step is checked
 * against the incident as it is when the command runs, so running it late or twice is safe.
 */
export interface IngestAlerts {
  type: 'IngestAlerts';
  /** Opens the incident with these fields when it does not exist yet. */
  create?: Omit<CreateIncident, 'type' | 'incidentId'>;
  /** RESOLVED → INVESTIGATING (the `reopenWithin` rule). */
  reopen?: boolean;
  /** OPEN → INVESTIGATING (Events v2 `acknowledge`); any other status is left alone. */
  acknowledge?: boolean;
  signals: Omit<IngestSignal, 'type'>[];
  /** Raised to this severity when it is more severe than the incident's; never lowered. */
  raiseSeverityTo?: Severity;
  /** Resolves the incident with this reason unless it is RESOLVED or CANCELLED already. */
  resolveReason?: string;
}

export interface RecordSloViolation {
  type: 'RecordSloViolation';
  violationId: string;
  sloId: string;
  /** ISO-8601. */
  windowStart: string;
  /** ISO-8601. */
  windowEnd: string;
  errorBudgetConsumed: number;
  thresholdBreached: boolean;
  details?: string;
}

export type IncidentCommand =
  | CreateIncident
  | UpdateIncident
  | ChangeStatus
  | ChangeSeverity
  | AddTag
  | RemoveTag
  | LinkTicket
  | RecordAction
  | IngestSignal
  | IngestAlerts
  | RecordSloViolation;

export type IncidentCommandType = IncidentCommand['type'];

/** Drops keys whose value is undefined, so the same event always serialises to the same JSON. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** The fields `UpdateIncident` may change (EVENTS.md, INCIDENT_UPDATED). */
export const UPDATABLE_FIELDS = [
  'title',
  'description',
  'serviceName',
  'environment',
  'runbookPath',
  'projectId',
  'detectedBy',
] as const;

/** Turns a command and the current state into the events that record it: [] when nothing would change. */
export function decide(command: IncidentCommand, state: IncidentState): IncidentEvent[] {
  if (command.type === 'CreateIncident') return createIncident(command, state);
  if (command.type === 'IngestAlerts') return ingestAlerts(command, state);
  if (state === null) throw new IncidentNotFound();

  switch (command.type) {
    case 'UpdateIncident':
      return updateIncident(command, state);
    case 'ChangeStatus':
      return changeStatus(command, state);
    case 'ChangeSeverity':
      if (command.newSeverity === state.severity) return [];
      return [
        {
          type: 'INCIDENT_SEVERITY_CHANGED',
          data: defined({ from: state.severity, to: command.newSeverity, reason: command.reason }),
        },
      ];
    case 'AddTag':
      if (state.tags.includes(command.tag)) return [];
      return [{ type: 'INCIDENT_TAG_ADDED', data: { tag: command.tag } }];
    case 'RemoveTag':
      if (!state.tags.includes(command.tag)) return [];
      return [{ type: 'INCIDENT_TAG_REMOVED', data: { tag: command.tag } }];
    case 'LinkTicket':
      if (hasTicket(state.tickets, command)) return [];
      return [
        {
          type: 'INCIDENT_LINKED_TO_TICKET',
          data: defined({ system: command.system, key: command.key, url: command.url }),
        },
      ];
    case 'RecordAction':
      return [recordAction(command)];
    case 'IngestSignal':
      return [ingestSignal(command)];
    case 'RecordSloViolation':
      return [
        {
          type: 'INCIDENT_SLO_VIOLATION_RECORDED',
          data: defined({
            violationId: command.violationId,
            sloId: command.sloId,
            windowStart: command.windowStart,
            windowEnd: command.windowEnd,
            errorBudgetConsumed: command.errorBudgetConsumed,
            thresholdBreached: command.thresholdBreached,
            details: command.details,
          }),
        },
      ];
  }
}

/** Whether a command may run on an incident that does not exist yet. */
export function createsIncident(command: IncidentCommand): boolean {
  return (
    command.type === 'CreateIncident' || (command.type === 'IngestAlerts' && command.create !== undefined)
  );
}

/** `SEV1` is the most severe: a lower rank. */
export function moreSevere(a: Severity, b: Severity): boolean {
  return a < b;
}

function ingestAlerts(command: IngestAlerts, state: IncidentState): IncidentEvent[] {
  const events: IncidentEvent[] = [];
  let current = state;
  const emit = (event: IncidentEvent) => {
    events.push(event);
    current = evolve(current, event);
  };
  if (current === null) {
    if (!command.create) throw new IncidentNotFound();
    createIncident({ type: 'CreateIncident', incidentId: '', ...command.create }, null).forEach(emit);
  }
  if (command.reopen && current!.status === 'RESOLVED')
    emit({
      type: 'INCIDENT_STATUS_CHANGED',
      data: { from: 'RESOLVED', to: 'INVESTIGATING', reason: 'alert fired again' },
    });
  if (command.acknowledge && current!.status === 'OPEN')
    emit({
      type: 'INCIDENT_STATUS_CHANGED',
      data: { from: 'OPEN', to: 'INVESTIGATING', reason: 'acknowledged' },
    });
  for (const signal of command.signals) emit(ingestSignal({ type: 'IngestSignal', ...signal }));
  const raiseTo = command.raiseSeverityTo;
  if (raiseTo !== undefined && moreSevere(raiseTo, current!.severity))
    emit({
      type: 'INCIDENT_SEVERITY_CHANGED',
      data: { from: current!.severity, to: raiseTo, reason: 'a more severe alert fired' },
    });
  const status = current!.status;
  if (command.resolveReason !== undefined && status !== 'RESOLVED' && status !== 'CANCELLED')
    emit({ type: 'INCIDENT_RESOLVED', data: { from: status, reason: command.resolveReason } });
  return events;
}

function createIncident(command: CreateIncident, state: IncidentState): IncidentEvent[] {
  if (state !== null) throw new IncidentAlreadyExists(command.incidentId);
  return [
    {
      type: 'INCIDENT_CREATED',
      data: defined({
        projectId: command.projectId,
        title: command.title,
        description: command.description,
        serviceName: command.serviceName,
        severity: command.severity,
        environment: command.environment,
        detectedBy: command.detectedBy,
        runbookPath: command.runbookPath,
        tags: [...new Set(command.tags ?? [])],
        correlationKeys: command.initialCorrelationKey === undefined ? [] : [command.initialCorrelationKey],
      }),
    },
  ];
}

function updateIncident(command: UpdateIncident, state: ExistingIncident): IncidentEvent[] {
  const changes: Record<string, string | null> = {};
  for (const field of UPDATABLE_FIELDS) {
    const value = command.changes[field];
    if (value !== undefined && value !== state[field]) changes[field] = value;
  }
  if (Object.keys(changes).length === 0) return [];
  return [{ type: 'INCIDENT_UPDATED', data: { changes: changes as IncidentChanges } }];
}

function changeStatus(command: ChangeStatus, state: ExistingIncident): IncidentEvent[] {
  const from = state.status;
  const to = command.newStatus;
  if (to === from) return [];
  if (!canTransition(from, to)) throw new InvalidTransition(from, to);
  // `from` cannot be RESOLVED here: RESOLVED → RESOLVED returned above.
  if (to === 'RESOLVED')
    return [
      {
        type: 'INCIDENT_RESOLVED',
        data: defined({ from: from as Exclude<Status, 'RESOLVED'>, reason: command.reason }),
      },
    ];
  return [{ type: 'INCIDENT_STATUS_CHANGED', data: defined({ from, to, reason: command.reason }) }];
}

function recordAction(command: RecordAction): IncidentEvent {
  const { actionId, actionKind, label, details } = command;
  if (actionKind === 'NOTE')
    return { type: 'INCIDENT_NOTE_ADDED', data: defined({ actionId, label, details }) };
  return {
    type: 'INCIDENT_PLAYBOOK_ACTION_EXECUTED',
    data: defined({ actionId, actionKind, label, details }),
  };
}

function ingestSignal(command: IngestSignal): IncidentEvent {
  return {
    type: 'INCIDENT_SIGNAL_INGESTED',
    data: defined({
      signalId: command.signalId,
      signalType: command.signalType,
      source: command.source,
      summary: command.summary,
      serviceName: command.serviceName,
      environment: command.environment,
      correlationKey: command.correlationKey,
      traceId: command.traceId,
      fingerprint: command.fingerprint,
      status: command.status,
      data: command.data,
      ts: command.ts,
    }),
  };
}
