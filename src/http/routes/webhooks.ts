import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Runtime } from '../../app/runtime.ts';
import { EVENT_TYPES } from '../../domain/incident/events.ts';
import { isPosition } from '../../eventstore/port.ts';
import { decodeCursor, encodeCursor } from '../../readmodel/cursor.ts';
import { notFound, validationFailed } from '../errors.ts';
import { OrgId, TAGS } from '../schemas.ts';

const tags = TAGS.webhooks;

const WebhookId = z
  .string()
  .max(64)
  .regex(/^wh_[0-9a-f]{1,60}$/, 'is not a webhook id');
const DeliveryId = z
  .string()
  .max(64)
  .regex(/^msg_[0-9a-f]{1,60}$/, 'is not a delivery id');
const Position = z.string().refine(isPosition, 'is not a position this API issued');
const WebhookParams = z.object({ orgId: OrgId, webhookId: WebhookId });
const EventTypes = z
  .array(z.enum(EVENT_TYPES))
  .min(1)
  .refine((types) => new Set(types).size === types.length, 'lists a type twice');
const Url = z.string().min(1).max(2000);

const CreateWebhookBody = z.object({
  url: Url,
  description: z.string().max(1000).optional(),
  eventTypes: EventTypes.optional().describe('default: all twelve'),
  enabled: z.boolean().default(true),
  fromPosition: Position.optional().describe('exclusive; default: the head of the log now'),
});
const UpdateWebhookBody = z.object({
  url: Url.optional(),
  description: z.string().max(1000).nullable().optional(),
  eventTypes: EventTypes.optional(),
  enabled: z.boolean().optional(),
});
const DeliveriesQuery = z.object({
  status: z.enum(['pending', 'succeeded', 'failed']).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(500).optional().describe('nextCursor of the previous page'),
});
const ReplayBody = z.object({
  fromPosition: Position.describe('exclusive'),
  toPosition: Position.optional().describe('inclusive; default: the newest event queued for the endpoint'),
});

const Webhook = z.object({
  id: z.string(),
  url: z.string(),
  description: z.string().nullable(),
  eventTypes: z.array(z.string()),
  enabled: z.boolean(),
  state: z.enum(['active', 'failing', 'disabled']),
  createdAt: z.string(),
  lastDeliveryAt: z.string().nullable(),
  lastError: z.string().nullable(),
});
const CreatedWebhook = Webhook.extend({ secret: z.string().describe('shown only here') });
const Delivery = z.object({
  id: z.string().describe('the webhook-id header of every attempt'),
  eventId: z.string(),
  eventType: z.string(),
  incidentId: z.string(),
  position: z.string(),
  status: z.enum(['pending', 'succeeded', 'failed']),
  attempts: z.array(
    z.object({
      at: z.string(),
      durationMs: z.number(),
      statusCode: z.number().optional(),
      error: z.string().optional(),
      responseSnippet: z.string().optional(),
    }),
  ),
  nextAttemptAt: z.string().nullable(),
});

const DeliveriesCursor = z.object({ webhook: z.string(), seq: z.string().regex(/^\d+$/) });

