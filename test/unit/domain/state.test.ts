import { describe, expect, it } from 'vitest';
import {
  ALLOWED_TRANSITIONS,
  Status,
  canTransition,
  evolve,
  fold,
  incidentDecider,
  initialState,
  type IncidentEvent,
} from '../../../src/domain/incident/index.ts';
import { LIFECYCLE_SPEC, created, historyTo } from './given.ts';

describe('the lifecycle table', () => {
  it('is the one EVENTS.md writes', () => {
    expect(ALLOWED_TRANSITIONS).toEqual(LIFECYCLE_SPEC);
  });

  it('canTransition answers every pair as the table does', () => {
    for (const from of Status.options) {
      for (const to of Status.options) {
        expect(canTransition(from, to), `${from} → ${to}`).toBe(LIFECYCLE_SPEC[from].includes(to));
      }
    }
  });

  it('makes CANCELLED terminal', () => {
    expect(Status.options.filter((to) => canTransition('CANCELLED', to))).toEqual([]);
  });
});

describe('evolve', () => {
  it('starts from null', () => {
    expect(initialState).toBeNull();
    expect(incidentDecider.initialState).toBeNull();
  });

  it('creates an OPEN incident with absent fields as null', () => {
    expect(fold([created])).toEqual({
      status: 'OPEN',
      severity: 'SEV2',
      projectId: 'payments',
      title: 'Checkout latency above SLO',
      description: null,
      serviceName: 'checkout',
      environment: 'production',
      detectedBy: null,
      runbookPath: null,
      tags: ['latency'],
      correlationKeys: [],
      tickets: [],
      signalCount: 0,
    });
  });

  it('applies every kind of event', () => {
    const events: IncidentEvent[] = [
      created,
      {
        type: 'INCIDENT_UPDATED',
        data: { changes: { title: 'Checkout down', description: 'all regions', detectedBy: 'oncall' } },
      },
      {
        type: 'INCIDENT_UPDATED',
        data: { changes: { detectedBy: null, runbookPath: 'runbooks/checkout.md' } },
      },
      { type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'INVESTIGATING' } },
      { type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV2', to: 'SEV1' } },
      { type: 'INCIDENT_TAG_ADDED', data: { tag: 'db' } },
      { type: 'INCIDENT_TAG_REMOVED', data: { tag: 'latency' } },
      {
        type: 'INCIDENT_LINKED_TO_TICKET',
        data: { system: 'JIRA', key: 'OPS-1', url: 'https://jira.example/OPS-1' },
      },
      {
        type: 'INCIDENT_SIGNAL_INGESTED',
        data: {
          signalId: 's1',
          signalType: 'ALERT',
          source: 'prom',
          summary: 'x',
          correlationKey: 'k1',
          ts: '2025-01-01T00:00:00Z',
        },
      },
      {
        type: 'INCIDENT_SIGNAL_INGESTED',
        data: {
          signalId: 's2',
          signalType: 'LOG',
          source: 'loki',
          summary: 'y',
          correlationKey: 'k1',
          ts: '2025-01-01T00:00:01Z',
        },
      },
      {
        type: 'INCIDENT_SIGNAL_INGESTED',
        data: {
          signalId: 's3',
          signalType: 'TRACE',
          source: 'tempo',
          summary: 'z',
          ts: '2025-01-01T00:00:02Z',
        },
      },
      { type: 'INCIDENT_NOTE_ADDED', data: { actionId: 'a1', label: 'note' } },
      {
        type: 'INCIDENT_PLAYBOOK_ACTION_EXECUTED',
        data: { actionId: 'a2', actionKind: 'COMMAND', label: 'restart' },
      },
      {
        type: 'INCIDENT_SLO_VIOLATION_RECORDED',
        data: {
          violationId: 'v1',
          sloId: 'slo',
          windowStart: '2025-01-01T00:00:00Z',
          windowEnd: '2025-01-01T01:00:00Z',
          errorBudgetConsumed: 1,
          thresholdBreached: false,
        },
      },
      { type: 'INCIDENT_RESOLVED', data: { from: 'INVESTIGATING', reason: 'rolled back' } },
    ];
    expect(fold(events)).toEqual({
      status: 'RESOLVED',
      severity: 'SEV1',
      projectId: 'payments',
      title: 'Checkout down',
      description: 'all regions',
      serviceName: 'checkout',
      environment: 'production',
      detectedBy: null,
      runbookPath: 'runbooks/checkout.md',
      tags: ['db'],
      correlationKeys: ['k1'],
      tickets: [{ system: 'JIRA', key: 'OPS-1' }],
      signalCount: 3,
    });
  });

  it('leaves the state it is given untouched', () => {
    const state = fold([created]);
    const before = structuredClone(state);
    evolve(state, { type: 'INCIDENT_TAG_ADDED', data: { tag: 'db' } });
    evolve(state, {
      type: 'INCIDENT_SIGNAL_INGESTED',
      data: {
        signalId: 's',
        signalType: 'ALERT',
        source: 'p',
        summary: 's',
        correlationKey: 'k',
        ts: '2025-01-01T00:00:00Z',
      },
    });
    expect(state).toEqual(before);
  });

  it('ignores events before a create', () => {
    expect(evolve(null, { type: 'INCIDENT_TAG_ADDED', data: { tag: 'db' } })).toBeNull();
  });

  it.each(Status.options)('gives a state that survives a JSON round trip (%s)', (status) => {
    const state = fold(historyTo(status));
    expect(state?.status).toBe(status);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });

  it('fold continues from a given state, as it does from a snapshot', () => {
    const events = historyTo('MITIGATED');
    const snapshot = JSON.parse(JSON.stringify(fold(events.slice(0, 1))));
    expect(fold(events.slice(1), snapshot)).toEqual(fold(events));
  });
});
