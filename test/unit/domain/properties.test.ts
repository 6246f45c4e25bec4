import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClientActionKind,
  DomainError,
  IncidentNotFound,
  InvalidTransition,
  Severity,
  SignalType,
  Status,
  decide,
  eventDataSchemas,
  evolve,
  fold,
  parseEvent,
  type IncidentCommand,
  type IncidentEvent,
  type IncidentState,
} from '../../../src/domain/incident/index.ts';
import { LIFECYCLE_SPEC } from './given.ts';

const RUNS = { numRuns: 200 };

// Small value pools, so random sequences hit the same tag, ticket or value again (the no-op paths).
const tag = fc.constantFrom('db', 'latency', 'network', 'eu-west', 'customer:acme');
const text = fc.constantFrom('a', 'b', 'checkout', 'payments');
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
const isoTime = fc
  .date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
  .map((d) => d.toISOString());
// Through JSON once, as a request body would be (it also turns -0 into 0).
const jsonObject = fc
  .dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }))
  .map((o) => JSON.parse(JSON.stringify(o)) as Record<string, unknown>);

const createIncident: fc.Arbitrary<IncidentCommand> = fc.record({
  type: fc.constant('CreateIncident' as const),
  incidentId: fc.constant('inc_prop'),
  projectId: text,
  title: text,
  serviceName: text,
  severity: fc.constantFrom(...Severity.options),
  environment: text,
  detectedBy: optional(text),
  description: optional(fc.string()),
  runbookPath: optional(text),
  tags: optional(fc.array(tag, { maxLength: 4 })),
  initialCorrelationKey: optional(text),
});

