import { createHash, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Runtime } from '../../app/runtime.ts';
import type { IngestResult } from '../../commands/alert-groups.ts';
import type { GroupNotification, IngestOptions } from '../../domain/alert-group/index.ts';
import { Severity } from '../../domain/incident/index.ts';
import { AlertmanagerNotification, GrafanaNotification, mapAlertmanager } from '../../ingest/alertmanager.ts';
import { EventsV2Body, mapEventsV2 } from '../../ingest/events-v2.ts';
import type { IngestDefaults } from '../../ingest/mapping.ts';
import { HttpProblem } from '../errors.ts';
import { CreateHeaders, OrgParams, TAGS } from '../schemas.ts';

const tags = TAGS.alerts;

const name = (max: number) => z.string().trim().min(1).max(max);
const flag = z.enum(['true', 'false']).transform((value) => value === 'true');

/** INGEST.md's query parameters: defaults where the payload's labels are silent. */
const IngestQuery = z.object({
  projectId: name(200).default('default'),
  environment: name(100).default('production'),
  serviceName: name(200).optional(),
  severity: Severity.default('SEV3'),
  autoResolve: flag.default(true),
  reopenWithin: z.coerce.number().int().min(0).max(31_536_000).optional().describe('seconds'),
});
type IngestQuery = z.infer<typeof IngestQuery>;

const IngestedIncidents = z
  .object({
    incidents: z.array(
      z.object({
        incidentId: z.string(),
        created: z.boolean(),
        version: z.number().int(),
        position: z.string(),
      }),
    ),
  })
  .meta({ id: 'IngestedIncidents' });

const EventsV2Accepted = z
  .object({ status: z.literal('success'), message: z.string(), dedup_key: z.string() })
  .meta({ id: 'EventsV2Accepted' });

/**
 * Senders drop a notification answered 429 (Alertmanager does), so an ingestion route over its
 * rate limit answers 503 with Retry-After, which they retry.
 */
const overloadIsUnavailable = {
  rateLimit: {
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) =>
      new HttpProblem('UNAVAILABLE', 'too many alert notifications right now; retry', undefined, {
        'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))),
      }),
  },
};

const defaultsOf = (query: IngestQuery): IngestDefaults => ({
  projectId: query.projectId,
  environment: query.environment,
  severity: query.severity,
  ...(query.serviceName !== undefined ? { serviceName: query.serviceName } : {}),
});
const optionsOf = (query: IngestQuery): IngestOptions => ({
  autoResolve: query.autoResolve,
  ...(query.reopenWithin !== undefined ? { reopenWithinSeconds: query.reopenWithin } : {}),
});

/** Alertmanager, Grafana and PagerDuty Events v2 webhooks (INGEST.md): thin, the logic is in the alert group. */
export const alertRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const context = (request: FastifyRequest) => ({
    orgId: (request.params as { orgId: string }).orgId,
    actor: { type: 'INTEGRATION' as const, ref: request.principal!.sub },
    correlationId: request.id,
  });

  /** Whether the read models include the write within the consistency timeout, as for every write. */
  const visible = async (result: IngestResult | null): Promise<boolean> =>
    result === null ||
    (await runtime.progress.waitFor(result.position, runtime.config.consistencyTimeoutMs).catch(() => false));

  const ingestGroup = async (
    request: FastifyRequest,
    reply: FastifyReply,
    notification: GroupNotification,
    query: IngestQuery,
  ) => {
    const result = await runtime.alertGroups.ingest(context(request), notification, optionsOf(query));
    reply.code((await visible(result)) ? 200 : 202);
    return { incidents: result ? [result] : [] };
  };

  app.post(
    '/api/orgs/:orgId/alerts/alertmanager',
    {
      config: { operation: 'writeIncidents', ...overloadIsUnavailable },
      schema: {
        tags,
        summary: 'Alertmanager webhook receiver (version 4): one incident per alert group',
        params: OrgParams,
        querystring: IngestQuery,
        body: AlertmanagerNotification,
        response: { 200: IngestedIncidents, 202: IngestedIncidents },
      },
    },
    async (request, reply) =>
      ingestGroup(request, reply, mapAlertmanager(request.body, defaultsOf(request.query)), request.query),
  );

  app.post(
    '/api/orgs/:orgId/alerts/grafana',
    {
      config: { operation: 'writeIncidents', ...overloadIsUnavailable },
      schema: {
        tags,
        summary: 'Grafana alerting webhook receiver (version 1): one incident per alert group',
        params: OrgParams,
        querystring: IngestQuery,
        body: GrafanaNotification,
        response: { 200: IngestedIncidents, 202: IngestedIncidents },
      },
    },
    async (request, reply) =>
      ingestGroup(
        request,
        reply,
        mapAlertmanager(request.body, defaultsOf(request.query), 'grafana'),
        request.query,
      ),
  );

  app.post(
    '/api/orgs/:orgId/alerts/events',
    {
      config: { operation: 'writeIncidents', ...overloadIsUnavailable },
      schema: {
        tags,
        summary: 'PagerDuty Events API v2: trigger, acknowledge, resolve by dedup_key',
        params: OrgParams,
        headers: CreateHeaders,
        querystring: IngestQuery,
        body: EventsV2Body,
        response: { 202: EventsV2Accepted },
      },
    },
    async (request, reply) => {
      const body = request.body;
      // A retried trigger without dedup_key keeps its key when it carries an Idempotency-Key.
      const retryKey = request.headers['idempotency-key'];
      const dedupKey =
        body.dedup_key ??
        (retryKey !== undefined
          ? createHash('sha256').update(retryKey).digest('hex').slice(0, 32)
          : randomUUID().replaceAll('-', ''));
      const result =
        body.event_action === 'acknowledge'
          ? await runtime.alertGroups.acknowledge(context(request), dedupKey)
          : await runtime.alertGroups.ingest(
              context(request),
              mapEventsV2(body, dedupKey, defaultsOf(request.query)),
              optionsOf(request.query),
            );
      // Answered 202 either way (the Events API's code), but only once visible, unless that times out.
      await visible(result);
      reply.code(202);
      return { status: 'success' as const, message: 'Event processed', dedup_key: dedupKey };
    },
  );
};
