import type { Database } from '../db/database.ts';
import { incidentStreamName, orgStreamPrefix } from '../domain/streams.ts';
import type { EventStore } from '../eventstore/port.ts';
import { findIncident, toIncidentView, type IncidentView } from '../readmodel/incidents.ts';
import { ChainVerifier, type ChainVerdict } from './chain.ts';
import { EMPTY_FOLD, foldEvent, matchesReadModel, type IncidentFold } from './read-model.ts';

/** AUDIT.md's answer for one stream. */
export interface StreamVerification extends ChainVerdict {
  streamName: string;
  readModel: { version: number | null; matches: boolean };
}

export interface AuditDeps {
  store: EventStore;
  database: Database;
}

/** Events read per round trip. */
const PAGE = 1000;
const ORG_BATCH = 10_000;

/** One stream and what the read model holds for it, checked together. */
class StreamCheck {
  private readonly verifier = new ChainVerifier();
  private fold: IncidentFold = EMPTY_FOLD;
  lastPosition: string | null = null;

  constructor(readonly streamName: string) {}

  add(event: Parameters<ChainVerifier['add']>[0] & { position: string }): void {
    this.verifier.add(event);
    this.fold = foldEvent(this.fold, event);
    this.lastPosition = event.position;
  }

  result(view: IncidentView | null): StreamVerification {
    const verdict = this.verifier.result(view?.version ?? null);
    return {
      streamName: this.streamName,
      ...verdict,
      readModel: {
        version: view?.version ?? null,
        matches: matchesReadModel(this.fold, verdict.headVersion, view),
      },
    };
  }
}

/**
 * Verifies one incident's stream and compares its fold with the read model's row; null when
 * neither the stream nor the row exists. `beforeReadModel` may wait for the read models to reach
 * the stream's last position, so that a projection still catching up is not reported as a mismatch.
 */
export async function verifyIncident(
  deps: AuditDeps,
  orgId: string,
  incidentId: string,
  beforeReadModel?: (position: string) => Promise<unknown>,
): Promise<StreamVerification | null> {
  const check = new StreamCheck(incidentStreamName(orgId, incidentId));
  for (let fromVersion = 0; ;) {
    const page = await deps.store.readStream(check.streamName, { fromVersion, limit: PAGE });
    for (const event of page) check.add(event);
    if (page.length < PAGE) break;
    // After the last version read, not fromVersion + PAGE: a deleted event leaves a gap.
    fromVersion = page.at(-1)!.version + 1;
  }
  if (check.lastPosition !== null && beforeReadModel) await beforeReadModel(check.lastPosition);
  const view = await findIncident(deps.database.db, orgId, incidentId);
  if (check.lastPosition === null && view === null) return null;
  return check.result(view);
}

/**
 * Verifies every incident stream of an org in one pass over its log (global order, which is each
 * stream's version order), then holds each against the read model; streams the read model has but
 * the log lacks come last. `onProgress` gets the events read so far and the total.
 */
export async function verifyOrg(
  deps: AuditDeps,
  orgId: string,
  onProgress?: (done: number, total: number) => void,
): Promise<StreamVerification[]> {
  const streamPrefix = orgStreamPrefix(orgId);
  const total = await deps.store.countEvents({ streamPrefix });
  const checks = new Map<string, StreamCheck>();
  let done = 0;
  const read = (fromPosition: string | null) =>
    deps.store.readAll({ fromPosition, streamPrefix, limit: ORG_BATCH });
  // The next batch is read while this one is hashed.
  for (let next = read(null); ;) {
    const batch = await next;
    if (batch.length === ORG_BATCH) next = read(batch.at(-1)!.position);
    for (const event of batch) {
      let check = checks.get(event.streamName);
      if (!check) checks.set(event.streamName, (check = new StreamCheck(event.streamName)));
      check.add(event);
    }
    done += batch.length;
    onProgress?.(done, Math.max(total, done));
    if (batch.length < ORG_BATCH) break;
  }
  const rows = await deps.database.db
    .selectFrom('incidents')
    .selectAll()
    .where('org_id', '=', orgId)
    .execute();
  const views = new Map(rows.map((row) => [incidentStreamName(orgId, row.id), toIncidentView(row)]));
  const results = [...checks.values()].map((check) => check.result(views.get(check.streamName) ?? null));
  for (const [streamName, view] of views) {
    if (!checks.has(streamName)) results.push(new StreamCheck(streamName).result(view));
  }
  return results;
}
