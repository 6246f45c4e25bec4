import { Migrator, type Kysely, type MigrationResult } from 'kysely';
import { migrations } from '../../migrations/index.ts';
import type { Schema } from './schema.ts';

/** Applies every pending migration; throws on the first failure (which rolls back). */
export async function migrateToLatest(db: Kysely<Schema>): Promise<MigrationResult[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'its_migrations',
    migrationLockTableName: 'its_migrations_lock',
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return results;
}
