/**
 * A PostgreSQL store commit as one statement: a server-side function, installed
 * with the schema (postgres.ts), takes the whole batch as arrays and does in the
 * database what the store did in a dozen statements (BEGIN, the fence, the
 * conversation locks, every insert and update of postgres.ts and
 * postgres-chat.ts, COMMIT). One statement outside BEGIN is its own
 * transaction: all of it commits or none. The node then pays one write of the
 * query and one small reply per commit, instead of a round trip, a write and a
 * parse of results for each statement: that was most of a cluster node's CPU
 * per message, its commits being small.
 *
 * The semantics are those of the statements it replaces:
 * - the fence of every lease first (the cluster's fence function, by name, so
 *   that its refusal SQF01 with its DETAIL reaches the caller unchanged);
 * - the conversations' rows locked FOR UPDATE in one order, then the order check
 *   (each conversation's entries continue its stored log, gapless);
 * - rule breaks the store finds itself raise COMMIT_REFUSED_SQLSTATE with the
 *   message the store's StoreConflictError carries; unique violations stay 23505;
 * - edits and deletes, and membership changes, applied one by one in batch order;
 * - the users' version rows bumped last, in one order of the user ids.
 */

/** SQLSTATE of a batch the commit function refuses for breaking a rule of the log (a StoreConflictError). */
export const COMMIT_REFUSED_SQLSTATE = 'SQS01';

/** The commit function's name in schema `s`. */
export function commitFunctionName(s: string): string {
  return `${s}.sequent_commit`;
}

/**
 * The call of the commit function: $1 the fence function's name (empty: unfenced), then
 * the arrays in the order commitArgs gives them.
 */
export function commitCallSql(s: string): string {
  const casts = [
    'text',
    'integer[]',
    'bigint[]',
    'text[]',
    'text[]',
    ...['text', 'bigint', 'text', 'text', 'bigint', 'text', 'text', 'text', 'bigint', 'text', 'text', 'bigint', 'bigint'].map((t) => `${t}[]`),
    ...['text', 'text', 'text', 'bigint'].map((t) => `${t}[]`),
    ...['text', 'text', 'bigint', 'bigint'].map((t) => `${t}[]`),
  ];
  return `SELECT ${commitFunctionName(s)}(${casts.map((t, i) => `$${i + 1}::${t}`).join(', ')})`;
}

/**
 * CREATE OR REPLACE of the commit function over the tables of schema `s` (run by init
 * when the schema fingerprint changes). Another parameter list would add an overload
 * beside the old function rather than replace it: such a change drops the old one too.
 */
