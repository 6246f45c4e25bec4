import type { IncidentState } from '../domain/incident/index.ts';

/** An incident as the command handler last saw it: its state, and the last event of its stream. */
export interface CachedStream {
  state: IncidentState;
  version: number;
  position: string;
  /** The version of the latest snapshot (-1 for none): the next one is due `snapshotEvery` after it. */
  snapshotVersion: number;
  /** The stream's last event as appended or read (its metadata carries what the next event builds on). */
  last: { eventId: string; type: string; metadata: Record<string, unknown> };
}

/**
 * The incidents this process wrote last, least recently used dropped first. Only ever a guess: an
 * append made from it states the version it saw, so a stale entry costs one lost race (and a
 * reload), never a wrong write.
 */
export class StreamCache {
  private readonly entries = new Map<string, CachedStream>();

  constructor(private readonly capacity: number) {}

  get(streamName: string): CachedStream | undefined {
    const entry = this.entries.get(streamName);
    if (entry) {
      this.entries.delete(streamName);
      this.entries.set(streamName, entry);
    }
    return entry;
  }

  set(streamName: string, entry: CachedStream): void {
    if (this.capacity <= 0) return;
    this.entries.delete(streamName);
    this.entries.set(streamName, entry);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(streamName: string): void {
    this.entries.delete(streamName);
  }

  get size(): number {
    return this.entries.size;
  }
}
