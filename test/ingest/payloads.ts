/** Alertmanager, Grafana and Events v2 bodies as those senders write them, for the ingestion tests. */

export interface AlertSpec {
  fingerprint: string;
  status?: 'firing' | 'resolved';
  severity?: string;
  alertname?: string;
  startsAt?: string;
  endsAt?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export const T0 = '2026-11-26T10:00:00.000Z';
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

export function alertmanagerAlert(spec: AlertSpec) {
  const status = spec.status ?? 'firing';
  return {
    status,
    labels: {
      alertname: spec.alertname ?? 'HighLatency',
      ...(spec.severity ? { severity: spec.severity } : {}),
      instance: `host-${spec.fingerprint}`,
      ...spec.labels,
    },
    annotations: { summary: `latency high on ${spec.fingerprint}`, ...spec.annotations },
    startsAt: spec.startsAt ?? T0,
    endsAt: spec.endsAt ?? (status === 'resolved' ? '2026-11-26T10:05:00.000Z' : GO_ZERO_TIME),
    generatorURL: 'http://prometheus:9090/graph?g0.expr=up',
    fingerprint: spec.fingerprint,
  };
}

/** A version-4 webhook body for the group `groupKey` holding `alerts`. */
export function alertmanagerNotification(
  groupKey: string,
  alerts: AlertSpec[],
  extra: Record<string, unknown> = {},
) {
  const built = alerts.map(alertmanagerAlert);
  return {
    receiver: 'its',
    status: built.some((alert) => alert.status === 'firing') ? 'firing' : 'resolved',
    alerts: built,
    groupLabels: { alertname: 'HighLatency' },
    commonLabels: { alertname: 'HighLatency', service: 'checkout' },
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    version: '4',
    groupKey,
    truncatedAlerts: 0,
    ...extra,
  };
}

/** A Grafana alerting webhook body (version 1). */
export function grafanaNotification(groupKey: string, alerts: AlertSpec[]) {
  const base = alertmanagerNotification(groupKey, alerts);
  return {
    ...base,
    version: '1',
    orgId: 1,
    state: base.status === 'firing' ? 'alerting' : 'ok',
    title: '[FIRING:1] HighLatency',
    message: 'latency is high',
    alerts: base.alerts.map((alert) => ({
      ...alert,
      values: { A: 2.5, B: null },
      dashboardURL: 'http://grafana/d/abc',
      panelURL: 'http://grafana/d/abc?viewPanel=1',
      silenceURL: 'http://grafana/alerting/silence/new',
      imageURL: 'http://grafana/render/abc.png',
    })),
  };
}