export function commitFunctionSql(s: string): string {
  return `
CREATE OR REPLACE FUNCTION ${commitFunctionName(s)}(
  p_fence_fn text, p_slots integer[], p_epochs bigint[],
  p_new_conv text[], p_new_kind text[],
  e_conv text[], e_seq bigint[], e_kind text[], e_mid text[], e_ts bigint[], e_from text[], e_dev text[],
  e_cmid text[], e_dseq bigint[], e_body text[], e_ctx text[], e_ref bigint[], e_epoch bigint[],
  m_op text[], m_conv text[], m_user text[], m_seq bigint[],
  r_conv text[], r_user text[], r_seq bigint[], r_pub bigint[]
) RETURNS void LANGUAGE plpgsql AS $commit$
DECLARE
  v_convs text[];
  v_locked bigint;
  v_conv text;
  v_seq bigint;
  v_prev bigint;
  v_aconv text[];
  v_amember text[];
  r record;
BEGIN
  -- The fence of every lease, first: each lease row stays locked FOR KEY SHARE until the end.
  IF p_fence_fn <> '' AND cardinality(p_slots) > 0 THEN
    EXECUTE format('SELECT %s(f.slot, f.epoch) FROM unnest($1::integer[], $2::bigint[]) AS f(slot, epoch)', p_fence_fn) USING p_slots, p_epochs;
  END IF;
  IF cardinality(p_new_conv) > 0 THEN
    INSERT INTO ${s}.convs (conv, kind) SELECT * FROM unnest(p_new_conv, p_new_kind);
  END IF;
  -- The head of every conversation the batch writes, locked in one order (a second owner's batch waits, then fails the order check).
  v_convs := ARRAY(SELECT DISTINCT c FROM unnest(e_conv || m_conv || r_conv) AS c);
  IF cardinality(v_convs) = 0 THEN
    RETURN;
  END IF;
  SELECT count(*) INTO v_locked FROM (SELECT 1 FROM ${s}.convs WHERE conv = ANY(v_convs) ORDER BY conv COLLATE "C" FOR UPDATE) AS locked;
  IF v_locked < cardinality(v_convs) THEN
    SELECT u.c INTO v_conv FROM unnest(e_conv || m_conv || r_conv) WITH ORDINALITY AS u(c, n)
     WHERE NOT EXISTS (SELECT 1 FROM ${s}.convs x WHERE x.conv = u.c) ORDER BY u.n LIMIT 1;
    RAISE EXCEPTION 'conversation % does not exist', v_conv USING ERRCODE = '${COMMIT_REFUSED_SQLSTATE}';
  END IF;
  -- Each conversation's entries must continue its stored log, gapless.
  SELECT e.conv, e.seq, h.last + e.rn - 1 INTO v_conv, v_seq, v_prev
    FROM (SELECT u.conv, u.seq, u.n, row_number() OVER (PARTITION BY u.conv ORDER BY u.n) AS rn
            FROM unnest(e_conv, e_seq) WITH ORDINALITY AS u(conv, seq, n)) AS e
    JOIN ${s}.convs h ON h.conv = e.conv
   WHERE e.seq <> h.last + e.rn
   ORDER BY e.n LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '%: seq % does not follow %', v_conv, v_seq, v_prev USING ERRCODE = '${COMMIT_REFUSED_SQLSTATE}';
  END IF;
  IF cardinality(e_conv) > 0 THEN
    INSERT INTO ${s}.entries (conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, ctx, ref, mcount, epoch)
    SELECT u.conv, u.seq, u.kind, u.mid, u.ts, u.from_user, u.dev, u.cmid, u.dseq, u.body, u.ctx, u.ref,
           h.msgs + count(*) FILTER (WHERE u.kind = 'msg') OVER (PARTITION BY u.conv ORDER BY u.n), u.epoch
      FROM unnest(e_conv, e_seq, e_kind, e_mid, e_ts, e_from, e_dev, e_cmid, e_dseq, e_body, e_ctx, e_ref, e_epoch)
             WITH ORDINALITY AS u(conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, ctx, ref, epoch, n)
      JOIN ${s}.convs h ON h.conv = u.conv;
  END IF;
  IF cardinality(e_conv) > 0 THEN
    -- Each lane's highest dseq and range of orderable cmids (printable ASCII: cmid-order.ts; an encoded cmid never is).
    INSERT INTO ${s}.device_lanes AS l (conv, from_user, dev, last_dseq, min_cmid, max_cmid)
    SELECT u.conv, u.from_user, u.dev, max(u.dseq),
           min(u.cmid COLLATE "C") FILTER (WHERE u.cmid ~ '^[ -~]+$'), max(u.cmid COLLATE "C") FILTER (WHERE u.cmid ~ '^[ -~]+$')
      FROM unnest(e_conv, e_from, e_dev, e_dseq, e_cmid) AS u(conv, from_user, dev, dseq, cmid)
     WHERE u.dseq IS NOT NULL
     GROUP BY u.conv, u.from_user, u.dev
    ON CONFLICT (conv, from_user, dev) DO UPDATE SET
      last_dseq = GREATEST(l.last_dseq, excluded.last_dseq),
      min_cmid = CASE WHEN l.min_cmid IS NULL OR excluded.min_cmid < l.min_cmid THEN coalesce(excluded.min_cmid, l.min_cmid) ELSE l.min_cmid END,
      max_cmid = CASE WHEN l.max_cmid IS NULL OR excluded.max_cmid > l.max_cmid THEN coalesce(excluded.max_cmid, l.max_cmid) ELSE l.max_cmid END;
  END IF;
  FOR r IN SELECT u.op, u.conv, u.member, u.seq FROM unnest(m_op, m_conv, m_user, m_seq) WITH ORDINALITY AS u(op, conv, member, seq, n) ORDER BY u.n LOOP
    IF r.op = 'add' THEN
      INSERT INTO ${s}.memberships (conv, member, from_seq, to_seq) VALUES (r.conv, r.member, r.seq, NULL);
    ELSE
      UPDATE ${s}.memberships SET to_seq = r.seq WHERE conv = r.conv AND member = r.member AND to_seq IS NULL;
      IF NOT FOUND THEN
        RAISE EXCEPTION '%: % is not a member', r.conv, r.member USING ERRCODE = '${COMMIT_REFUSED_SQLSTATE}';
      END IF;
    END IF;
  END LOOP;
  IF cardinality(e_conv) > 0 THEN
    UPDATE ${s}.convs c SET last = v.last, last_ts = v.ts, msgs = c.msgs + v.m
      FROM (SELECT DISTINCT ON (u.conv) u.conv, u.seq AS last, u.ts, count(*) FILTER (WHERE u.kind = 'msg') OVER (PARTITION BY u.conv) AS m
              FROM unnest(e_conv, e_seq, e_ts, e_kind) WITH ORDINALITY AS u(conv, seq, ts, kind, n)
             ORDER BY u.conv, u.n DESC) AS v
     WHERE c.conv = v.conv;
  END IF;

  -- Chat state (postgres-chat.ts says why each piece is there).
  FOR r IN SELECT u.conv, u.seq, u.kind, u.ref FROM unnest(e_conv, e_seq, e_kind, e_ref) WITH ORDINALITY AS u(conv, seq, kind, ref, n)
            WHERE u.ref IS NOT NULL AND u.kind IN ('edit', 'delete') ORDER BY u.n LOOP
    IF r.kind = 'edit' THEN
      UPDATE ${s}.entries SET edited = r.seq WHERE conv = r.conv AND seq = r.ref AND kind = 'msg';
    ELSE
      UPDATE ${s}.entries SET body = 'null', deleted = r.seq WHERE conv = r.conv AND (seq = r.ref OR (ref = r.ref AND kind = 'edit'));
    END IF;
  END LOOP;
  -- The current members of every conversation with a new entry, as the batch found them (under its lock of the conversation rows).
  IF cardinality(e_conv) > 0 THEN
    SELECT array_agg(st.conv), array_agg(st.member) INTO v_aconv, v_amember FROM ${s}.member_state st WHERE st.conv = ANY(e_conv) AND st.active;
  END IF;
  FOR r IN SELECT u.op, u.conv, u.member, u.seq FROM unnest(m_op, m_conv, m_user, m_seq) WITH ORDINALITY AS u(op, conv, member, seq, n) ORDER BY u.n LOOP
    IF r.op = 'add' THEN
      INSERT INTO ${s}.member_state AS m (conv, member, read, pub_read, ver, active) VALUES (r.conv, r.member, r.seq - 1, r.seq - 1, 0, true)
      ON CONFLICT (conv, member) DO UPDATE SET active = true, read = GREATEST(m.read, excluded.read), pub_read = GREATEST(m.pub_read, excluded.pub_read);
    ELSE
      UPDATE ${s}.member_state SET active = false WHERE conv = r.conv AND member = r.member;
    END IF;
  END LOOP;
  -- Last: the users' version rows, locked from here until the end, in one order of the user ids.
  WITH changed AS (
    SELECT x.conv, x.member, max(x.read) AS read, max(x.pub) AS pub FROM (
      SELECT a.conv, a.member, 0::bigint AS read, 0::bigint AS pub FROM unnest(v_aconv, v_amember) AS a(conv, member)
      UNION ALL SELECT u.conv, u.member, u.seq, u.seq FROM unnest(e_conv, e_from, e_seq) AS u(conv, member, seq)
      UNION ALL SELECT u.conv, u.member, u.seq, u.pub FROM unnest(r_conv, r_user, r_seq, r_pub) AS u(conv, member, seq, pub)
      UNION ALL SELECT u.conv, u.member, 0, 0 FROM unnest(m_conv, m_user) AS u(conv, member)
    ) AS x GROUP BY x.conv, x.member
  ), bumped AS (
    INSERT INTO ${s}.user_versions AS v (member, value)
      SELECT u.member, 1 FROM (SELECT DISTINCT member FROM changed) AS u ORDER BY u.member COLLATE "C"
    ON CONFLICT (member) DO UPDATE SET value = v.value + 1
    RETURNING member, value
  )
  UPDATE ${s}.member_state m SET read = GREATEST(m.read, c.read), pub_read = GREATEST(m.pub_read, c.pub), ver = b.value
    FROM changed c JOIN bumped b ON b.member = c.member
   WHERE m.conv = c.conv AND m.member = c.member;
END
$commit$;`;
}
