/**
 * The test server on a thread of its own, as a real node runs in a process of its own: its
 * answers, events and the call's closing status alike, reach the client's socket while the
 * client's thread is busy, and the client then takes them in together. On the client's own
 * thread the server's writes interleave with the client's steps, so the closing status of a read
 * always comes after the client has stopped reading; a real node gives no such grace.
 */
import { Worker } from 'node:worker_threads';

export interface EventStoreDbTestServerThread {
  /** `esdb://127.0.0.1:<port>?tls=false` */
  readonly url: string;
  close(): Promise<void>;
}

/** The worker registers tsx's loader, then runs thread-worker.ts (TypeScript) under it. */
const BOOT = `
const { workerData } = require('node:worker_threads');
import('tsx/esm/api').then(({ register }) => { register(); return import(workerData.entry); });
`;

export async function startEventStoreDbTestServerThread(): Promise<EventStoreDbTestServerThread> {
  const worker = new Worker(BOOT, {
    eval: true,
    workerData: { entry: new URL('./thread-worker.ts', import.meta.url).href },
  });
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('message', (message: { url: string }) => resolve(message.url));
    worker.once('error', reject);
  });
  return {
    url,
    async close() {
      // A client that still holds calls may keep the server from shutting down: terminate anyway.
      const closed = new Promise<void>((resolve) => worker.once('message', () => resolve()));
      worker.postMessage('close');
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      await worker.terminate();
    },
  };
}
