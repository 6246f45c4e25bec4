import { describe, expect, it } from 'vitest';
import {
  ALL_ALERTS_RESOLVED,
  decideAlertGroup,
  evolveAlertGroup,
  initialAlertGroupState,
  type AlertGroupEvent,
  type AlertGroupState,
  type GroupNotification,
  type IncidentView,
  type IncomingAlert,
  type IngestOptions,
} from '../../../src/domain/alert-group/index.ts';
import {
  decide,
  evolve,
  type IncidentEvent,
  type IncidentState,
  type Severity,
} from '../../../src/domain/incident/index.ts';

/**
 * Given notifications → when a notification → then the incident events, through both pure
 * deciders: the alert group plans, the incident decides the plan. Each incident keeps its events,
 * and a person's own write can be put in between (`people`).
 */
class AlertWorld {
  group: AlertGroupState = initialAlertGroupState;
  readonly incidents = new Map<
    string,
    { state: IncidentState; version: number; resolvedAt: string | null }
  >();
  private ids = 0;
  groupEvents: AlertGroupEvent[] = [];

  notify(notification: GroupNotification, at: string, options: Partial<IngestOptions> = {}) {
    const incident = this.view(this.group.incidentId);
    const events = decideAlertGroup(notification, { autoResolve: true, ...options }, this.group, incident, {
      now: at,
      newIncidentId: `inc_${++this.ids}`,
      eventId: `evt-${this.ids}`,
      detectedBy: 'alertmanager-prod',
    });
    this.groupEvents.push(...events);
    const written: { incidentId: string; events: IncidentEvent[] }[] = [];
    for (const event of events) {
      this.group = evolveAlertGroup(this.group, event);
      const plan = event.data.plan;
      written.push({ incidentId: plan.incidentId, events: this.apply(plan.incidentId, plan.command, at) });
    }
    return written;
  }

  /** A person's write, e.g. a manual resolve. */
  people(incidentId: string, events: IncidentEvent[], at: string) {
    this.record(incidentId, events, at);
  }

  private apply(incidentId: string, command: Parameters<typeof decide>[0], at: string): IncidentEvent[] {
    const events = decide(command, this.incidents.get(incidentId)?.state ?? null);
    this.record(incidentId, events, at);
    return events;
  }

  private record(incidentId: string, events: IncidentEvent[], at: string) {
    const current = this.incidents.get(incidentId) ?? { state: null, version: -1, resolvedAt: null };
    for (const event of events) {
      current.state = evolve(current.state, event);
      current.version++;
      if (event.type === 'INCIDENT_RESOLVED') current.resolvedAt = at;
    }
    this.incidents.set(incidentId, current);
  }

  private view(incidentId: string | null): IncidentView | null {
    const incident = incidentId ? this.incidents.get(incidentId) : undefined;
    if (!incident?.state) return null;
    return {
      incidentId: incidentId!,
      status: incident.state.status,
      severity: incident.state.severity,
      version: incident.version,
      resolvedAt: incident.resolvedAt,
    };
  }
}

const T = (seconds: number) => new Date(Date.UTC(2026, 10, 26, 10, 0, seconds)).toISOString();

function alert(
  fingerprint: string,
  status: 'firing' | 'resolved' = 'firing',
  severity: Severity = 'SEV3',
  startsAt: string | undefined = T(0),
): IncomingAlert {
  return {
    fingerprint,
    status,
    ...(startsAt !== undefined ? { startsAt } : {}),
    severity,
    signal: {
      signalType: 'ALERT',
      source: 'alertmanager',
      summary: `${fingerprint} ${status}`,
      ts: startsAt ?? T(0),
    },
  };
}

const notification = (...alerts: IncomingAlert[]): GroupNotification => ({
  groupKey: '{}:{alertname="HighLatency"}',
  incident: {
    projectId: 'payments',
    title: 'HighLatency',
    serviceName: 'checkout',
    environment: 'production',
    severity: 'SEV3',
  },
  alerts,
});

/** Event types with the fingerprint:status of signals, for short expectations. */
const shape = (events: IncidentEvent[]) =>
  events.map((event) =>
    event.type === 'INCIDENT_SIGNAL_INGESTED'
      ? `SIGNAL ${event.data.fingerprint}:${event.data.status}`
      : event.type === 'INCIDENT_SEVERITY_CHANGED'
        ? `SEVERITY ${event.data.from}→${event.data.to}`
        : event.type === 'INCIDENT_STATUS_CHANGED'
          ? `STATUS ${event.data.from}→${event.data.to}`
          : event.type === 'INCIDENT_CREATED'
            ? `CREATED ${event.data.severity}`
            : event.type,
  );

