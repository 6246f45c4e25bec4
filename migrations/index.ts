import type { Migration } from 'kysely';
import * as eventStore from './0001_event_store.ts';
import * as readModels from './0002_read_models.ts';
import * as commandSide from './0003_command_side.ts';
import * as appendHorizon from './0004_append_horizon.ts';
import * as alertSignals from './0005_alert_signals.ts';
import * as timelineAndStats from './0006_timeline_and_stats.ts';
import * as webhooks from './0007_webhooks.ts';
import * as responseTimeColumns from './0008_response_time_columns.ts';

/** Every migration, in order; names are their file names and never change once released. */
export const migrations: Record<string, Migration> = {
  '0001_event_store': eventStore,
  '0002_read_models': readModels,
  '0003_command_side': commandSide,
  '0004_append_horizon': appendHorizon,
  '0005_alert_signals': alertSignals,
  '0006_timeline_and_stats': timelineAndStats,
  '0007_webhooks': webhooks,
  '0008_response_time_columns': responseTimeColumns,
};