const laterCommand: fc.Arbitrary<IncidentCommand> = fc.oneof(
  fc.record({
    type: fc.constant('UpdateIncident' as const),
    changes: fc.record(
      {
        title: text,
        description: fc.option(text, { nil: null }),
        serviceName: text,
        environment: text,
        runbookPath: fc.option(text, { nil: null }),
        projectId: text,
        detectedBy: fc.option(text, { nil: null }),
      },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    type: fc.constant('ChangeStatus' as const),
    newStatus: fc.constantFrom(...Status.options),
    reason: optional(text),
  }),
  fc.record({
    type: fc.constant('ChangeSeverity' as const),
    newSeverity: fc.constantFrom(...Severity.options),
    reason: optional(text),
  }),
  fc.record({ type: fc.constant('AddTag' as const), tag }),
  fc.record({ type: fc.constant('RemoveTag' as const), tag }),
  fc.record({
    type: fc.constant('LinkTicket' as const),
    system: fc.constantFrom('JIRA', 'SERVICENOW'),
    key: fc.constantFrom('OPS-1', 'OPS-2'),
    url: optional(text),
  }),
  fc.record({
    type: fc.constant('RecordAction' as const),
    actionId: fc.uuid().map((u) => `act_${u}`),
    actionKind: fc.constantFrom(...ClientActionKind.options),
    label: text,
    details: optional(fc.string()),
  }),
  fc.record({
    type: fc.constant('IngestSignal' as const),
    signalId: fc.uuid().map((u) => `sig_${u}`),
    signalType: fc.constantFrom(...SignalType.options),
    source: text,
    summary: fc.string(),
    serviceName: optional(text),
    environment: optional(text),
    correlationKey: optional(text),
    traceId: optional(text),
    data: optional(jsonObject),
    ts: isoTime,
  }),
  fc.record({
    type: fc.constant('RecordSloViolation' as const),
    violationId: fc.uuid().map((u) => `slo_${u}`),
    sloId: text,
    windowStart: isoTime,
    windowEnd: isoTime,
    errorBudgetConsumed: fc.integer({ min: 0, max: 10_000 }).map((n) => n / 100),
    thresholdBreached: fc.boolean(),
    details: optional(fc.string()),
  }),
  createIncident, // refused once the incident exists
);

/** A created incident and the commands that follow it. */
const history = fc.tuple(createIncident, fc.array(laterCommand, { maxLength: 40 }));

interface Step {
  command: IncidentCommand;
  before: IncidentState;
  outcome: IncidentEvent[] | DomainError;
}

/** Runs the commands through decide and evolve, as the command handler does, recording each step. */
function run(commands: IncidentCommand[]): { steps: Step[]; events: IncidentEvent[]; state: IncidentState } {
  let state: IncidentState = null;
  const steps: Step[] = [];
  const events: IncidentEvent[] = [];
  for (const command of commands) {
    const before = state;
    let outcome: IncidentEvent[] | DomainError;
    try {
      outcome = decide(command, state);
      events.push(...outcome);
      state = outcome.reduce(evolve, state);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      outcome = error;
    }
    steps.push({ command, before, outcome });
  }
  return { steps, events, state };
}

describe('decide and evolve, for any sequence of commands', () => {
  it('never make a status move the lifecycle forbids, and CANCELLED stays terminal', () => {
    fc.assert(
      fc.property(history, ([create, rest]) => {
        const { events } = run([create, ...rest]);
        let status: Status | null = null;
        for (const event of events) {
          if (event.type === 'INCIDENT_CREATED') {
            expect(status).toBeNull();
            status = 'OPEN';
            continue;
          }
          expect(status).not.toBeNull();
          if (event.type === 'INCIDENT_STATUS_CHANGED' || event.type === 'INCIDENT_RESOLVED') {
            const to: Status = event.type === 'INCIDENT_RESOLVED' ? 'RESOLVED' : event.data.to;
            expect(event.data.from).toBe(status);
            expect(LIFECYCLE_SPEC[status!]).toContain(to);
            expect(status).not.toBe('CANCELLED');
            status = to;
          }
        }
      }),
      RUNS,
    );
  });

  it('refuse a status move exactly when the lifecycle does not allow it', () => {
    fc.assert(
      fc.property(history, ([create, rest]) => {
        for (const { command, before, outcome } of run([create, ...rest]).steps) {
          if (command.type !== 'ChangeStatus' || before === null) continue;
          const forbidden =
            before.status !== command.newStatus && !LIFECYCLE_SPEC[before.status].includes(command.newStatus);
          expect(outcome instanceof InvalidTransition).toBe(forbidden);
        }
      }),
      RUNS,
    );
  });

  it('fold the same events into deep-equal, JSON-safe states every time', () => {
    fc.assert(
      fc.property(history, ([create, rest]) => {
        const { events, state } = run([create, ...rest]);
        const once = fold(events);
        const twice = fold(events);
        expect(twice).toEqual(once);
        expect(once).toEqual(state);
        expect(JSON.parse(JSON.stringify(once))).toEqual(once);
        // Folding from a snapshot taken midway gives the same state as folding from the start.
        const cut = Math.floor(events.length / 2);
        expect(fold(events.slice(cut), JSON.parse(JSON.stringify(fold(events.slice(0, cut)))))).toEqual(once);
      }),
      RUNS,
    );
  });

  it('decide nothing when a tag, ticket, severity, status or update command is repeated', () => {
    const repeatable = new Set([
      'UpdateIncident',
      'ChangeStatus',
      'ChangeSeverity',
      'AddTag',
      'RemoveTag',
      'LinkTicket',
    ]);
    fc.assert(
      fc.property(history, ([create, rest]) => {
        const { steps } = run([create, ...rest]);
        for (const { command, before, outcome } of steps) {
          if (!repeatable.has(command.type) || outcome instanceof DomainError) continue;
          const after = outcome.reduce(evolve, before);
          expect(decide(command, after)).toEqual([]);
        }
      }),
      RUNS,
    );
  });

  it('emit only events that pass their schema and read back unchanged from JSON', () => {
    fc.assert(
      fc.property(history, ([create, rest]) => {
        for (const event of run([create, ...rest]).events) {
          const result = eventDataSchemas[event.type].safeParse(event.data);
          expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
          const stored = JSON.parse(JSON.stringify(event.data)) as unknown;
          expect(parseEvent(event.type, stored, 1)).toEqual(event);
          expect(Object.values(event.data)).not.toContain(undefined);
        }
      }),
      RUNS,
    );
  });

  it('refuse every command but create on an incident that does not exist', () => {
    fc.assert(
      fc.property(laterCommand, (command) => {
        if (command.type === 'CreateIncident') return;
        expect(() => decide(command, null)).toThrow(IncidentNotFound);
      }),
      RUNS,
    );
  });
});