describe('alert group: one incident per group at a time', () => {
  it('opens an incident at the most severe firing alert, with the group correlation key, and records every alert', () => {
    const world = new AlertWorld();
    const [written] = world.notify(
      notification(alert('a', 'firing', 'SEV3'), alert('b', 'firing', 'SEV2')),
      T(1),
    );
    expect(shape(written!.events)).toEqual(['CREATED SEV2', 'SIGNAL a:firing', 'SIGNAL b:firing']);
    const created = written!.events[0]!;
    expect(created.type === 'INCIDENT_CREATED' && created.data).toMatchObject({
      title: 'HighLatency',
      serviceName: 'checkout',
      detectedBy: 'alertmanager-prod',
      correlationKeys: [expect.stringMatching(/^alertgroup:[0-9a-f]{32}$/)],
    });
    const signal = written!.events[1]!;
    expect(signal.type === 'INCIDENT_SIGNAL_INGESTED' && signal.data).toMatchObject({
      correlationKey: created.type === 'INCIDENT_CREATED' ? created.data.correlationKeys[0] : '',
      ts: T(0),
    });
  });

  it('adds later alerts of the group to the same incident while it is active', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a')), T(1));
    world.people(
      'inc_1',
      [{ type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'MITIGATED' } }],
      T(2),
    );
    const [written] = world.notify(notification(alert('a'), alert('b')), T(3));
    expect(written).toMatchObject({ incidentId: 'inc_1' });
    expect(shape(written!.events)).toEqual(['SIGNAL b:firing']);
  });

  it('a storm of 1,000 alerts is one group event and one incident write', () => {
    const world = new AlertWorld();
    const storm = Array.from({ length: 1000 }, (_, i) => alert(`f${i}`));
    const written = world.notify(notification(...storm), T(1));
    expect(world.groupEvents).toHaveLength(1);
    expect(written).toHaveLength(1);
    expect(written[0]!.events).toHaveLength(1001);
  });
});

describe('alert group: duplicates change nothing', () => {
  it('a repeat of the whole group appends nothing', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a'), alert('b', 'resolved')), T(1));
    expect(world.notify(notification(alert('a'), alert('b', 'resolved')), T(60))).toEqual([]);
  });

  it('a fingerprint twice in one payload counts once', () => {
    const world = new AlertWorld();
    const [written] = world.notify(notification(alert('a'), alert('a')), T(1));
    expect(shape(written!.events)).toEqual(['CREATED SEV3', 'SIGNAL a:firing']);
  });

  it('an alert with a new startsAt is new', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a')), T(1));
    const [written] = world.notify(notification(alert('a', 'firing', 'SEV3', T(30))), T(31));
    expect(shape(written!.events)).toEqual(['SIGNAL a:firing']);
  });
});

describe('alert group: resolve by alert, not by group status', () => {
  it('resolves when the last recorded fingerprint resolves, with the reason of INGEST.md', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a'), alert('b')), T(1));
    expect(shape(world.notify(notification(alert('a', 'resolved'), alert('b')), T(2))[0]!.events)).toEqual([
      'SIGNAL a:resolved',
    ]);
    const [last] = world.notify(notification(alert('b', 'resolved')), T(3));
    expect(last!.events.at(-1)).toEqual({
      type: 'INCIDENT_RESOLVED',
      data: { from: 'OPEN', reason: ALL_ALERTS_RESOLVED },
    });
  });

  it('autoResolve=false records the resolutions and leaves the status to people', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a')), T(1), { autoResolve: false });
    const [written] = world.notify(notification(alert('a', 'resolved')), T(2), { autoResolve: false });
    expect(shape(written!.events)).toEqual(['SIGNAL a:resolved']);
    expect(world.incidents.get('inc_1')!.state!.status).toBe('OPEN');
  });

  it('a resolved alert of a group with no active incident appends nothing', () => {
    const world = new AlertWorld();
    expect(world.notify(notification(alert('a', 'resolved')), T(1))).toEqual([]);
    world.notify(notification(alert('a')), T(2));
    world.notify(notification(alert('a', 'resolved')), T(3));
    expect(world.notify(notification(alert('b', 'resolved')), T(4))).toEqual([]);
  });
});

describe('alert group: severity only escalates by itself', () => {
  it('raises the incident when a more severe alert fires, never lowers it', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a', 'firing', 'SEV3')), T(1));
    const [raised] = world.notify(notification(alert('b', 'firing', 'SEV1')), T(2));
    expect(shape(raised!.events)).toEqual(['SIGNAL b:firing', 'SEVERITY SEV3→SEV1']);
    const [calmer] = world.notify(notification(alert('c', 'firing', 'SEV4')), T(3));
    expect(shape(calmer!.events)).toEqual(['SIGNAL c:firing']);
  });
});

