import { describe, expect, it } from 'vitest';
import type { IncidentEvent } from '../../src/domain/incident/index.ts';
import { actionsProjector, serviceActionId } from '../../projections/actions.ts';
import { incidentsProjector } from '../../projections/incidents.ts';
import { projectEvents, toProjectedEvent, type ProjectedEvent } from '../../projections/projector.ts';
import { signalsProjector } from '../../projections/signals.ts';
import { sloViolationsProjector } from '../../projections/slo-violations.ts';

const orgId = 'org-projectors';
const incidentId = 'inc_projectors1';
const alice = { type: 'USER', ref: 'alice' } as const;
const pager = { type: 'INTEGRATION', ref: 'pagerduty' } as const;

/** Given these events, in stream order, one minute apart from 10:00. */
function given(...events: (IncidentEvent & { actor?: ProjectedEvent['actor'] })[]): ProjectedEvent[] {
  return events.map(({ actor, ...event }, version) => ({
    ...(event as IncidentEvent),
    eventId: `00000000-0000-4000-8000-${String(version).padStart(12, '0')}`,
    orgId,
    incidentId,
    version,
    position: `100-${version + 1}`,
    occurredAt: at(version),
    actor: actor ?? alice,
  }));
}
const at = (minute: number) => new Date(Date.UTC(2024, 4, 1, 10, minute)).toISOString();

const created: IncidentEvent = {
  type: 'INCIDENT_CREATED',
  data: {
    projectId: 'payments',
    title: 'Checkout latency above SLO',
    serviceName: 'checkout',
    severity: 'SEV2',
    environment: 'production',
    tags: ['latency', 'latency'],
    correlationKeys: ['checkout:5xx'],
  },
};

