import { describe, expect, it } from 'vitest';
import * as domain from '../../src/domain/incident/index.ts';
import { DomainError } from '../../src/domain/incident/index.ts';
import { DOMAIN_PROBLEMS, toProblem } from '../../src/http/errors.ts';

/** Every DomainError subclass the domain exports, found by walking the module, not by a list to keep up to date. */
type DomainErrorClass = new () => DomainError;
const domainErrorClasses = (Object.values(domain) as unknown[]).filter(
  (value): value is DomainErrorClass =>
    typeof value === 'function' && (value as { prototype: unknown }).prototype instanceof DomainError,
);

describe('domain errors become problems in one explicit map', () => {
  it('finds the domain error classes', () => {
    expect(domainErrorClasses.map((type) => type.name).sort()).toEqual(
      expect.arrayContaining(['IncidentAlreadyExists', 'IncidentNotFound', 'InvalidTransition']),
    );
  });

  it.each(domainErrorClasses.map((type) => [type.name, type] as const))(
    '%s maps to the problem its code names, never a guessed one',
    (_name, type) => {
      const error = new type();
      expect(Object.keys(DOMAIN_PROBLEMS), `${error.code} is not in DOMAIN_PROBLEMS`).toContain(error.code);
      const mapped = toProblem(error);
      expect(mapped.problem.code).toBe(DOMAIN_PROBLEMS[error.code]);
      expect(mapped.problem.status).toBeGreaterThanOrEqual(400);
      expect(mapped.problem.status).toBeLessThan(500);
    },
  );

  it('answers INCIDENT_EXISTS as 409 INCIDENT_EXISTS', () => {
    const mapped = toProblem(new domain.IncidentAlreadyExists('inc_1'));
    expect(mapped.problem).toMatchObject({ status: 409, code: 'INCIDENT_EXISTS' });
  });

  it('answers a domain error with a code outside the map as a 500, not as a 409', () => {
    class Unmapped extends DomainError {
      readonly code = 'SOMETHING_NEW' as DomainError['code'];
    }
    expect(toProblem(new Unmapped('new rule')).problem).toMatchObject({ status: 500, code: 'INTERNAL' });
  });
});
