import { EventEmitter } from 'node:events';
import type { Database } from '../src/db/database.ts';

/** A projection committed a batch: payload `<name> <position>`. */
export const PROGRESS_CHANNEL = 'its_projection_progress';
/** Someone asked for a projection to be rebuilt: payload `<name>`. */
export const REBUILD_CHANNEL = 'its_projection_rebuild';

const local = new EventEmitter().setMaxListeners(0);

/** Tells listeners in this process at once, without waiting for the NOTIFY to come back from the server. */
export function announce(database: Database, channel: string, payload: string): void {
  local.emit(channel, database, payload);
}

/**
 * Calls `onNotice` for every NOTIFY on `channel` (from any process) and every `announce` in this
 * process on the same database; with null after a reconnect, when notices may have been missed.
 */
export async function listenForNotices(
  database: Database,
  channel: string,
  onNotice: (payload: string | null) => void,
): Promise<() => Promise<void>> {
  const onLocal = (from: Database, payload: string) => {
    if (from === database) onNotice(payload);
  };
  local.on(channel, onLocal);
  try {
    const unlisten = await database.listen(channel, onNotice);
    return async () => {
      local.off(channel, onLocal);
      await unlisten();
    };
  } catch (error) {
    local.off(channel, onLocal);
    throw error;
  }
}
