import { sql, type Kysely } from 'kysely';

/**
 * A global-log horizon that only appends to this store can hold back (read by
 * `src/eventstore/postgres/index.ts`), and statistics so plans are right from the first event.
 *
 * Before, readers read below the snapshot's xmin: the oldest transaction running anywhere in the
 * cluster, so a long transaction in another database, a read-model commit or a report query held
 * every subscriber back. Now an append names itself (`application_name` = `APPEND_MARK`, local to
 * its transaction) before its transaction has an id, and `its_horizon()` is the oldest running
 * transaction that is, or may be, such an append of this database.
 */

/** What an append sets `application_name` to for the length of its transaction. */
export const APPEND_MARK = 'its_append';

export async function up(db: Kysely<unknown>): Promise<void> {
  // As 0001's, but refusing a transaction that already has an id (its events could land below a
  // horizon a reader has passed), and naming itself an append.
  await sql`
    create or replace function its_append(p_stream text, p_group text, p_expected bigint, p_events jsonb)
    returns table (outcome text, version bigint, tx_id text, global_seq bigint)
    language plpgsql as $fn$
    declare
      v_count int := jsonb_array_length(p_events);
      v_current bigint;
      v_seq bigint;
      v_dup record;
    begin
      if pg_current_xact_id_if_assigned() is not null then
        raise exception 'its_append must be the first write of its transaction';
      end if;
      -- Named before this transaction has an xid, and until it ends: its_horizon() knows it for an
      -- append from the moment it can get one.
      perform set_config('application_name', ${sql.lit(APPEND_MARK)}, true);
      -- Taken before this transaction has an xid: later appends to one stream get larger xids.
      perform pg_advisory_xact_lock(hashtextextended(p_stream, 0));

      -- A retry whose events already landed answers where they landed, appending nothing.
      select e.stream_name, e.version, e.tx_id, e.global_seq into v_dup
        from its_events e where e.event_id = (p_events -> (v_count - 1) ->> 'eventId')::uuid;
      if found then
        if v_dup.stream_name <> p_stream then
          return query select 'duplicate_elsewhere'::text, v_dup.version, v_dup.tx_id::text, v_dup.global_seq;
        else
          return query select 'ok'::text, v_dup.version, v_dup.tx_id::text, v_dup.global_seq;
        end if;
        return;
      end if;

      select max(e.version) into v_current from its_events e where e.stream_name = p_stream;
      if (p_expected = -1 and v_current is not null)
         or (p_expected >= 0 and v_current is distinct from p_expected) then
        return query select 'wrong_version'::text, v_current, null::text, null::bigint;
        return;
      end if;
      v_current := coalesce(v_current, -1);

      with inserted as (
        insert into its_events (stream_name, stream_group, version, event_id, type, data, metadata)
        select p_stream, p_group, v_current + e.ord, (e.value ->> 'eventId')::uuid, e.value ->> 'type',
               e.value -> 'data', e.value -> 'metadata'
          from jsonb_array_elements(p_events) with ordinality as e(value, ord)
        returning its_events.global_seq
      )
      select max(inserted.global_seq) into v_seq from inserted;

      return query select 'ok'::text, v_current + v_count, pg_current_xact_id()::text, v_seq;
    end
    $fn$`.execute(db);

  // Readers see every transaction below the horizon as finished. The backends' states are read
  // once, after the statement's snapshot was taken (each backend's name before its xid): a
  // transaction in the snapshot's running list is passed over only if it still runs then in a
  // backend of another database, or of this one not named an append; since an append is named
  // before it has an id, such a one never appends. One that already ended, or whose backend this
  // role may not see (grant pg_read_all_stats to see every role's), still holds the horizon until
  // the next read. No lock table read: pg_locks would stop every append while it is read. STABLE, so
  // it sees the calling statement's snapshot.
  await sql`
    create function its_horizon() returns xid8 language sql stable as $fn$
      select coalesce(min(running), pg_snapshot_xmax(pg_current_snapshot()))
      from pg_snapshot_xip(pg_current_snapshot()) as running
      where running::text::bigint % 4294967296 not in (
        select backend_xid::text::bigint from pg_stat_get_activity(null)
        where backend_xid is not null
          and (datid is distinct from (select oid from pg_database where datname = current_database())
               or application_name is distinct from ${sql.lit(APPEND_MARK)}))
    $fn$`.execute(db);

  // A fresh table is never analysed before autovacuum gets to it: without statistics the planner
  // seq-scans it for the horizon and stream reads.
  await sql`analyze its_events`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function its_horizon()`.execute(db);
}
