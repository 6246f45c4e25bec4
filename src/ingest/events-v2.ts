import { z } from 'zod';
import type { GroupNotification } from '../domain/alert-group/index.ts';
import {
  PayloadTime,
  SUMMARY_MAX,
  TITLE_MAX,
  cut,
  defined,
  payloadTime,
  severityOf,
  type IngestDefaults,
} from './mapping.ts';

const Payload = z.object({
  summary: z.string().min(1).max(1024),
  source: z.string().min(1).max(1024),
  severity: z.enum(['critical', 'error', 'warning', 'info']),
  timestamp: PayloadTime.optional(),
  component: z.string().max(1024).optional(),
  group: z.string().max(1024).optional(),
  class: z.string().max(1024).optional(),
  custom_details: z.unknown().optional(),
});

const Link = z.object({ href: z.string().max(4096), text: z.string().max(1024).optional() });
const Image = z.object({
  src: z.string().max(4096),
  href: z.string().max(4096).optional(),
  alt: z.string().max(1024).optional(),
});

const common = {
  routing_key: z.string().max(1024).optional(),
  links: z.array(Link).max(100).optional(),
  images: z.array(Image).max(100).optional(),
};
const DedupKey = z.string().min(1).max(255);

/** A PagerDuty Events API v2 body; acknowledge and resolve name the key they act on. */
export const EventsV2Body = z.discriminatedUnion('event_action', [
  z.object({
    event_action: z.literal('trigger'),
    dedup_key: DedupKey.optional(),
    payload: Payload,
    ...common,
  }),
  z.object({
    event_action: z.literal('acknowledge'),
    dedup_key: DedupKey,
    payload: Payload.optional(),
    ...common,
  }),
  z.object({
    event_action: z.literal('resolve'),
    dedup_key: DedupKey,
    payload: Payload.optional(),
    ...common,
  }),
]);
export type EventsV2Body = z.infer<typeof EventsV2Body>;

/** A trigger or resolve as a group of one alert keyed by its dedup key (given, or generated for a trigger). */
export function mapEventsV2(
  body: Exclude<EventsV2Body, { event_action: 'acknowledge' }>,
  dedupKey: string,
  defaults: IngestDefaults,
): GroupNotification {
  const payload = body.payload;
  const timestamp = payloadTime(payload?.timestamp);
  const firing = body.event_action === 'trigger';
  const severity = severityOf(payload?.severity) ?? defaults.severity;
  const summary = payload?.summary ?? `resolved ${dedupKey}`;
  const serviceName = payload?.component || payload?.source || defaults.serviceName || 'unknown';
  return {
    groupKey: dedupKey,
    incident: {
      projectId: defaults.projectId,
      title: cut(summary, TITLE_MAX),
      serviceName,
      environment: defaults.environment,
      severity: defaults.severity,
    },
    alerts: [
      {
        fingerprint: dedupKey,
        status: firing ? 'firing' : 'resolved',
        // A trigger's time is when the alert started; a resolve's is when it ended.
        ...(firing && timestamp !== undefined ? { startsAt: timestamp } : {}),
        severity,
        signal: defined({
          signalType: 'ALERT' as const,
          source: payload?.source ?? 'events-v2',
          summary: cut(summary, SUMMARY_MAX),
          serviceName,
          environment: defaults.environment,
          ts: timestamp,
          data: defined({
            dedupKey,
            severity: payload?.severity,
            component: payload?.component,
            group: payload?.group,
            class: payload?.class,
            custom_details: payload?.custom_details,
            links: body.links,
            images: body.images,
          }),
        }),
      },
    ],
  };
}
