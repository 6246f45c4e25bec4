import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Runtime } from '../../app/runtime.ts';
import { decodeCursor, encodeCursor } from '../../readmodel/cursor.ts';
import { incidentDetails, listIncidents, type Keyset } from '../../readmodel/incidents.ts';
import { notFound, validationFailed } from '../errors.ts';
import {
  AddTagBody,
  ChangeSeverityBody,
  ChangeStatusBody,
  CreateHeaders,
  CreateIncidentBody,
  IncidentDetails,
  IncidentList,
  IncidentParams,
  LinkTicketBody,
  ListIncidentsQuery,
  OrgParams,
  Tag,
  TAGS,
  UpdateIncidentBody,
  WriteHeaders,
  written,
} from '../schemas.ts';
import { executeWrite } from '../writes.ts';

/** What a list cursor carries (inside its signature): where the page ended, under which sort. */
const CursorPayload = z.object({
  org: z.string(),
  sort: z.enum(['createdAt', 'updatedAt', 'severity']),
  order: z.enum(['asc', 'desc']),
  after: z.object({
    rank: z.number().int().optional(),
    ts: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
    id: z.string(),
  }),
});

const tags = TAGS.incidents;

/** The incident itself: list, details, create, and the changes to its own fields. */
export const incidentRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const db = runtime.database.db;
  const cursorKey = runtime.config.cursorSecret;

  app.get(
    '/api/orgs/:orgId/incidents',
    {
      config: { operation: 'readIncidents' },
      schema: {
        tags,
        operationId: 'listIncidents',
        summary: 'List incidents',
        params: OrgParams,
        querystring: ListIncidentsQuery,
        response: { 200: IncidentList },
      },
    },
    async (request) => {
      const { orgId } = request.params;
      const { cursor, sort, order, limit, ...filter } = request.query;
      let after: Keyset | undefined;
      if (cursor !== undefined) {
        const payload = CursorPayload.safeParse(decodeCursor(cursorKey, cursor));
        if (!payload.success || payload.data.org !== orgId) {
          throw validationFailed('the cursor is not one this API issued', [
            { path: 'cursor', message: 'is invalid or was tampered with' },
          ]);
        }
        if (payload.data.sort !== sort || payload.data.order !== order) {
          throw validationFailed('the cursor belongs to another sort order', [
            {
              path: 'cursor',
              message: `was issued for sort=${payload.data.sort}&order=${payload.data.order}`,
            },
          ]);
        }
        after = payload.data.after;
      }
      const page = await listIncidents(db, orgId, { filter, sort, order, limit, after });
      return {
        incidents: page.incidents,
        nextCursor: page.next ? encodeCursor(cursorKey, { org: orgId, sort, order, after: page.next }) : null,
      };
    },
  );

  app.get(
    '/api/orgs/:orgId/incidents/:incidentId',
    {
      config: { operation: 'readIncidents' },
      schema: {
        tags,
        operationId: 'getIncident',
        summary: 'One incident with its signals, actions and SLO violations (oldest first)',
        params: IncidentParams,
        response: { 200: IncidentDetails },
      },
    },
    async (request, reply) => {
      const { orgId, incidentId } = request.params;
      const details = await incidentDetails(db, orgId, incidentId);
      if (!details) throw notFound(`incident ${incidentId} not found`);
      reply.header('etag', `"${details.incident.version}"`);
      return details;
    },
  );

  app.post(
    '/api/orgs/:orgId/incidents',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'createIncident',
        summary: 'Declare an incident (INCIDENT_CREATED)',
        params: OrgParams,
        headers: CreateHeaders,
        body: CreateIncidentBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: null,
        input: { type: 'CreateIncident', ...request.body },
      }),
  );

  app.patch(
    '/api/orgs/:orgId/incidents/:incidentId',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'updateIncident',
        summary: 'Change fields (INCIDENT_UPDATED with the changed fields only)',
        params: IncidentParams,
        headers: WriteHeaders,
        body: UpdateIncidentBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'UpdateIncident', changes: request.body },
      }),
  );

  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/status',
    {
      config: { operation: 'changeStatus' },
      schema: {
        tags,
        operationId: 'changeStatus',
        summary: 'Move through the lifecycle (409 when the move is not allowed)',
        params: IncidentParams,
        headers: WriteHeaders,
        body: ChangeStatusBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'ChangeStatus', ...request.body },
      }),
  );

  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/severity',
    {
      config: { operation: 'changeSeverity' },
      schema: {
        tags,
        operationId: 'changeSeverity',
        summary: 'Change the severity',
        params: IncidentParams,
        headers: WriteHeaders,
        body: ChangeSeverityBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'ChangeSeverity', ...request.body },
      }),
  );

  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/tags',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'addTag',
        summary: 'Add a tag',
        params: IncidentParams,
        headers: WriteHeaders,
        body: AddTagBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'AddTag', tag: request.body.tag },
      }),
  );

  app.delete(
    '/api/orgs/:orgId/incidents/:incidentId/tags/:tag',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'removeTag',
        summary: 'Remove a tag',
        params: IncidentParams.extend({ tag: Tag }),
        headers: WriteHeaders,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'RemoveTag', tag: request.params.tag },
      }),
  );

  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/tickets',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'linkTicket',
        summary: 'Link a ticket (INCIDENT_LINKED_TO_TICKET)',
        params: IncidentParams,
        headers: WriteHeaders,
        body: LinkTicketBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'LinkTicket', ...request.body },
      }),
  );
};
