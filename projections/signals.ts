import { UnprojectableEvent, instant, type Projector } from './projector.ts';

/** A row of `incident_signals`. */
export type SignalRow = {
  org_id: string;
  incident_id: string;
  id: string;
  signal_type: string;
  source: string;
  summary: string;
  service_name: string | null;
  environment: string | null;
  correlation_key: string | null;
  trace_id: string | null;
  data: Record<string, unknown> | null;
  ts: string;
  version: number;
};

/** `incident_signals`: one row per ingested signal. */
export const signalsProjector: Projector<SignalRow> = {
  name: 'signals',
  table: 'incident_signals',
  keyColumns: ['org_id', 'incident_id', 'id'],
  jsonColumns: ['data'],
  rowKey: (event) => (event.type === 'INCIDENT_SIGNAL_INGESTED' ? [event.orgId, event.incidentId, event.data.signalId] : null),
  evolve(row, event) {
    if (event.type !== 'INCIDENT_SIGNAL_INGESTED') throw new UnprojectableEvent(`${event.type} makes no signal`);
    if (row !== undefined) throw new UnprojectableEvent(`signal ${event.data.signalId} ingested twice`);
    const data = event.data;
    return {
      org_id: event.orgId,
      incident_id: event.incidentId,
      id: data.signalId,
      signal_type: data.signalType,
      source: data.source,
      summary: data.summary,
      service_name: data.serviceName ?? null,
      environment: data.environment ?? null,
      correlation_key: data.correlationKey ?? null,
      trace_id: data.traceId ?? null,
      data: data.data ?? null,
      ts: instant(data.ts),
      version: event.version,
    };
  },
};