describe('incidents projector: given events, then the incident row', () => {
  it('opens the incident from INCIDENT_CREATED with its creator, times and version 0', () => {
    expect(projectEvents(incidentsProjector, given(created))).toEqual([
      {
        org_id: orgId,
        id: incidentId,
        project_id: 'payments',
        title: 'Checkout latency above SLO',
        description: null,
        service_name: 'checkout',
        status: 'OPEN',
        severity: 'SEV2',
        severity_rank: 2,
        environment: 'production',
        detected_by: null,
        primary_signal_id: null,
        runbook_path: null,
        external_refs: [],
        correlation_keys: ['checkout:5xx'],
        tags: ['latency'],
        created_by_type: 'USER',
        created_by_ref: 'alice',
        created_at: at(0),
        updated_at: at(0),
        acknowledged_at: null,
        mitigated_at: null,
        resolved_at: null,
        cancelled_at: null,
        version: 0,
      },
    ]);
  });

  it('stamps acknowledgedAt on the first move out of OPEN and mitigatedAt on the first move to MITIGATED, once', () => {
    const [row] = projectEvents(
      incidentsProjector,
      given(
        created,
        { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'MITIGATED' } },
        { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'MITIGATED', to: 'INVESTIGATING' } },
        { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'INVESTIGATING', to: 'MITIGATED' } },
      ),
    );
    expect(row).toMatchObject({
      status: 'MITIGATED',
      acknowledged_at: at(1),
      mitigated_at: at(1),
      updated_at: at(3),
      version: 3,
    });
  });

  it('resolves, and reopening clears resolvedAt; resolving straight from OPEN acknowledges too', () => {
    const resolved = given(created, { type: 'INCIDENT_RESOLVED', data: { from: 'OPEN', reason: 'fixed' } });
    expect(projectEvents(incidentsProjector, resolved)[0]).toMatchObject({
      status: 'RESOLVED',
      resolved_at: at(1),
      acknowledged_at: at(1),
    });
    const reopened = given(
      created,
      { type: 'INCIDENT_RESOLVED', data: { from: 'OPEN' } },
      { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'RESOLVED', to: 'INVESTIGATING' } },
    );
    expect(projectEvents(incidentsProjector, reopened)[0]).toMatchObject({
      status: 'INVESTIGATING',
      resolved_at: null,
      acknowledged_at: at(1),
    });
  });

  it('records cancelledAt', () => {
    const rows = projectEvents(
      incidentsProjector,
      given(created, { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'CANCELLED' } }),
    );
    expect(rows[0]).toMatchObject({
      status: 'CANCELLED',
      cancelled_at: at(1),
      acknowledged_at: at(1),
      mitigated_at: null,
    });
  });

  it('replaces updated fields (null clears), changes severity and its rank, adds and removes tags', () => {
    const [row] = projectEvents(
      incidentsProjector,
      given(
        { ...created, data: { ...created.data, description: 'slow', runbookPath: 'rb.md' } },
        {
          type: 'INCIDENT_UPDATED',
          data: { changes: { title: 'Checkout down', description: null, detectedBy: 'synthetics' } },
        },
        { type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV2', to: 'SEV1', reason: 'revenue' } },
        { type: 'INCIDENT_TAG_ADDED', data: { tag: 'db' } },
        { type: 'INCIDENT_TAG_REMOVED', data: { tag: 'latency' } },
      ),
    );
    expect(row).toMatchObject({
      title: 'Checkout down',
      description: null,
      detected_by: 'synthetics',
      runbook_path: 'rb.md',
      severity: 'SEV1',
      severity_rank: 1,
      tags: ['db'],
      version: 4,
    });
  });

  it('takes the first signal as primary and gathers correlation keys without duplicates', () => {
    const signal = (signalId: string, correlationKey?: string): IncidentEvent => ({
      type: 'INCIDENT_SIGNAL_INGESTED',
      data: {
        signalId,
        signalType: 'ALERT',
        source: 'prometheus',
        summary: 's',
        ts: at(0),
        ...(correlationKey ? { correlationKey } : {}),
      },
    });
    const [row] = projectEvents(
      incidentsProjector,
      given(
        created,
        signal('sig_1', 'db:lag'),
        signal('sig_2', 'checkout:5xx'),
        signal('sig_3'),
        signal('sig_4', 'db:lag'),
      ),
    );
    expect(row).toMatchObject({
      primary_signal_id: 'sig_1',
      correlation_keys: ['checkout:5xx', 'db:lag'],
      version: 4,
      updated_at: at(4),
    });
  });

  it('links tickets as externalRefs with linkedAt, once per system and key', () => {
    const [row] = projectEvents(
      incidentsProjector,
      given(
        created,
        {
          type: 'INCIDENT_LINKED_TO_TICKET',
          data: { system: 'JIRA', key: 'OPS-1', url: 'https://jira/OPS-1' },
        },
        { type: 'INCIDENT_LINKED_TO_TICKET', data: { system: 'PD', key: '77' } },
        { type: 'INCIDENT_LINKED_TO_TICKET', data: { system: 'JIRA', key: 'OPS-1' } },
      ),
    );
    expect(row!.external_refs).toEqual([
      { system: 'JIRA', key: 'OPS-1', url: 'https://jira/OPS-1', linkedAt: at(1) },
      { system: 'PD', key: '77', url: null, linkedAt: at(2) },
    ]);
    expect(row!.version).toBe(3);
  });

  it('bumps version and updatedAt for events that only touch other read models', () => {
    const [row] = projectEvents(
      incidentsProjector,
      given(
        created,
        { type: 'INCIDENT_NOTE_ADDED', data: { actionId: 'act_1', label: 'looking' } },
        {
          type: 'INCIDENT_SLO_VIOLATION_RECORDED',
          data: {
            violationId: 'slo_1',
            sloId: 'avail',
            windowStart: at(0),
            windowEnd: at(1),
            errorBudgetConsumed: 1,
            thresholdBreached: true,
          },
        },
      ),
    );
    expect(row).toMatchObject({ version: 2, updated_at: at(2) });
  });

  it('refuses an event for an incident that was never created, rather than skip it', () => {
    expect(() =>
      projectEvents(incidentsProjector, given({ type: 'INCIDENT_TAG_ADDED', data: { tag: 'x' } })),
    ).toThrow(/never created/);
  });
});

