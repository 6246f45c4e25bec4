import { z } from 'zod';
import type { Severity } from '../domain/incident/events.ts';

/** The query parameters of INGEST.md: what the payload's labels leave unsaid. */
export interface IngestDefaults {
  projectId: string;
  environment: string;
  serviceName?: string;
  severity: Severity;
}

export type Labels = Record<string, string>;

const SEVERITY_NAMES: Record<string, Severity> = {
  critical: 'SEV1',
  page: 'SEV1',
  sev1: 'SEV1',
  p1: 'SEV1',
  error: 'SEV2',
  high: 'SEV2',
  major: 'SEV2',
  sev2: 'SEV2',
  p2: 'SEV2',
  warning: 'SEV3',
  medium: 'SEV3',
  sev3: 'SEV3',
  p3: 'SEV3',
  info: 'SEV4',
  low: 'SEV4',
  minor: 'SEV4',
  sev4: 'SEV4',
  p4: 'SEV4',
};

/** A sender's severity word as an ITS severity, case-insensitive; undefined when it is none of INGEST.md's. */
export function severityOf(value: string | undefined): Severity | undefined {
  return value === undefined ? undefined : SEVERITY_NAMES[value.trim().toLowerCase()];
}

/** The first label of `names` present in the first label set that has one. */
function firstLabel(sets: readonly (Labels | undefined)[], names: readonly string[]): string | undefined {
  for (const labels of sets)
    for (const name of names) {
      const value = labels?.[name];
      if (value !== undefined && value !== '') return value;
    }
  return undefined;
}

/** Severity from label `severity` (or `priority`) of the sets in order, else the default. */
export function severityFrom(sets: readonly (Labels | undefined)[], fallback: Severity): Severity {
  for (const labels of sets) {
    const named = severityOf(labels?.severity) ?? severityOf(labels?.priority);
    if (named) return named;
  }
  return fallback;
}

export const serviceFrom = (sets: readonly (Labels | undefined)[], defaults: IngestDefaults): string =>
  firstLabel(sets, ['service', 'service_name', 'app', 'job']) ?? defaults.serviceName ?? 'unknown';
export const environmentFrom = (sets: readonly (Labels | undefined)[], defaults: IngestDefaults): string =>
  firstLabel(sets, ['environment', 'env']) ?? defaults.environment;
export const projectFrom = (sets: readonly (Labels | undefined)[], defaults: IngestDefaults): string =>
  firstLabel(sets, ['project', 'team']) ?? defaults.projectId;

export const TITLE_MAX = 200;
export const SUMMARY_MAX = 1024;

/** Cut to `max` characters without splitting a surrogate pair. */
export function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]!) ? max - 1 : max;
  return text.slice(0, end);
}

/** Alertmanager's "no end yet": Go's zero time. */
const ZERO_TIME_YEAR = 1;

/** A payload time as ISO-8601 UTC with milliseconds; undefined for Go's zero time. */
export function payloadTime(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return date.getUTCFullYear() <= ZERO_TIME_YEAR ? undefined : date.toISOString();
}

const EARLIEST = Date.UTC(1900, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** An RFC 3339 time as senders write it (any fraction, `Z` or an offset), or Go's zero time. */
export const PayloadTime = z
  .string()
  .max(64)
  .refine(
    (value) => {
      const time = Date.parse(value);
      if (!/^\d{4}-\d\d-\d\dT/.test(value) || Number.isNaN(time)) return false;
      return new Date(time).getUTCFullYear() <= ZERO_TIME_YEAR || (time >= EARLIEST && time <= LATEST);
    },
    { message: "must be an RFC 3339 date-time between 1900 and 9999 (or Go's zero time)" },
  );

/** Label and annotation maps: strings only, as Prometheus has them. */
export const StringMap = z.record(z.string(), z.string());

/** Drops undefined values, so a signal's `data` serialises the same way every time. */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
