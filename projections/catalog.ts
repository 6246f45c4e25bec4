import { actionsProjector } from './actions.ts';
import { incidentsProjector } from './incidents.ts';
import type { Projector } from './projector.ts';
import { signalsProjector } from './signals.ts';
import { sloViolationsProjector } from './slo-violations.ts';

/** Every projection, one per read model, by name. */
export const PROJECTORS: ReadonlyMap<string, Projector> = new Map<string, Projector>(
  [incidentsProjector, signalsProjector, actionsProjector, sloViolationsProjector].map((projector) => [
    projector.name,
    projector,
  ]),
);

export const PROJECTION_NAMES: readonly string[] = [...PROJECTORS.keys()];

export function projectorNamed(name: string): Projector {
  const projector = PROJECTORS.get(name);
  if (!projector)
    throw new RangeError(`unknown projection ${JSON.stringify(name)}; known: ${PROJECTION_NAMES.join(', ')}`);
  return projector;
}
