import { describe, expect, it } from 'vitest';
import {
  AlertmanagerNotification,
  GrafanaNotification,
  mapAlertmanager,
} from '../../../src/ingest/alertmanager.ts';
import { EventsV2Body, mapEventsV2 } from '../../../src/ingest/events-v2.ts';
import { severityOf, type IngestDefaults } from '../../../src/ingest/mapping.ts';
import { alertmanagerNotification, grafanaNotification, type AlertSpec } from '../../ingest/payloads.ts';

const defaults: IngestDefaults = { projectId: 'default', environment: 'production', severity: 'SEV3' };

const mapped = (alerts: AlertSpec[], extra: Record<string, unknown> = {}, query = defaults) =>
  mapAlertmanager(AlertmanagerNotification.parse(alertmanagerNotification('g', alerts, extra)), query);

describe('severity words (INGEST.md)', () => {
  const table: [string, string][] = [
    ['critical', 'SEV1'],
    ['page', 'SEV1'],
    ['sev1', 'SEV1'],
    ['p1', 'SEV1'],
    ['error', 'SEV2'],
    ['high', 'SEV2'],
    ['major', 'SEV2'],
    ['sev2', 'SEV2'],
    ['p2', 'SEV2'],
    ['warning', 'SEV3'],
    ['medium', 'SEV3'],
    ['sev3', 'SEV3'],
    ['p3', 'SEV3'],
    ['info', 'SEV4'],
    ['low', 'SEV4'],
    ['minor', 'SEV4'],
    ['sev4', 'SEV4'],
    ['p4', 'SEV4'],
  ];
  it.each(table)('%s is %s, in any case', (word, severity) => {
    expect(severityOf(word)).toBe(severity);
    expect(severityOf(word.toUpperCase())).toBe(severity);
  });
  it('knows no other word', () => {
    expect(severityOf('disaster')).toBeUndefined();
  });
});

describe('Alertmanager mapping', () => {
  it("takes each alert's severity label, else its priority, else commonLabels, else the query default", () => {
    const alerts = mapped(
      [
        { fingerprint: 'a', severity: 'Critical' },
        { fingerprint: 'b', labels: { priority: 'P4' } },
        { fingerprint: 'c', severity: 'nonsense' },
        { fingerprint: 'd' },
      ],
      { commonLabels: { alertname: 'X', severity: 'error' } },
    ).alerts;
    expect(alerts.map((alert) => alert.severity)).toEqual(['SEV1', 'SEV4', 'SEV2', 'SEV2']);
    expect(
      mapped([{ fingerprint: 'a' }], { commonLabels: {} }, { ...defaults, severity: 'SEV4' }).alerts[0]!
        .severity,
    ).toBe('SEV4');
  });

  it('takes the service from service, service_name, app or job, else the query default, else unknown', () => {
    const service = (labels: Record<string, string>, query = defaults) =>
      mapped([{ fingerprint: 'a', labels }], { commonLabels: {} }, query).alerts[0]!.signal.serviceName;
    expect(service({ job: 'node', app: 'web', service_name: 'sn', service: 'checkout' })).toBe('checkout');
    expect(service({ job: 'node', app: 'web', service_name: 'sn' })).toBe('sn');
    expect(service({ job: 'node', app: 'web' })).toBe('web');
    expect(service({ job: 'node' })).toBe('node');
    expect(service({}, { ...defaults, serviceName: 'payments' })).toBe('payments');
    expect(service({})).toBe('unknown');
  });

  it('takes environment from environment or env and project from project or team, else the defaults', () => {
    const group = mapped([{ fingerprint: 'a' }], {
      commonLabels: { env: 'staging', team: 'sre', alertname: 'X' },
    });
    expect(group.incident).toMatchObject({ environment: 'staging', projectId: 'sre' });
    const plain = mapped([{ fingerprint: 'a' }], { commonLabels: {} });
    expect(plain.incident).toMatchObject({ environment: 'production', projectId: 'default' });
    const both = mapped(
      [{ fingerprint: 'a', labels: { environment: 'prod-eu', env: 'x', project: 'p', team: 't' } }],
      {
        commonLabels: {},
      },
    );
    expect(both.incident).toMatchObject({ environment: 'prod-eu', projectId: 'p' });
  });

  it('titles the incident by common summary, common alertname, then the first alert, cut to 200 characters', () => {
    const title = (extra: Record<string, unknown>, alerts: AlertSpec[] = [{ fingerprint: 'a' }]) =>
      mapped(alerts, extra).incident.title;
    expect(title({ commonAnnotations: { summary: 'Checkout down' } })).toBe('Checkout down');
    expect(title({ commonAnnotations: {}, commonLabels: { alertname: 'CheckoutDown' } })).toBe(
      'CheckoutDown',
    );
    expect(
      title({ commonLabels: {} }, [{ fingerprint: 'a', annotations: { summary: 'first summary' } }]),
    ).toBe('first summary');
    expect(
      title({ commonLabels: {} }, [
        { fingerprint: 'a', alertname: 'FirstName', annotations: { summary: '' } },
      ]),
    ).toBe('FirstName');
    expect(title({ commonAnnotations: { summary: 'x'.repeat(500) } })).toHaveLength(200);
  });

  it("takes times from the payload: a firing alert's startsAt, a resolved one's endsAt, Go's zero time as none", () => {
    const [firing, resolved] = mapped([
      { fingerprint: 'a', startsAt: '2026-11-26T10:00:00.123456789Z' },
      {
        fingerprint: 'b',
        status: 'resolved',
        startsAt: '2026-11-26T11:00:00+01:00',
        endsAt: '2026-11-26T10:30:00Z',
      },
    ]).alerts;
    expect(firing).toMatchObject({
      startsAt: '2026-11-26T10:00:00.123Z',
      signal: { ts: '2026-11-26T10:00:00.123Z' },
    });
    expect(firing!.signal.data).not.toHaveProperty('endsAt');
    expect(resolved).toMatchObject({
      status: 'resolved',
      startsAt: '2026-11-26T10:00:00.000Z',
      signal: { ts: '2026-11-26T10:30:00.000Z' },
    });
  });

  it('keeps labels, annotations, times and the generator URL in data; ignores unknown fields', () => {
    const body = alertmanagerNotification('g', [{ fingerprint: 'a' }], {
      notification_reason: 'repeat',
      routeLabels: {},
    });
    const [alert] = mapAlertmanager(AlertmanagerNotification.parse(body), defaults).alerts;
    expect(alert!.signal).toMatchObject({
      signalType: 'ALERT',
      source: 'alertmanager',
      summary: 'latency high on a',
      data: {
        labels: body.alerts[0]!.labels,
        annotations: body.alerts[0]!.annotations,
        startsAt: '2026-11-26T10:00:00.000Z',
        generatorURL: 'http://prometheus:9090/graph?g0.expr=up',
      },
    });
  });

  it("maps Grafana's payload the same way, with its URLs and values", () => {
    const group = mapAlertmanager(
      GrafanaNotification.parse(grafanaNotification('g', [{ fingerprint: 'a', severity: 'high' }])),
      defaults,
      'grafana',
    );
    expect(group.alerts[0]).toMatchObject({
      severity: 'SEV2',
      signal: {
        source: 'grafana',
        data: {
          values: { A: 2.5, B: null },
          dashboardURL: 'http://grafana/d/abc',
          panelURL: 'http://grafana/d/abc?viewPanel=1',
          silenceURL: 'http://grafana/alerting/silence/new',
          imageURL: 'http://grafana/render/abc.png',
        },
      },
    });
  });
});

