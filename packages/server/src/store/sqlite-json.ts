/**
 * An entries row as its entry's JSON text, built by SQLite: the text a sync
 * reply carries, without turning each row into a JavaScript object, parsing
 * its stored body and serializing it all again.
 *
 * The spelling is exactly JSON.stringify(entryFromRow(row)) (members in the
 * order entryFromRow sets them; test/store/conformance-json.ts checks it):
 * - body and ctx are stored as JSON.stringify's own text (rows.ts), so they are
 *   spliced in as they are; a delete has already replaced its targets' bodies
 *   with `null` in the row.
 * - json_quote spells every string as JSON.stringify does (control characters,
 *   quotes, non-ASCII); the integer columns are STRICT INTEGER, whose text is
 *   the number's JavaScript spelling for every safe integer.
 * - A cmid stored encoded (rows.ts encodeCmid: U+0001 and its JSON spelling)
 *   already holds its JSON text after the marker.
 */
export const ENTRY_JSON_SQL = `'{"conv":' || json_quote(conv) || ',"seq":' || seq || ',"kind":' || json_quote(kind)
  || ',"mid":' || json_quote(mid) || ',"ts":' || ts || ',"from":' || json_quote(from_user) || ',"dev":' || json_quote(dev)
  || ',"body":' || body
  || CASE WHEN cmid IS NULL THEN '' WHEN substr(cmid, 1, 1) = char(1) THEN ',"cmid":' || substr(cmid, 2) ELSE ',"cmid":' || json_quote(cmid) END
  || CASE WHEN dseq IS NULL THEN '' ELSE ',"dseq":' || dseq END
  || CASE WHEN ctx IS NULL THEN '' ELSE ',"ctx":' || ctx END
  || CASE WHEN ref IS NULL THEN '' ELSE ',"ref":' || ref END
  || CASE WHEN edited IS NULL THEN '' ELSE ',"edited":' || edited END
  || CASE WHEN deleted IS NULL THEN '' ELSE ',"deleted":' || deleted END
  || '}'`;

/**
 * What a row counts for against a read's maxBytes (rows.ts entrySize), in
 * SQLite's own length() of the texts, as the PostgreSQL adapter counts: both
 * read paths of the SQLite store cut a page at the same entry.
 */
export const ENTRY_SIZE_SQL = '128 + length(body) + coalesce(length(ctx), 0)';
