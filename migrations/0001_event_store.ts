import { sql, type Kysely } from 'kysely';

/**
 * Events of the PostgreSQL event store. The global log is ordered by (tx_id, global_seq): readers
 * only read transactions below the oldest one still running (the snapshot's xmin), so an append that
 * commits late can never land behind a position a subscriber has already passed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table its_events (
      global_seq bigint generated always as identity,
      tx_id xid8 not null default pg_current_xact_id(),
      stream_name text not null,
      stream_group text not null,
      version bigint not null,
      event_id uuid not null,
      type text not null,
      data jsonb not null,
      metadata jsonb not null,
      created_at timestamptz not null default now(),
      primary key (tx_id, global_seq),
      unique (stream_name, version),
      unique (event_id)
    )`.execute(db);
  await sql`create index its_events_group_order on its_events (stream_group, tx_id, global_seq)`.execute(db);

  // One round trip per append. p_expected: -1 no stream, -2 any, else the expected version.
  await sql`
    create function its_append(p_stream text, p_group text, p_expected bigint, p_events jsonb)
    returns table (outcome text, version bigint, tx_id text, global_seq bigint)
    language plpgsql as $fn$
    declare
      v_count int := jsonb_array_length(p_events);
      v_current bigint;
      v_seq bigint;
      v_dup record;
    begin
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
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function its_append(text, text, bigint, jsonb)`.execute(db);
  await sql`drop table its_events`.execute(db);
}
