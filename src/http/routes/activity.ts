import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Runtime } from '../../app/runtime.ts';
import {
  IncidentParams,
  IngestSignalBody,
  RecordActionBody,
  RecordSloViolationBody,
  TAGS,
  WriteHeaders,
  written,
} from '../schemas.ts';
import { executeWrite } from '../writes.ts';

const tags = TAGS.activity;

/** What happens around an incident: actions taken, signals seen, SLOs breached. Each answers with the new item's id. */
export const activityRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/actions',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'recordAction',
        summary:
          'Record an action: NOTE → INCIDENT_NOTE_ADDED, other kinds → INCIDENT_PLAYBOOK_ACTION_EXECUTED',
        params: IncidentParams,
        headers: WriteHeaders,
        body: RecordActionBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'RecordAction', ...request.body },
        itemField: 'actionId',
      }),
  );

  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/signals',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'ingestSignal',
        summary: 'Attach a signal (alert, metric, log, trace, deployment)',
        params: IncidentParams,
        headers: WriteHeaders,
        body: IngestSignalBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'IngestSignal', ...request.body },
        itemField: 'signalId',
      }),
  );

  app.post(
    '/api/orgs/:orgId/incidents/:incidentId/slo-violations',
    {
      config: { operation: 'writeIncidents' },
      schema: {
        tags,
        operationId: 'recordSloViolation',
        summary: 'Record an SLO violation',
        params: IncidentParams,
        headers: WriteHeaders,
        body: RecordSloViolationBody,
        response: written,
      },
    },
    async (request, reply) =>
      executeWrite(runtime, request, reply, {
        incidentId: request.params.incidentId,
        input: { type: 'RecordSloViolation', ...request.body },
        itemField: 'violationId',
      }),
  );
};
