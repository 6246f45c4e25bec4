import type { SloViolationsTable } from '../src/db/schema.ts';
import { UnprojectableEvent, instant, type ProjectedRow, type Projector } from './projector.ts';

/** A row of `incident_slo_violations`. */
export type SloViolationRow = ProjectedRow<SloViolationsTable>;

/** `incident_slo_violations`: one row per recorded violation. */
export const sloViolationsProjector: Projector<SloViolationRow> = {
  name: 'slo_violations',
  table: 'incident_slo_violations',
  keyColumns: ['org_id', 'incident_id', 'id'],
  insertsOnly: true,
  rowKey: (event) =>
    event.type === 'INCIDENT_SLO_VIOLATION_RECORDED'
      ? [event.orgId, event.incidentId, event.data.violationId]
      : null,
  evolve(row, event) {
    if (event.type !== 'INCIDENT_SLO_VIOLATION_RECORDED')
      throw new UnprojectableEvent(`${event.type} records no SLO violation`);
    if (row !== undefined)
      throw new UnprojectableEvent(`SLO violation ${event.data.violationId} recorded twice`);
    const data = event.data;
    return {
      org_id: event.orgId,
      incident_id: event.incidentId,
      id: data.violationId,
      slo_id: data.sloId,
      window_start: instant(data.windowStart),
      window_end: instant(data.windowEnd),
      error_budget_consumed: data.errorBudgetConsumed,
      threshold_breached: data.thresholdBreached,
      details: data.details ?? null,
      version: event.version,
    };
  },
};
