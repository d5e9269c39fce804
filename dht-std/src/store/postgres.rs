//! [`PostgresStore`]: the shared backend, for several crawlers writing into one database.

use core::time::Duration;

use ::postgres::{Client, NoTls, Row};
use dht_proto::Id;

use super::{
    Batch, FileEntry, Limits, SCHEMA_VERSION, Shard, Stats, Store, StoreError, TorrentRow,
    clean_text, from_sql_count, from_sql_int, like_pattern, search_words, secs, to_sql_count,
    to_sql_int,
};

/// The migrations, in order: migration `i` takes the schema from version `i` to `i + 1` (the
/// `dht_schema` table holds the version).
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE torrents (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    info_hash   BYTEA NOT NULL UNIQUE CHECK (octet_length(info_hash) = 20),
    source      TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    times_seen  BIGINT NOT NULL,
    peers       INTEGER,
    seeders     INTEGER,
    leechers    INTEGER,
    name        TEXT,
    total_size  BIGINT,
    file_count  BIGINT,
    info        BYTEA,
    fetched_at  BIGINT
);
CREATE INDEX torrents_first_seen ON torrents (first_seen);
CREATE INDEX torrents_fetched_at ON torrents (fetched_at) WHERE fetched_at IS NOT NULL;
CREATE INDEX torrents_name_search ON torrents USING GIN (to_tsvector('simple', coalesce(name, '')));
CREATE TABLE files (
    torrent_id  BIGINT NOT NULL REFERENCES torrents (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    path        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (torrent_id, idx)
);
CREATE TABLE queue (
    info_hash   BYTEA PRIMARY KEY,
    enqueued    BIGINT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT
);
CREATE INDEX queue_ready ON queue (lease_until, enqueued);
"];

/// A constant key for `pg_advisory_xact_lock`: crawlers starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6468_745f_6372_6177; // "dht_craw"

/// The columns [`row`] reads, in order.
const COLUMNS: &str = "info_hash, source, first_seen, last_seen, times_seen, peers, seeders, \
                       leechers, name, total_size, file_count, info, fetched_at";

/// The crawler's shared database on a PostgreSQL server (plain TCP or a Unix socket; no TLS).
/// Each batch is one transaction of a few statements (rows travel as arrays), and claims use
/// `FOR UPDATE SKIP LOCKED`, so any number of crawler processes can share it.
pub struct PostgresStore {
    client: Client,
    limits: Limits,
}

impl core::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or the key=value
    /// form) and migrates the schema.
    ///
    /// # Errors
    /// When the server cannot be reached, refuses the login, or the schema is newer than this
    /// program's.
    pub fn connect(url: &str, limits: Limits) -> Result<Self, StoreError> {
        let client = Client::connect(url, NoTls)?;
        let mut store = Self { client, limits };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS dht_schema (version INTEGER NOT NULL)")?;
        let version: Option<i32> = tx
            .query_opt("SELECT max(version) FROM dht_schema", &[])?
            .and_then(|r| r.get(0));
        let version = u32::try_from(version.unwrap_or(0)).unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: version });
        }
        for (from, sql) in (0_i32..).zip(MIGRATIONS).skip(version as usize) {
            tx.batch_execute(sql)?;
            tx.execute("DELETE FROM dht_schema", &[])?;
            tx.execute(
                "INSERT INTO dht_schema (version) VALUES ($1)",
                &[&(from + 1)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn count(
        &mut self,
        sql: &str,
        args: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let n: i64 = self.client.query_one(sql, args)?.get(0);
        Ok(from_sql_int(n))
    }
}

/// A row of [`COLUMNS`], files left empty.
fn row(r: &Row) -> Result<TorrentRow, StoreError> {
    let hash: Vec<u8> = r.try_get(0)?;
    Ok(TorrentRow {
        info_hash: Id::from_slice(&hash).unwrap_or_default(),
        source: r.try_get(1)?,
        first_seen: r.try_get(2)?,
        last_seen: r.try_get(3)?,
        times_seen: from_sql_int(r.try_get(4)?),
        peers: from_sql_count(r.try_get(5)?),
        seeders: from_sql_count(r.try_get(6)?),
        leechers: from_sql_count(r.try_get(7)?),
        name: r.try_get(8)?,
        total_size: r.try_get::<_, Option<i64>>(9)?.map(from_sql_int),
        file_count: r.try_get::<_, Option<i64>>(10)?.map(from_sql_int),
        info: r.try_get(11)?,
        fetched_at: r.try_get(12)?,
        files: Vec::new(),
    })
}

fn hash_bytes(hashes: &[Id]) -> Vec<&[u8]> {
    hashes.iter().map(|h| h.as_bytes().as_slice()).collect()
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        let v: Option<i32> = self
            .client
            .query_one("SELECT max(version) FROM dht_schema", &[])?
            .get(0);
        Ok(u32::try_from(v.unwrap_or(0)).unwrap_or(0))
    }

    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let limits = self.limits;
        let rows: Vec<_> = batch.sighting_rows().collect();
        let mut tx = self.client.transaction()?;
        if !rows.is_empty() {
            let hashes: Vec<&[u8]> = rows
                .iter()
                .map(|s| s.info_hash.as_bytes().as_slice())
                .collect();
            let sources: Vec<&str> = rows.iter().map(|s| s.source.as_str()).collect();
            let first: Vec<i64> = rows.iter().map(|s| s.first_seen).collect();
            let last: Vec<i64> = rows.iter().map(|s| s.last_seen).collect();
            let times: Vec<i64> = rows.iter().map(|s| to_sql_int(s.times)).collect();
            let peers: Vec<Option<i32>> = rows.iter().map(|s| to_sql_count(s.peers)).collect();
            let seeders: Vec<Option<i32>> = rows.iter().map(|s| to_sql_count(s.seeders)).collect();
            let leechers: Vec<Option<i32>> =
                rows.iter().map(|s| to_sql_count(s.leechers)).collect();
            // One statement for the whole batch: upsert every info-hash, then queue those
            // without metadata while the queue is under its cap.
            tx.execute(
                "WITH up AS (
                     INSERT INTO torrents (info_hash, source, first_seen, last_seen, times_seen,
                                           peers, seeders, leechers)
                     SELECT * FROM unnest($1::bytea[], $2::text[], $3::int8[], $4::int8[],
                                          $5::int8[], $6::int4[], $7::int4[], $8::int4[])
                     ON CONFLICT (info_hash) DO UPDATE SET
                         first_seen = least(torrents.first_seen, excluded.first_seen),
                         last_seen = greatest(torrents.last_seen, excluded.last_seen),
                         times_seen = torrents.times_seen + excluded.times_seen,
                         peers = coalesce(excluded.peers, torrents.peers),
                         seeders = coalesce(excluded.seeders, torrents.seeders),
                         leechers = coalesce(excluded.leechers, torrents.leechers)
                     RETURNING info_hash, last_seen, fetched_at IS NULL AS wanted)
                 INSERT INTO queue (info_hash, enqueued)
                 SELECT info_hash, last_seen FROM up WHERE wanted ORDER BY info_hash
                 LIMIT greatest(0, $9 - (SELECT count(*) FROM queue))
                 ON CONFLICT (info_hash) DO NOTHING",
                &[
                    &hashes,
                    &sources,
                    &first,
                    &last,
                    &times,
                    &peers,
                    &seeders,
                    &leechers,
                    &to_sql_int(limits.max_queue),
                ],
            )?;
        }
        for t in batch.torrents() {
            let hash = t.info_hash.as_bytes().as_slice();
            let info = (t.info.len() <= limits.max_info_len).then_some(t.info.as_slice());
            let id: i64 = tx
                .query_one(
                    "INSERT INTO torrents (info_hash, source, first_seen, last_seen, times_seen,
                                           name, total_size, file_count, info, fetched_at)
                     VALUES ($1, 'other', $6, $6, 0, $2, $3, $4, $5, $6)
                     ON CONFLICT (info_hash) DO UPDATE SET
                         name = excluded.name,
                         total_size = excluded.total_size,
                         file_count = excluded.file_count,
                         info = excluded.info,
                         fetched_at = coalesce(torrents.fetched_at, excluded.fetched_at)
                     RETURNING id",
                    &[
                        &hash,
                        &clean_text(&t.name, limits.max_text_len),
                        &to_sql_int(t.total_size),
                        &to_sql_int(t.files.len() as u64),
                        &info,
                        &t.fetched_at,
                    ],
                )?
                .get(0);
            tx.execute("DELETE FROM files WHERE torrent_id = $1", &[&id])?;
            let files = t.files.iter().take(limits.max_files);
            let idx: Vec<i32> = (0..).zip(files.clone()).map(|(i, _)| i).collect();
            let paths: Vec<String> = files
                .clone()
                .map(|f| clean_text(&f.path, limits.max_text_len))
                .collect();
            let sizes: Vec<i64> = files.map(|f| to_sql_int(f.size)).collect();
            tx.execute(
                "INSERT INTO files (torrent_id, idx, path, size)
                 SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::int8[])",
                &[&id, &idx, &paths, &sizes],
            )?;
            tx.execute("DELETE FROM queue WHERE info_hash = $1", &[&hash])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn claim(
        &mut self,
        owner: &str,
        max: usize,
        shard: Shard,
        now: i64,
        lease: Duration,
    ) -> Result<Vec<Id>, StoreError> {
        let (lo, hi) = shard.bounds();
        let rows = self.client.query(
            "UPDATE queue SET lease_owner = $1, lease_until = $2, attempts = queue.attempts + 1
             FROM (SELECT info_hash FROM queue
                   WHERE lease_until <= $3 AND info_hash >= $4
                     AND ($5::bytea IS NULL OR info_hash < $5::bytea)
                   ORDER BY lease_until, enqueued LIMIT $6
                   FOR UPDATE SKIP LOCKED) AS free
             WHERE queue.info_hash = free.info_hash
             RETURNING queue.info_hash",
            &[
                &owner,
                &now.saturating_add(secs(lease)),
                &now,
                &lo.as_slice(),
                &hi.as_ref().map(<[u8; 20]>::as_slice),
                &to_sql_int(max as u64),
            ],
        )?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in rows {
            claimed.extend(Id::from_slice(r.try_get::<_, &[u8]>(0)?));
        }
        Ok(claimed)
    }

    fn fail(&mut self, hashes: &[Id], now: i64, retry_after: Duration) -> Result<(), StoreError> {
        let hashes = hash_bytes(hashes);
        let max_attempts = i32::try_from(self.limits.max_attempts).unwrap_or(i32::MAX);
        let mut tx = self.client.transaction()?;
        tx.execute(
            "DELETE FROM queue WHERE info_hash = ANY($1) AND attempts >= $2",
            &[&hashes, &max_attempts],
        )?;
        tx.execute(
            "UPDATE queue SET lease_until = $2, lease_owner = NULL WHERE info_hash = ANY($1)",
            &[&hashes, &now.saturating_add(secs(retry_after))],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn release(&mut self, hashes: &[Id]) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE queue SET lease_until = 0, lease_owner = NULL,
                 attempts = greatest(attempts - 1, 0)
             WHERE info_hash = ANY($1)",
            &[&hash_bytes(hashes)],
        )?;
        Ok(())
    }

    fn release_owner(&mut self, owner: &str) -> Result<u64, StoreError> {
        Ok(self.client.execute(
            "UPDATE queue SET lease_until = 0, lease_owner = NULL,
                 attempts = greatest(attempts - 1, 0)
             WHERE lease_owner = $1",
            &[&owner],
        )?)
    }

    fn queue_len(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one("SELECT count(*) FROM queue", &[])?
            .try_get(0)?;
        Ok(from_sql_int(n))
    }

    fn get(&mut self, info_hash: Id) -> Result<Option<TorrentRow>, StoreError> {
        let found = self.client.query_opt(
            &format!("SELECT {COLUMNS}, id FROM torrents WHERE info_hash = $1"),
            &[&info_hash.as_bytes().as_slice()],
        )?;
        let Some(found) = found else {
            return Ok(None);
        };
        let mut torrent = row(&found)?;
        let id: i64 = found.try_get(13)?;
        torrent.files = self
            .client
            .query(
                "SELECT path, size FROM files WHERE torrent_id = $1 ORDER BY idx",
                &[&id],
            )?
            .iter()
            .map(|r| {
                Ok(FileEntry {
                    path: r.try_get(0)?,
                    size: from_sql_int(r.try_get(1)?),
                })
            })
            .collect::<Result<_, ::postgres::Error>>()?;
        Ok(Some(torrent))
    }

    fn stats(&mut self, now: i64) -> Result<Stats, StoreError> {
        let hour = now.saturating_sub(3600);
        let day = now.saturating_sub(86_400);
        let sources = self
            .client
            .query(
                "SELECT source, count(*) FROM torrents GROUP BY source ORDER BY 2 DESC, 1 LIMIT 10",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, from_sql_int(r.try_get(1)?))))
            .collect::<Result<_, ::postgres::Error>>()?;
        Ok(Stats {
            torrents: self.count("SELECT count(*) FROM torrents", &[])?,
            with_metadata: self.count(
                "SELECT count(*) FROM torrents WHERE fetched_at IS NOT NULL",
                &[],
            )?,
            files: self.count("SELECT count(*) FROM files", &[])?,
            queued: self.count("SELECT count(*) FROM queue", &[])?,
            leased: self.count("SELECT count(*) FROM queue WHERE lease_until > $1", &[&now])?,
            found_last_hour: self.count(
                "SELECT count(*) FROM torrents WHERE first_seen > $1",
                &[&hour],
            )?,
            found_last_day: self.count(
                "SELECT count(*) FROM torrents WHERE first_seen > $1",
                &[&day],
            )?,
            fetched_last_hour: self.count(
                "SELECT count(*) FROM torrents WHERE fetched_at > $1",
                &[&hour],
            )?,
            fetched_last_day: self.count(
                "SELECT count(*) FROM torrents WHERE fetched_at > $1",
                &[&day],
            )?,
            sources,
        })
    }

    fn search(&mut self, text: &str, limit: usize) -> Result<Vec<TorrentRow>, StoreError> {
        let limit = to_sql_int(limit as u64);
        let words = search_words(text);
        if !words.is_empty() {
            // Letters and digits only, so no tsquery operator survives; each word a prefix.
            let query: Vec<String> = words.iter().map(|w| format!("{w}:*")).collect();
            let hits = self
                .client
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM torrents
                         WHERE to_tsvector('simple', coalesce(name, ''))
                               @@ to_tsquery('simple', $1)
                         ORDER BY times_seen DESC LIMIT $2"
                    ),
                    &[&query.join(" & "), &limit],
                )?
                .iter()
                .map(row)
                .collect::<Result<Vec<_>, _>>()?;
            if !hits.is_empty() {
                return Ok(hits);
            }
        }
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM torrents WHERE name ILIKE $1 ESCAPE '\\'
                     ORDER BY times_seen DESC LIMIT $2"
                ),
                &[&like_pattern(text), &limit],
            )?
            .iter()
            .map(row)
            .collect()
    }
}
