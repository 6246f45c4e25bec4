import { z } from 'zod';
import type { GroupNotification, IncomingAlert } from '../domain/alert-group/index.ts';
import {
  PayloadTime,
  StringMap,
  SUMMARY_MAX,
  TITLE_MAX,
  cut,
  defined,
  environmentFrom,
  payloadTime,
  projectFrom,
  serviceFrom,
  severityFrom,
  type IngestDefaults,
  type Labels,
} from './mapping.ts';

/** One alert of an Alertmanager webhook; unknown fields are dropped (Alertmanager adds some over time). */
const AlertmanagerAlert = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: StringMap,
  annotations: StringMap.default({}),
  startsAt: PayloadTime,
  endsAt: PayloadTime.optional(),
  generatorURL: z.string().max(4096).optional(),
  fingerprint: z.string().min(1).max(255),
});

const notificationFields = {
  groupKey: z.string().min(1).max(8192),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().max(1024).optional(),
  groupLabels: StringMap.default({}),
  commonLabels: StringMap.default({}),
  commonAnnotations: StringMap.default({}),
  externalURL: z.string().max(4096).optional(),
  truncatedAlerts: z.number().int().nonnegative().optional(),
};

/** Alertmanager's webhook body, `version: "4"`. */
export const AlertmanagerNotification = z.object({
  version: z.literal('4'),
  ...notificationFields,
  alerts: z.array(AlertmanagerAlert).min(1),
});
export type AlertmanagerNotification = z.infer<typeof AlertmanagerNotification>;

/** Grafana alerting's webhook body, `version: "1"`: Alertmanager's fields and a few of its own. */
export const GrafanaNotification = z.object({
  version: z.literal('1'),
  ...notificationFields,
  orgId: z.number().int().optional(),
  state: z.string().max(64).optional(),
  title: z.string().max(4096).optional(),
  message: z.string().max(65536).optional(),
  alerts: z
    .array(
      AlertmanagerAlert.extend({
        values: z.record(z.string(), z.number().nullable()).nullable().optional(),
        dashboardURL: z.string().max(4096).optional(),
        panelURL: z.string().max(4096).optional(),
        silenceURL: z.string().max(4096).optional(),
        imageURL: z.string().max(4096).optional(),
      }),
    )
    .min(1),
});
export type GrafanaNotification = z.infer<typeof GrafanaNotification>;

type GrafanaAlert = GrafanaNotification['alerts'][number];
type AnyAlert = GrafanaAlert | AlertmanagerNotification['alerts'][number];

/** INGEST.md's title rule: common summary, common alertname, then the first alert's. */
function titleOf(notification: AlertmanagerNotification | GrafanaNotification): string {
  const first = notification.alerts[0]!;
  const title =
    notification.commonAnnotations.summary ||
    notification.commonLabels.alertname ||
    first.annotations.summary ||
    first.labels.alertname ||
    ('title' in notification ? notification.title : undefined) ||
    'alert group';
  return cut(title, TITLE_MAX);
}

/** An Alertmanager (or Grafana) notification as one group's incoming alerts. */
export function mapAlertmanager(
  notification: AlertmanagerNotification | GrafanaNotification,
  defaults: IngestDefaults,
  source: 'alertmanager' | 'grafana' = 'alertmanager',
): GroupNotification {
  const common: Labels = notification.commonLabels;
  const first = notification.alerts[0]!.labels;
  const title = titleOf(notification);
  const alerts = notification.alerts.map((alert: AnyAlert): IncomingAlert => {
    const sets = [alert.labels, common];
    const grafana: Partial<GrafanaAlert> = alert;
    const startsAt = payloadTime(alert.startsAt);
    const endsAt = payloadTime(alert.endsAt);
    return {
      fingerprint: alert.fingerprint,
      status: alert.status,
      ...(startsAt !== undefined ? { startsAt } : {}),
      severity: severityFrom(sets, defaults.severity),
      signal: defined({
        signalType: 'ALERT' as const,
        source,
        summary: cut(alert.annotations.summary || alert.labels.alertname || title, SUMMARY_MAX),
        serviceName: serviceFrom(sets, defaults),
        environment: environmentFrom(sets, defaults),
        ts: alert.status === 'resolved' ? (endsAt ?? startsAt) : startsAt,
        data: defined({
          labels: alert.labels,
          annotations: alert.annotations,
          startsAt,
          endsAt,
          generatorURL: alert.generatorURL,
          values: grafana.values ?? undefined,
          dashboardURL: grafana.dashboardURL,
          panelURL: grafana.panelURL,
          silenceURL: grafana.silenceURL,
          imageURL: grafana.imageURL,
        }),
      }),
    };
  });
  return {
    groupKey: notification.groupKey,
    incident: {
      projectId: projectFrom([common, first], defaults),
      title,
      serviceName: serviceFrom([common, first], defaults),
      environment: environmentFrom([common, first], defaults),
      severity: defaults.severity,
    },
    alerts,
  };
}