/** WEBHOOKS.md: the endpoints of an org, their secrets, their delivery log, redelivery and replay. */
export const webhookRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const { endpoints, guard } = runtime.webhooks;
  const cursorKey = runtime.config.cursorSecret;

  const refuseUrl = async (url: string) => {
    const reason = await guard.refuseUrl(url);
    if (reason) throw validationFailed(`the webhook URL ${reason}`, [{ path: 'url', message: reason }]);
  };
  const endpointOf = async (orgId: string, webhookId: string) => {
    const row = await endpoints.row(orgId, webhookId);
    if (!row) throw notFound(`webhook ${webhookId} not found`);
    return row;
  };

  app.post(
    '/api/orgs/:orgId/webhooks',
    {
      config: { operation: 'manageWebhooks' },
      schema: {
        tags,
        summary: 'Register an endpoint; the answer holds its secret, shown only here',
        params: z.object({ orgId: OrgId }),
        body: CreateWebhookBody,
        response: { 201: CreatedWebhook },
      },
    },
    async (request, reply) => {
      await refuseUrl(request.body.url);
      const { endpoint, secret } = await endpoints.create(request.params.orgId, request.body);
      runtime.webhooks.wake();
      reply.code(201).header('location', `/api/orgs/${request.params.orgId}/webhooks/${endpoint.id}`);
      return { ...endpoint, secret };
    },
  );

  app.get(
    '/api/orgs/:orgId/webhooks',
    {
      config: { operation: 'readWebhooks' },
      schema: {
        tags,
        summary: "The org's endpoints (never their secrets)",
        params: z.object({ orgId: OrgId }),
        response: { 200: z.object({ webhooks: z.array(Webhook) }) },
      },
    },
    async (request) => ({ webhooks: await endpoints.list(request.params.orgId) }),
  );

  app.get(
    '/api/orgs/:orgId/webhooks/:webhookId',
    {
      config: { operation: 'readWebhooks' },
      schema: { tags, summary: 'One endpoint', params: WebhookParams, response: { 200: Webhook } },
    },
    async (request) => {
      const found = await endpoints.get(request.params.orgId, request.params.webhookId);
      if (!found) throw notFound(`webhook ${request.params.webhookId} not found`);
      return found;
    },
  );

  app.patch(
    '/api/orgs/:orgId/webhooks/:webhookId',
    {
      config: { operation: 'manageWebhooks' },
      schema: {
        tags,
        summary: 'Change the URL, description, event types or enabled; enabling resumes where it stopped',
        params: WebhookParams,
        body: UpdateWebhookBody,
        response: { 200: Webhook },
      },
    },
    async (request) => {
      if (request.body.url !== undefined) await refuseUrl(request.body.url);
      const updated = await endpoints.update(request.params.orgId, request.params.webhookId, request.body);
      if (!updated) throw notFound(`webhook ${request.params.webhookId} not found`);
      if (updated.enabled) runtime.webhooks.wake();
      return updated;
    },
  );

  app.delete(
    '/api/orgs/:orgId/webhooks/:webhookId',
    {
      config: { operation: 'manageWebhooks' },
      schema: { tags, summary: 'Remove an endpoint and its delivery log', params: WebhookParams },
    },
    async (request, reply) => {
      if (!(await endpoints.delete(request.params.orgId, request.params.webhookId)))
        throw notFound(`webhook ${request.params.webhookId} not found`);
      return reply.code(204).send();
    },
  );

  app.post(
    '/api/orgs/:orgId/webhooks/:webhookId/rotate-secret',
    {
      config: { operation: 'manageWebhooks' },
      schema: {
        tags,
        summary: 'A new secret; for 24 hours both sign every attempt',
        params: WebhookParams,
        response: { 200: z.object({ secret: z.string() }) },
      },
    },
    async (request) => {
      const secret = await endpoints.rotateSecret(request.params.orgId, request.params.webhookId);
      if (!secret) throw notFound(`webhook ${request.params.webhookId} not found`);
      return { secret };
    },
  );

  app.get(
    '/api/orgs/:orgId/webhooks/:webhookId/deliveries',
    {
      config: { operation: 'readWebhooks' },
      schema: {
        tags,
        summary: 'The delivery log, newest first',
        params: WebhookParams,
        querystring: DeliveriesQuery,
        response: { 200: z.object({ deliveries: z.array(Delivery), nextCursor: z.string().nullable() }) },
      },
    },
    async (request) => {
      const { orgId, webhookId } = request.params;
      const { status, limit, cursor } = request.query;
      let beforeSeq: string | undefined;
      if (cursor !== undefined) {
        const payload = DeliveriesCursor.safeParse(decodeCursor(cursorKey, cursor));
        if (!payload.success || payload.data.webhook !== webhookId)
          throw validationFailed('the cursor is not one this API issued', [
            { path: 'cursor', message: 'is invalid or was tampered with' },
          ]);
        beforeSeq = payload.data.seq;
      }
      await endpointOf(orgId, webhookId);
      const page = await endpoints.deliveries(webhookId, { status, limit, beforeSeq });
      return {
        deliveries: page.deliveries,
        nextCursor:
          page.lastSeq === null ? null : encodeCursor(cursorKey, { webhook: webhookId, seq: page.lastSeq }),
      };
    },
  );

  app.post(
    '/api/orgs/:orgId/webhooks/:webhookId/deliveries/:deliveryId/redeliver',
    {
      config: { operation: 'manageWebhooks' },
      schema: {
        tags,
        summary: 'Attempt a delivery again now, with the same webhook-id',
        params: WebhookParams.extend({ deliveryId: DeliveryId }),
        response: { 202: z.object({ id: z.string(), status: z.literal('pending') }) },
      },
    },
    async (request, reply) => {
      const { orgId, webhookId, deliveryId } = request.params;
      await endpointOf(orgId, webhookId);
      if (!(await endpoints.redeliver(webhookId, deliveryId)))
        throw notFound(`delivery ${deliveryId} not found`);
      runtime.webhooks.wake();
      return reply.code(202).send({ id: deliveryId, status: 'pending' as const });
    },
  );

  app.post(
    '/api/orgs/:orgId/webhooks/:webhookId/replay',
    {
      config: { operation: 'manageWebhooks' },
      schema: {
        tags,
        summary: 'Deliver again every matching event in a range of the log',
        params: WebhookParams,
        body: ReplayBody,
        response: { 202: z.object({ deliveries: z.number().int() }) },
      },
    },
    async (request, reply) => {
      const endpoint = await endpointOf(request.params.orgId, request.params.webhookId);
      const deliveries = await endpoints.replay(endpoint, request.body.fromPosition, request.body.toPosition);
      runtime.webhooks.wake();
      return reply.code(202).send({ deliveries });
    },
  );
};
