import { describe, expect, it } from 'vitest';
import {
  INCIDENT_ID_PATTERN,
  ORG_ID_PATTERN,
  incidentStreamName,
  newIncidentId,
  orgStreamPrefix,
  parseIncidentStreamName,
} from '../../../src/domain/streams.ts';

describe('stream names', () => {
  it('name one stream per incident under its org prefix', () => {
    expect(incidentStreamName('acme', 'inc_123')).toBe('incident-acme.inc_123');
    expect(orgStreamPrefix('acme')).toBe('incident-acme.');
    expect(incidentStreamName('acme', 'inc_123').startsWith(orgStreamPrefix('acme'))).toBe(true);
  });

  it('parse back into org and incident', () => {
    expect(parseIncidentStreamName('incident-acme_1.inc_0190-ab')).toEqual({
      orgId: 'acme_1',
      incidentId: 'inc_0190-ab',
    });
    expect(parseIncidentStreamName(incidentStreamName('my-org', 'inc_x'))).toEqual({
      orgId: 'my-org',
      incidentId: 'inc_x',
    });
  });

  it.each([
    'incident-acme',
    'incident-.inc_1',
    'incident-acme.',
    'incident-acme.x_1',
    'other-acme.inc_1',
    '$ce-incident',
    'incident-a.b.inc_1',
  ])('reject %s', (name) => {
    expect(parseIncidentStreamName(name)).toBeNull();
  });

  it('keep an org id to its pattern: no dot, 1 to 64 characters', () => {
    expect(ORG_ID_PATTERN.test('Acme_01-x')).toBe(true);
    expect(ORG_ID_PATTERN.test('a.b')).toBe(false);
    expect(ORG_ID_PATTERN.test('')).toBe(false);
    expect(ORG_ID_PATTERN.test('a'.repeat(64))).toBe(true);
    expect(ORG_ID_PATTERN.test('a'.repeat(65))).toBe(false);
  });

  it('keep an incident id to at most 64 characters', () => {
    expect(INCIDENT_ID_PATTERN.test(`inc_${'a'.repeat(60)}`)).toBe(true);
    expect(INCIDENT_ID_PATTERN.test(`inc_${'a'.repeat(61)}`)).toBe(false);
    expect(INCIDENT_ID_PATTERN.test('inc_')).toBe(false);
  });
});

describe('newIncidentId', () => {
  it('is inc_ and a UUIDv7 without dashes', () => {
    const id = newIncidentId();
    expect(id).toMatch(/^inc_[0-9a-f]{12}7[0-9a-f]{19}$/);
    expect(id).toMatch(INCIDENT_ID_PATTERN);
  });

  it('is unique and sorts in creation order', () => {
    const ids = Array.from({ length: 200 }, () => newIncidentId());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});