describe('signals projector', () => {
  it('writes one row per signal, its time in UTC milliseconds', () => {
    const events = given(created, {
      type: 'INCIDENT_SIGNAL_INGESTED',
      data: {
        signalId: 'sig_1',
        signalType: 'METRIC',
        source: 'prometheus',
        summary: 'p99 > 2s',
        correlationKey: 'k',
        traceId: 't1',
        data: { value: 2.5 },
        ts: '2024-05-01T12:00:00.123456+02:00',
      },
    });
    expect(projectEvents(signalsProjector, events)).toEqual([
      {
        org_id: orgId,
        incident_id: incidentId,
        id: 'sig_1',
        signal_type: 'METRIC',
        source: 'prometheus',
        summary: 'p99 > 2s',
        service_name: null,
        environment: null,
        correlation_key: 'k',
        trace_id: 't1',
        fingerprint: null,
        status: null,
        data: { value: 2.5 },
        ts: '2024-05-01T10:00:00.123Z',
        version: 1,
      },
    ]);
  });

  it("writes an alert's fingerprint and status (signal schema v2)", () => {
    const events = given(created, {
      type: 'INCIDENT_SIGNAL_INGESTED',
      data: {
        signalId: 'sig_2',
        signalType: 'ALERT',
        source: 'alertmanager',
        summary: 'disk full',
        fingerprint: 'c0ffee',
        status: 'resolved',
        ts: '2024-05-01T10:00:00.000Z',
      },
    });
    expect(projectEvents(signalsProjector, events)).toEqual([
      expect.objectContaining({ id: 'sig_2', fingerprint: 'c0ffee', status: 'resolved' }),
    ]);
  });
});

describe('actions projector: the timeline', () => {
  it('writes notes and playbook actions with the actor from metadata and ts = occurredAt', () => {
    const events = given(
      created,
      {
        type: 'INCIDENT_NOTE_ADDED',
        data: { actionId: 'act_note', label: 'Paged DB on-call', details: 'no answer' },
        actor: pager,
      },
      {
        type: 'INCIDENT_PLAYBOOK_ACTION_EXECUTED',
        data: { actionId: 'act_cmd', actionKind: 'COMMAND', label: 'Restarted pods' },
      },
    );
    expect(projectEvents(actionsProjector, events)).toEqual([
      {
        org_id: orgId,
        incident_id: incidentId,
        id: 'act_cmd',
        action_kind: 'COMMAND',
        label: 'Restarted pods',
        details: null,
        actor_type: 'USER',
        actor_ref: 'alice',
        ts: at(2),
        version: 2,
      },
      {
        org_id: orgId,
        incident_id: incidentId,
        id: 'act_note',
        action_kind: 'NOTE',
        label: 'Paged DB on-call',
        details: 'no answer',
        actor_type: 'INTEGRATION',
        actor_ref: 'pagerduty',
        ts: at(1),
        version: 1,
      },
    ]);
  });

  it('adds STATUS_CHANGE, SEVERITY_CHANGE and TICKET_LINK entries with ids derived from the event ids', () => {
    const events = given(
      created,
      { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'INVESTIGATING', reason: 'paged' } },
      { type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV2', to: 'SEV1' } },
      {
        type: 'INCIDENT_LINKED_TO_TICKET',
        data: { system: 'JIRA', key: 'OPS-1', url: 'https://jira/OPS-1' },
      },
      { type: 'INCIDENT_RESOLVED', data: { from: 'INVESTIGATING', reason: 'rolled back' } },
    );
    const rows = projectEvents(actionsProjector, events).sort((a, b) => a.version - b.version);
    expect(
      rows.map(({ id, action_kind, label, details, version }) => ({
        id,
        action_kind,
        label,
        details,
        version,
      })),
    ).toEqual([
      {
        id: serviceActionId(events[1]!.eventId),
        action_kind: 'STATUS_CHANGE',
        label: 'Status OPEN → INVESTIGATING',
        details: 'paged',
        version: 1,
      },
      {
        id: serviceActionId(events[2]!.eventId),
        action_kind: 'SEVERITY_CHANGE',
        label: 'Severity SEV2 → SEV1',
        details: null,
        version: 2,
      },
      {
        id: serviceActionId(events[3]!.eventId),
        action_kind: 'TICKET_LINK',
        label: 'Linked JIRA OPS-1',
        details: 'https://jira/OPS-1',
        version: 3,
      },
      {
        id: serviceActionId(events[4]!.eventId),
        action_kind: 'STATUS_CHANGE',
        label: 'Status INVESTIGATING → RESOLVED',
        details: 'rolled back',
        version: 4,
      },
    ]);
  });

  it('makes no entry for events off the timeline', () => {
    expect(
      projectEvents(actionsProjector, given(created, { type: 'INCIDENT_TAG_ADDED', data: { tag: 'db' } })),
    ).toEqual([]);
  });
});