describe('alert group: after resolution', () => {
  it('a new firing alert opens a new incident; the old one stays closed', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a')), T(1));
    world.notify(notification(alert('a', 'resolved')), T(2));
    const [next] = world.notify(notification(alert('b')), T(3));
    expect(next!.incidentId).toBe('inc_3');
    expect(shape(next!.events)).toEqual(['CREATED SEV3', 'SIGNAL b:firing']);
    expect(world.incidents.get('inc_1')!.state!.status).toBe('RESOLVED');
  });

  it('flapping (firing → resolved → firing within seconds) opens a second incident without reopenWithin', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a', 'firing', 'SEV3', T(0))), T(1));
    world.notify(notification(alert('a', 'resolved', 'SEV3', T(0))), T(3));
    const [again] = world.notify(notification(alert('a', 'firing', 'SEV3', T(5))), T(5));
    expect(again!.incidentId).not.toBe('inc_1');
    expect(shape(again!.events)).toEqual(['CREATED SEV3', 'SIGNAL a:firing']);
  });

  it('flapping within reopenWithin reopens the incident (RESOLVED → INVESTIGATING)', () => {
    const world = new AlertWorld();
    const options = { reopenWithinSeconds: 60 };
    world.notify(notification(alert('a', 'firing', 'SEV3', T(0))), T(1), options);
    world.notify(notification(alert('a', 'resolved', 'SEV3', T(0))), T(3), options);
    const [again] = world.notify(notification(alert('a', 'firing', 'SEV2', T(5))), T(5), options);
    expect(again!.incidentId).toBe('inc_1');
    expect(shape(again!.events)).toEqual([
      'STATUS RESOLVED→INVESTIGATING',
      'SIGNAL a:firing',
      'SEVERITY SEV3→SEV2',
    ]);
    // And it resolves again when the alert does.
    const [resolved] = world.notify(notification(alert('a', 'resolved', 'SEV3', T(5))), T(8), options);
    expect(shape(resolved!.events)).toEqual(['SIGNAL a:resolved', 'INCIDENT_RESOLVED']);
  });

  it('past reopenWithin a new incident opens', () => {
    const world = new AlertWorld();
    const options = { reopenWithinSeconds: 10 };
    world.notify(notification(alert('a')), T(1), options);
    world.notify(notification(alert('a', 'resolved')), T(2), options);
    const [later] = world.notify(notification(alert('a', 'firing', 'SEV3', T(40))), T(40), options);
    expect(later!.incidentId).not.toBe('inc_1');
  });

  it('a cancelled incident is never reopened', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a')), T(1), { reopenWithinSeconds: 600 });
    world.people(
      'inc_1',
      [{ type: 'INCIDENT_STATUS_CHANGED', data: { from: 'OPEN', to: 'CANCELLED' } }],
      T(2),
    );
    const [next] = world.notify(notification(alert('b')), T(3), { reopenWithinSeconds: 600 });
    expect(shape(next!.events)[0]).toBe('CREATED SEV3');
  });

  it('a person resolving it while an alert fires sticks until a new alert fires', () => {
    const world = new AlertWorld();
    world.notify(notification(alert('a')), T(1));
    world.people('inc_1', [{ type: 'INCIDENT_RESOLVED', data: { from: 'OPEN' } }], T(2));
    expect(world.notify(notification(alert('a')), T(60))).toEqual([]);
    expect(world.notify(notification(alert('a'), alert('b')), T(61))[0]!.incidentId).not.toBe('inc_1');
  });
});

describe('alert group: Events v2 keys', () => {
  it('a trigger without a timestamp repeated is one alert; resolve resolves; acknowledge moves OPEN only', () => {
    const world = new AlertWorld();
    const trigger = alert('disk/db-1', 'firing', 'SEV1', undefined);
    world.notify(notification(trigger), T(1));
    expect(world.notify(notification(trigger), T(2))).toEqual([]);
    const state = world.incidents.get('inc_1')!.state;
    expect(shape(decide({ type: 'IngestAlerts', acknowledge: true, signals: [] }, state))).toEqual([
      'STATUS OPEN→INVESTIGATING',
    ]);
    const investigating = evolve(state, {
      type: 'INCIDENT_STATUS_CHANGED',
      data: { from: 'OPEN', to: 'INVESTIGATING' },
    });
    expect(decide({ type: 'IngestAlerts', acknowledge: true, signals: [] }, investigating)).toEqual([]);
    const [resolved] = world.notify(notification(alert('disk/db-1', 'resolved', 'SEV1', undefined)), T(3));
    expect(shape(resolved!.events)).toEqual(['SIGNAL disk/db-1:resolved', 'INCIDENT_RESOLVED']);
  });
});
