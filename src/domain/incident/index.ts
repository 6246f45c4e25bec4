import { decide } from './commands.ts';
import type { IncidentEvent } from './events.ts';
import { evolve, initialState, type IncidentState } from './state.ts';

export * from './commands.ts';
export * from './errors.ts';
export * from './events.ts';
export * from './state.ts';

/** The incident as a decider: a plain value of three pure parts. */
export const incidentDecider = { initialState, evolve, decide };

/** The state after `events`, starting from `state`. */
export function fold(events: readonly IncidentEvent[], state: IncidentState = initialState): IncidentState {
  return events.reduce(evolve, state);
}