describe('Events v2 mapping', () => {
  const trigger = EventsV2Body.parse({
    event_action: 'trigger',
    dedup_key: 'disk/db-1',
    payload: {
      summary: 'disk full',
      source: 'db-1',
      severity: 'critical',
      timestamp: '2026-11-26T10:00:00+00:00',
      component: 'postgres',
      custom_details: { free: '0%' },
    },
    links: [{ href: 'https://runbooks/disk' }],
  });

  it('is a group of one alert keyed by dedup_key, severity and service from the payload', () => {
    if (trigger.event_action === 'acknowledge') throw new Error('unreachable');
    const group = mapEventsV2(trigger, 'disk/db-1', defaults);
    expect(group).toMatchObject({
      groupKey: 'disk/db-1',
      incident: {
        title: 'disk full',
        serviceName: 'postgres',
        environment: 'production',
        projectId: 'default',
      },
      alerts: [
        {
          fingerprint: 'disk/db-1',
          status: 'firing',
          startsAt: '2026-11-26T10:00:00.000Z',
          severity: 'SEV1',
          signal: {
            source: 'db-1',
            summary: 'disk full',
            ts: '2026-11-26T10:00:00.000Z',
            data: { custom_details: { free: '0%' }, links: [{ href: 'https://runbooks/disk' }] },
          },
        },
      ],
    });
  });

  it('falls back to payload.source for the service; a resolve has no start time', () => {
    const resolve = EventsV2Body.parse({ event_action: 'resolve', dedup_key: 'k' });
    if (resolve.event_action === 'acknowledge') throw new Error('unreachable');
    const [alert] = mapEventsV2(resolve, 'k', defaults).alerts;
    expect(alert).toMatchObject({ status: 'resolved', fingerprint: 'k' });
    expect(alert).not.toHaveProperty('startsAt');
    const noComponent = EventsV2Body.parse({
      event_action: 'trigger',
      payload: { summary: 's', source: 'web-3', severity: 'info' },
    });
    if (noComponent.event_action === 'acknowledge') throw new Error('unreachable');
    expect(mapEventsV2(noComponent, 'gen', defaults).incident.serviceName).toBe('web-3');
  });

  it('refuses what PagerDuty refuses: no payload on a trigger, no key on a resolve, a long key', () => {
    expect(EventsV2Body.safeParse({ event_action: 'trigger' }).success).toBe(false);
    expect(EventsV2Body.safeParse({ event_action: 'resolve' }).success).toBe(false);
    expect(EventsV2Body.safeParse({ event_action: 'acknowledge', dedup_key: 'k'.repeat(256) }).success).toBe(
      false,
    );
    expect(
      EventsV2Body.safeParse({
        event_action: 'trigger',
        payload: { summary: 's', source: 'x', severity: 'fatal' },
      }).success,
    ).toBe(false);
  });
});
