import { evolve, parseEvent, type IncidentState } from '../domain/incident/index.ts';
import type { IncidentView } from '../readmodel/incidents.ts';
import type { ChainedEvent } from './chain.ts';

/**
 * The incident as the domain folds it from the stream, to hold against the row the read model
 * serves. `broken` once an event cannot be read as an incident event (its type or data was altered).
 */
export interface IncidentFold {
  state: IncidentState;
  broken: boolean;
}

export const EMPTY_FOLD: IncidentFold = { state: null, broken: false };

export function foldEvent(fold: IncidentFold, event: ChainedEvent): IncidentFold {
  if (fold.broken) return fold;
  try {
    const parsed = parseEvent(event.type, event.data, Number(event.metadata.schemaVersion ?? 1));
    return { state: evolve(fold.state, parsed), broken: false };
  } catch {
    return { state: fold.state, broken: true };
  }
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((item, index) => item === b[index]);

/** True when the read model's row says what the fold of a stream ending at `headVersion` says. */
export function matchesReadModel(
  fold: IncidentFold,
  headVersion: number,
  view: IncidentView | null,
): boolean {
  const state = fold.state;
  if (fold.broken || state === null || view === null) return false;
  return (
    view.version === headVersion &&
    view.status === state.status &&
    view.severity === state.severity &&
    view.projectId === state.projectId &&
    view.title === state.title &&
    view.description === state.description &&
    view.serviceName === state.serviceName &&
    view.environment === state.environment &&
    view.detectedBy === state.detectedBy &&
    view.runbookPath === state.runbookPath &&
    sameList(view.tags, state.tags) &&
    sameList(view.correlationKeys, state.correlationKeys) &&
    sameList(
      view.externalRefs.map((ref) => `${ref.system}\n${ref.key}`),
      state.tickets.map((ticket) => `${ticket.system}\n${ticket.key}`),
    )
  );
}
