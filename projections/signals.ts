import type { SignalsTable } from '../src/db/schema.ts';
import { UnprojectableEvent, instant, type ProjectedRow, type Projector } from './projector.ts';

/** A row of `incident_signals`. */
export type SignalRow = ProjectedRow<SignalsTable>;

/** `incident_signals`: one row per ingested signal. */
export const signalsProjector: Projector<SignalRow> = {
  name: 'signals',
  table: 'incident_signals',
  keyColumns: ['org_id', 'incident_id', 'id'],
  insertsOnly: true,
  rowKey: (event) =>
    event.type === 'INCIDENT_SIGNAL_INGESTED' ? [event.orgId, event.incidentId, event.data.signalId] : null,
  evolve(row, event) {
    if (event.type !== 'INCIDENT_SIGNAL_INGESTED')
      throw new UnprojectableEvent(`${event.type} makes no signal`);
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
      fingerprint: data.fingerprint ?? null,
      status: data.status ?? null,
      data: data.data ?? null,
      ts: instant(data.ts),
      version: event.version,
    };
  },
};
