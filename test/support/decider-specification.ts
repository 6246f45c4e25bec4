import { expect } from 'vitest';

/** What a decider is to its tests: three pure parts (STYLE.md, "The domain is a plain value"). */
export interface Decider<Command, Event, State> {
  initialState: State;
  evolve: (state: State, event: Event) => State;
  decide: (command: Command, state: State) => Event[];
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** The outcome of one decision, asserted the way the specification reads. */
export interface Decision<Event> {
  /** The events decided; for building a longer history out of earlier decisions. */
  readonly events: Event[];
  then(expected: Event[]): void;
  thenNothingHappened(): void;
  thenThrows(error: ErrorClass, fields?: Record<string, unknown>): void;
}

/**
 * given(events).when(command).then(events) | thenThrows(error) | thenNothingHappened(), after
 * Emmett's DeciderSpecification: the history is folded from the initial state, the command decided
 * once, and a thrown error kept so that `thenThrows` can check it (any other assertion rethrows it).
 */
export function deciderSpecification<Command, Event, State>(decider: Decider<Command, Event, State>) {
  return {
    given: (...history: Event[]) => ({
      when: (command: Command): Decision<Event> => {
        const state = history.reduce(decider.evolve, decider.initialState);
        let outcome: { events: Event[] } | { error: unknown };
        try {
          outcome = { events: decider.decide(command, state) };
        } catch (error) {
          outcome = { error };
        }
        const decided = (): Event[] => {
          if ('error' in outcome) throw outcome.error;
          return outcome.events;
        };
        return {
          get events() {
            return decided();
          },
          then: (expected) => expect(decided()).toEqual(expected),
          thenNothingHappened: () => expect(decided()).toEqual([]),
          thenThrows: (errorClass, fields) => {
            if (!('error' in outcome)) {
              expect.fail(`expected ${errorClass.name}, but decided ${JSON.stringify(outcome.events)}`);
            }
            expect(outcome.error).toBeInstanceOf(errorClass);
            if (fields) expect(outcome.error).toMatchObject(fields);
          },
        };
      },
    }),
  };
}
