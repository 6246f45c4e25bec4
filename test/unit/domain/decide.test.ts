import { describe, expect, it } from 'vitest';
import {
  IncidentAlreadyExists,
  IncidentNotFound,
  InvalidTransition,
  Status,
  decide,
  fold,
  type IncidentCommand,
  type IncidentEvent,
} from '../../../src/domain/incident/index.ts';
import { checkoutIncident } from '../../support/incidents.ts';
import { LIFECYCLE_SPEC, created, given, historyTo } from './given.ts';

const createCommand: IncidentCommand = {
  type: 'CreateIncident',
  incidentId: 'inc_0001',
  ...checkoutIncident,
};

describe('CreateIncident', () => {
  it('creates an incident with the required fields, no optional keys and no correlation keys', () => {
    given().when(createCommand).then([created]);
    expect(Object.keys(given().when(createCommand).events[0]!.data)).not.toContain('description');
  });

  it('carries every optional field, deduplicates tags and starts the correlation keys', () => {
    given()
      .when({
        ...createCommand,
        description: 'p99 above 2s',
        detectedBy: 'alertmanager',
        runbookPath: 'runbooks/checkout.md',
        tags: ['latency', 'db', 'latency'],
        initialCorrelationKey: 'checkout:latency',
      })
      .then([
        {
          type: 'INCIDENT_CREATED',
          data: {
            projectId: 'payments',
            title: 'Checkout latency above SLO',
            description: 'p99 above 2s',
            serviceName: 'checkout',
            severity: 'SEV2',
            environment: 'production',
            detectedBy: 'alertmanager',
            runbookPath: 'runbooks/checkout.md',
            tags: ['latency', 'db'],
            correlationKeys: ['checkout:latency'],
          },
        },
      ]);
  });

  it('defaults tags to an empty list', () => {
    const { tags: _tags, ...withoutTags } = createCommand as Extract<
      IncidentCommand,
      { type: 'CreateIncident' }
    >;
    expect(given().when(withoutTags).events[0]).toMatchObject({ data: { tags: [] } });
  });

  it('refuses to create an incident that exists', () => {
    given(created)
      .when(createCommand)
      .thenThrows(IncidentAlreadyExists, { code: 'INCIDENT_EXISTS', incidentId: 'inc_0001' });
  });
});

describe('every command but create needs an incident', () => {
  const commands: IncidentCommand[] = [
    { type: 'UpdateIncident', changes: { title: 'x' } },
    { type: 'ChangeStatus', newStatus: 'INVESTIGATING' },
    { type: 'ChangeSeverity', newSeverity: 'SEV1' },
    { type: 'AddTag', tag: 'db' },
    { type: 'RemoveTag', tag: 'db' },
    { type: 'LinkTicket', system: 'JIRA', key: 'OPS-1' },
    { type: 'RecordAction', actionId: 'act_1', actionKind: 'NOTE', label: 'x' },
    {
      type: 'IngestSignal',
      signalId: 'sig_1',
      signalType: 'ALERT',
      source: 'prom',
      summary: 'x',
      ts: '2025-01-01T00:00:00.000Z',
    },
    {
      type: 'RecordSloViolation',
      violationId: 'slo_1',
      sloId: 'checkout-availability',
      windowStart: '2025-01-01T00:00:00.000Z',
      windowEnd: '2025-01-01T01:00:00.000Z',
      errorBudgetConsumed: 0.4,
      thresholdBreached: true,
    },
  ];
  it.each(commands.map((command) => [command.type, command] as const))(
    '%s on no incident throws IncidentNotFound',
    (_name, command) => {
      given().when(command).thenThrows(IncidentNotFound, { code: 'NOT_FOUND' });
    },
  );
});