describe('SLO violations projector', () => {
  it('writes one row per violation', () => {
    const events = given(created, {
      type: 'INCIDENT_SLO_VIOLATION_RECORDED',
      data: {
        violationId: 'slo_1',
        sloId: 'availability',
        windowStart: at(0),
        windowEnd: at(30),
        errorBudgetConsumed: 12.5,
        thresholdBreached: true,
        details: 'burn 14x',
      },
    });
    expect(projectEvents(sloViolationsProjector, events)).toEqual([
      {
        org_id: orgId,
        incident_id: incidentId,
        id: 'slo_1',
        slo_id: 'availability',
        window_start: at(0),
        window_end: at(30),
        error_budget_consumed: 12.5,
        threshold_breached: true,
        details: 'burn 14x',
        version: 1,
      },
    ]);
  });

  it('refuses the same violation twice instead of overwriting it', () => {
    const violation: IncidentEvent = {
      type: 'INCIDENT_SLO_VIOLATION_RECORDED',
      data: {
        violationId: 'slo_1',
        sloId: 'a',
        windowStart: at(0),
        windowEnd: at(1),
        errorBudgetConsumed: 1,
        thresholdBreached: false,
      },
    };
    expect(() => projectEvents(sloViolationsProjector, given(created, violation, violation))).toThrow(
      /twice/,
    );
  });
});

describe('reading a stored event', () => {
  const recorded = {
    eventId: '6f1c3f0e-2f54-4b8e-9a55-0f0a3b1c2d3e',
    type: 'INCIDENT_TAG_ADDED',
    streamName: `incident-${orgId}.${incidentId}`,
    version: 3,
    position: '7-9',
    createdAt: '2024-05-01T10:00:01.000Z',
    data: { tag: 'db' },
    metadata: {
      orgId,
      incidentId,
      actor: alice,
      occurredAt: '2024-05-01T12:00:00+02:00',
      correlationId: 'req-1',
      schemaVersion: 1,
    },
  };

  it('takes ids from the stream name and normalises occurredAt to UTC', () => {
    expect(toProjectedEvent(recorded)).toEqual({
      type: 'INCIDENT_TAG_ADDED',
      data: { tag: 'db' },
      eventId: recorded.eventId,
      orgId,
      incidentId,
      version: 3,
      position: '7-9',
      occurredAt: '2024-05-01T10:00:00.000Z',
      actor: alice,
    });
  });

  it('throws on a payload the domain does not accept', () => {
    expect(() => toProjectedEvent({ ...recorded, data: { tag: 42 } })).toThrow();
    expect(() => toProjectedEvent({ ...recorded, type: 'INCIDENT_EXPLODED' })).toThrow(
      /unknown incident event type/,
    );
  });
});
