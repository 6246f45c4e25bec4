import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { signToken } from '../src/http/tokens.ts';
import { freePort } from '../test/support/ports.ts';

/** A server started as a child process, so it has a core of its own beside the load generator. */
export interface ChildServer {
  url: string;
  pid: number;
  rssBytes(): Promise<number>;
  /** A full garbage collection in the server (started with `collectable: true`), then a moment to settle. */
  collectGarbage(): Promise<void>;
  stop(): Promise<void>;
}

/** Node flags that let `collectGarbage` reach a server. */
const COLLECTABLE = ['--expose-gc', '--import', new URL('./gc-on-signal.mjs', import.meta.url).pathname];

export async function startChild(
  args: string[],
  env: Record<string, string>,
  readyPath: string,
  collectable = false,
): Promise<ChildServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, collectable ? [...COLLECTABLE, ...args] : args, {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  // A run that dies half-way must not leave a server behind to load the machine for the next one.
  const orphaned = () => child.kill('SIGKILL');
  process.once('exit', orphaned);
  child.once('exit', () => process.off('exit', orphaned));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
    try {
      if ((await fetch(url + readyPath)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${args.join(' ')} did not become ready`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url,
    pid: child.pid!,
    async rssBytes() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    },
    async collectGarbage() {
      // Without the handler, SIGUSR2 would end the server.
      if (!collectable) throw new Error(`${args.join(' ')} was not started collectable`);
      child.kill('SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 500));
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

/** The org and JWT secret the benchmarks' `its serve` works with. */
export const BENCH_ORG = 'bench';
const BENCH_SECRET = 'bench-secret-bench-secret-bench-secret';

/** `its serve` on the database at `databaseUrl` as the benchmarks run it (no rate limit to speak of), with `env` on top. */
export function startService(
  databaseUrl: string,
  env: Record<string, string> = {},
  collectable = false,
): Promise<ChildServer> {
  return startChild(
    ['bin/its.js', 'serve'],
    {
      DATABASE_URL: databaseUrl,
      JWT_SECRET: BENCH_SECRET,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '100000000',
      NODE_ENV: 'production',
      ...env,
    },
    '/health/ready',
    collectable,
  );
}

/** A token for `startService`'s server: `sub` with `role` in the bench org, for an hour. */
export function benchToken(sub: string, role = 'ORG_ADMIN'): string {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return signToken({ sub, orgs: { [BENCH_ORG]: [role] }, exp }, 'HS256', BENCH_SECRET);
}