describe('UpdateIncident', () => {
  it('records only the fields whose value differs', () => {
    given(created)
      .when({
        type: 'UpdateIncident',
        changes: {
          title: 'Checkout down',
          serviceName: 'checkout',
          environment: 'production',
          runbookPath: 'runbooks/checkout.md',
        },
      })
      .then([
        {
          type: 'INCIDENT_UPDATED',
          data: { changes: { title: 'Checkout down', runbookPath: 'runbooks/checkout.md' } },
        },
      ]);
  });

  it('can change every updatable field', () => {
    const changes = {
      title: 't',
      description: 'd',
      serviceName: 's',
      environment: 'staging',
      runbookPath: 'r',
      projectId: 'p',
      detectedBy: 'b',
    };
    given(created)
      .when({ type: 'UpdateIncident', changes })
      .then([{ type: 'INCIDENT_UPDATED', data: { changes } }]);
  });

  it('decides nothing when every value is unchanged', () => {
    given(created)
      .when({
        type: 'UpdateIncident',
        changes: { title: 'Checkout latency above SLO', projectId: 'payments' },
      })
      .thenNothingHappened();
    given(created).when({ type: 'UpdateIncident', changes: {} }).thenNothingHappened();
  });

  it('ignores undefined values and treats null as clearing an optional field', () => {
    const withRunbook = given(created).when({ type: 'UpdateIncident', changes: { runbookPath: 'r' } }).events;
    given(created)
      .when({ type: 'UpdateIncident', changes: { title: undefined, runbookPath: null } })
      .thenNothingHappened();
    given(created, ...withRunbook)
      .when({ type: 'UpdateIncident', changes: { runbookPath: null } })
      .then([{ type: 'INCIDENT_UPDATED', data: { changes: { runbookPath: null } } }]);
  });

  it('decides nothing when the same update is repeated', () => {
    const update: IncidentCommand = { type: 'UpdateIncident', changes: { title: 'Checkout down' } };
    given(created, ...given(created).when(update).events)
      .when(update)
      .thenNothingHappened();
  });
});

describe('ChangeStatus: every row of the lifecycle in EVENTS.md', () => {
  for (const from of Status.options) {
    for (const to of Status.options) {
      const allowed = LIFECYCLE_SPEC[from].includes(to);
      const name = `${from} → ${to}: ${from === to ? 'no-op' : allowed ? 'allowed' : 'refused'}`;
      it(name, () => {
        const decision = given(...historyTo(from)).when({
          type: 'ChangeStatus',
          newStatus: to,
          reason: 'because',
        });
        if (from === to) {
          decision.thenNothingHappened();
        } else if (!allowed) {
          decision.thenThrows(InvalidTransition, { code: 'INVALID_TRANSITION', from, to });
        } else if (to === 'RESOLVED') {
          decision.then([
            {
              type: 'INCIDENT_RESOLVED',
              data: { from: from as Exclude<Status, 'RESOLVED'>, reason: 'because' },
            },
          ]);
        } else {
          decision.then([{ type: 'INCIDENT_STATUS_CHANGED', data: { from, to, reason: 'because' } }]);
        }
      });
    }
  }

  it('omits an absent reason', () => {
    given(created)
      .when({ type: 'ChangeStatus', newStatus: 'INVESTIGATING' })
      .then([{ type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'INVESTIGATING' } }]);
    given(created)
      .when({ type: 'ChangeStatus', newStatus: 'RESOLVED' })
      .then([{ type: 'INCIDENT_RESOLVED', data: { from: 'OPEN' } }]);
  });

  it('reopens a resolved incident and resolves it again', () => {
    const history: IncidentEvent[] = [
      ...historyTo('RESOLVED'),
      ...given(...historyTo('RESOLVED')).when({
        type: 'ChangeStatus',
        newStatus: 'INVESTIGATING',
        reason: 'regressed',
      }).events,
    ];
    given(...history)
      .when({ type: 'ChangeStatus', newStatus: 'RESOLVED' })
      .then([{ type: 'INCIDENT_RESOLVED', data: { from: 'INVESTIGATING' } }]);
  });
});

describe('ChangeSeverity', () => {
  it('records the move with its reason', () => {
    given(created)
      .when({ type: 'ChangeSeverity', newSeverity: 'SEV1', reason: 'all regions' })
      .then([
        { type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV2', to: 'SEV1', reason: 'all regions' } },
      ]);
  });

  it('omits an absent reason', () => {
    given(created)
      .when({ type: 'ChangeSeverity', newSeverity: 'SEV4' })
      .then([{ type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV2', to: 'SEV4' } }]);
  });

  it('decides nothing for the same severity', () => {
    given(created).when({ type: 'ChangeSeverity', newSeverity: 'SEV2' }).thenNothingHappened();
  });

  it('uses the severity the last change left', () => {
    const raised: IncidentEvent = { type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV2', to: 'SEV1' } };
    given(created, raised).when({ type: 'ChangeSeverity', newSeverity: 'SEV1' }).thenNothingHappened();
    given(created, raised)
      .when({ type: 'ChangeSeverity', newSeverity: 'SEV3' })
      .then([{ type: 'INCIDENT_SEVERITY_CHANGED', data: { from: 'SEV1', to: 'SEV3' } }]);
  });
});

describe('AddTag and RemoveTag', () => {
  it('adds a new tag', () => {
    given(created)
      .when({ type: 'AddTag', tag: 'db' })
      .then([{ type: 'INCIDENT_TAG_ADDED', data: { tag: 'db' } }]);
  });

  it('decides nothing for a tag already there', () => {
    given(created).when({ type: 'AddTag', tag: 'latency' }).thenNothingHappened();
  });

  it('removes a tag that is there', () => {
    given(created)
      .when({ type: 'RemoveTag', tag: 'latency' })
      .then([{ type: 'INCIDENT_TAG_REMOVED', data: { tag: 'latency' } }]);
  });

  it('decides nothing for a tag not there', () => {
    given(created).when({ type: 'RemoveTag', tag: 'db' }).thenNothingHappened();
    const removed: IncidentEvent = { type: 'INCIDENT_TAG_REMOVED', data: { tag: 'latency' } };
    given(created, removed).when({ type: 'RemoveTag', tag: 'latency' }).thenNothingHappened();
    given(created, removed)
      .when({ type: 'AddTag', tag: 'latency' })
      .then([{ type: 'INCIDENT_TAG_ADDED', data: { tag: 'latency' } }]);
  });
});

describe('LinkTicket', () => {
  const linked: IncidentEvent = {
    type: 'INCIDENT_LINKED_TO_TICKET',
    data: { system: 'JIRA', key: 'OPS-1', url: 'https://jira.example/OPS-1' },
  };

  it('links a ticket, with or without a url', () => {
    given(created)
      .when({
        type: 'LinkTicket',
        system: 'JIRA',
        key: 'OPS-1',
        url: 'https://jira.example/OPS-1',
      })
      .then([linked]);
    given(created)
      .when({ type: 'LinkTicket', system: 'JIRA', key: 'OPS-1' })
      .then([{ type: 'INCIDENT_LINKED_TO_TICKET', data: { system: 'JIRA', key: 'OPS-1' } }]);
  });

  it('decides nothing for the same system and key, whatever the url', () => {
    given(created, linked).when({ type: 'LinkTicket', system: 'JIRA', key: 'OPS-1' }).thenNothingHappened();
    given(created, linked)
      .when({ type: 'LinkTicket', system: 'JIRA', key: 'OPS-1', url: 'https://other' })
      .thenNothingHappened();
  });

  it('links another key or the same key in another system', () => {
    expect(
      given(created, linked).when({ type: 'LinkTicket', system: 'JIRA', key: 'OPS-2' }).events,
    ).toHaveLength(1);
    expect(
      given(created, linked).when({ type: 'LinkTicket', system: 'SERVICENOW', key: 'OPS-1' }).events,
    ).toHaveLength(1);
  });
});

describe('RecordAction', () => {
  it('records a NOTE as INCIDENT_NOTE_ADDED', () => {
    given(created)
      .when({
        type: 'RecordAction',
        actionId: 'act_1',
        actionKind: 'NOTE',
        label: 'paged the DBA',
        details: 'no answer',
      })
      .then([
        {
          type: 'INCIDENT_NOTE_ADDED',
          data: { actionId: 'act_1', label: 'paged the DBA', details: 'no answer' },
        },
      ]);
  });

  it.each(['PLAYBOOK', 'COMMAND', 'ESCALATION', 'COMMUNICATION', 'OTHER'] as const)(
    'records %s as INCIDENT_PLAYBOOK_ACTION_EXECUTED',
    (actionKind) => {
      given(created)
        .when({ type: 'RecordAction', actionId: 'act_2', actionKind, label: 'restart pods' })
        .then([
          {
            type: 'INCIDENT_PLAYBOOK_ACTION_EXECUTED',
            data: { actionId: 'act_2', actionKind, label: 'restart pods' },
          },
        ]);
    },
  );

  it('records the same kind of action again: each is its own entry', () => {
    const note: IncidentCommand = {
      type: 'RecordAction',
      actionId: 'act_3',
      actionKind: 'NOTE',
      label: 'still down',
    };
    expect(
      given(created, ...given(created).when(note).events).when({ ...note, actionId: 'act_4' }).events,
    ).toHaveLength(1);
  });

  it('is allowed on a cancelled incident', () => {
    expect(
      given(...historyTo('CANCELLED')).when({
        type: 'RecordAction',
        actionId: 'act_5',
        actionKind: 'NOTE',
        label: 'closing',
      }).events,
    ).toHaveLength(1);
  });
});

describe('IngestSignal', () => {
  it('records the signal with every field', () => {
    const signal = {
      signalId: 'sig_1',
      signalType: 'ALERT',
      source: 'prometheus',
      summary: 'p99 > 2s',
      serviceName: 'checkout',
      environment: 'production',
      correlationKey: 'checkout:latency',
      traceId: 'abc123',
      data: { value: 2.4, labels: { region: 'eu' } },
      ts: '2025-01-01T00:00:00.000Z',
    } as const;
    given(created)
      .when({ type: 'IngestSignal', ...signal })
      .then([{ type: 'INCIDENT_SIGNAL_INGESTED', data: signal }]);
  });

  it('omits absent optional fields', () => {
    const decision = given(created).when({
      type: 'IngestSignal',
      signalId: 'sig_2',
      signalType: 'DEPLOYMENT',
      source: 'argo',
      summary: 'deployed v42',
      correlationKey: undefined,
      ts: '2025-01-01T00:00:00.000Z',
    });
    decision.then([
      {
        type: 'INCIDENT_SIGNAL_INGESTED',
        data: {
          signalId: 'sig_2',
          signalType: 'DEPLOYMENT',
          source: 'argo',
          summary: 'deployed v42',
          ts: '2025-01-01T00:00:00.000Z',
        },
      },
    ]);
    expect(Object.keys(decision.events[0]!.data)).not.toContain('correlationKey');
  });
});

describe('RecordSloViolation', () => {
  const violation = {
    violationId: 'slo_1',
    sloId: 'checkout-availability',
    windowStart: '2025-01-01T00:00:00.000Z',
    windowEnd: '2025-01-01T01:00:00.000Z',
    errorBudgetConsumed: 0.4,
    thresholdBreached: true,
  };

  it('records the violation', () => {
    given(created)
      .when({ type: 'RecordSloViolation', ...violation, details: 'burn rate 14x' })
      .then([{ type: 'INCIDENT_SLO_VIOLATION_RECORDED', data: { ...violation, details: 'burn rate 14x' } }]);
  });

  it('omits absent details', () => {
    given(created)
      .when({ type: 'RecordSloViolation', ...violation })
      .then([{ type: 'INCIDENT_SLO_VIOLATION_RECORDED', data: violation }]);
  });
});

describe('decide is pure', () => {
  it('leaves the state it is given untouched', () => {
    const state = fold([created]);
    const before = structuredClone(state);
    for (const command of [
      { type: 'AddTag', tag: 'db' },
      { type: 'RemoveTag', tag: 'latency' },
      { type: 'LinkTicket', system: 'JIRA', key: 'OPS-1' },
      { type: 'UpdateIncident', changes: { title: 'x' } },
    ] satisfies IncidentCommand[]) {
      decide(command, state);
    }
    expect(state).toEqual(before);
  });
});
