//! [`SqliteStore`]: the embedded backend (bundled SQLite, WAL journal, FTS5 name search).

use core::time::Duration;
use std::path::Path;

use dht_proto::Id;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::{
    Batch, FileEntry, Limits, SCHEMA_VERSION, Shard, Stats, Store, StoreError, TorrentRow,
    clean_text, from_sql_count, from_sql_int, like_pattern, search_words, secs, to_sql_count,
    to_sql_int,
};

/// The migrations, in order: migration `i` takes the schema from version `i` to `i + 1`
/// (`PRAGMA user_version` holds the version).
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE torrents (
    id          INTEGER PRIMARY KEY,
    info_hash   BLOB NOT NULL UNIQUE CHECK (length(info_hash) = 20),
    source      TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    times_seen  INTEGER NOT NULL,
    peers       INTEGER,
    seeders     INTEGER,
    leechers    INTEGER,
    name        TEXT,
    total_size  INTEGER,
    file_count  INTEGER,
    info        BLOB,
    fetched_at  INTEGER
);
CREATE INDEX torrents_first_seen ON torrents (first_seen);
CREATE INDEX torrents_fetched_at ON torrents (fetched_at) WHERE fetched_at IS NOT NULL;
CREATE TABLE files (
    torrent_id  INTEGER NOT NULL REFERENCES torrents (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (torrent_id, idx)
) WITHOUT ROWID;
CREATE TABLE queue (
    info_hash   BLOB PRIMARY KEY,
    enqueued    INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT
) WITHOUT ROWID;
CREATE INDEX queue_ready ON queue (lease_until, enqueued);
CREATE VIRTUAL TABLE torrents_fts USING fts5 (
    name, content = 'torrents', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER torrents_fts_insert AFTER INSERT ON torrents WHEN new.name IS NOT NULL BEGIN
    INSERT INTO torrents_fts (rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER torrents_fts_update AFTER UPDATE OF name ON torrents BEGIN
    INSERT INTO torrents_fts (torrents_fts, rowid, name)
        SELECT 'delete', old.id, old.name WHERE old.name IS NOT NULL;
    INSERT INTO torrents_fts (rowid, name) SELECT new.id, new.name WHERE new.name IS NOT NULL;
END;
CREATE TRIGGER torrents_fts_delete AFTER DELETE ON torrents WHEN old.name IS NOT NULL BEGIN
    INSERT INTO torrents_fts (torrents_fts, rowid, name) VALUES ('delete', old.id, old.name);
END;
"];

/// The columns [`row`] reads, in order.
const COLUMNS: &str = "info_hash, source, first_seen, last_seen, times_seen, peers, seeders, \
                       leechers, name, total_size, file_count, info, fetched_at";

/// The crawler's embedded database: one SQLite file in WAL mode (readers never block the
/// writer), `synchronous = NORMAL` (a committed transaction survives the process being killed;
/// a power cut may lose the last ones but never corrupts), foreign keys on.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    limits: Limits,
    /// The queue's length as of the last transaction, kept so a batch need not count it (one
    /// crawler per SQLite file: another writer makes the cap approximate). `None`: count anew.
    queued: Option<u64>,
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `path` and migrates it.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated, or its schema is newer than this program's.
    pub fn open(path: &Path, limits: Limits) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?, limits)
    }

    /// A database in memory (for tests and dry runs).
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn open_in_memory(limits: Limits) -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, limits)
    }

    fn init(conn: Connection, limits: Limits) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(10))?;
        // `journal_mode` answers with the mode it set (`memory` for an in-memory database).
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let mut store = Self {
            conn,
            limits,
            queued: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: version });
        }
        for (from, sql) in (0..).zip(MIGRATIONS).skip_while(|(v, _)| *v < version) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", from + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The result of `PRAGMA integrity_check` (`ok` for a sound database).
    ///
    /// # Errors
    /// When SQLite cannot run the check.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(lines.join("\n"))
    }
}

/// A row of [`COLUMNS`], files left empty.
fn row(r: &Row<'_>) -> rusqlite::Result<TorrentRow> {
    row_at(r, 0)
}

/// A row of [`COLUMNS`] starting at column `at`.
fn row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<TorrentRow> {
    let hash: Vec<u8> = r.get(at)?;
    Ok(TorrentRow {
        info_hash: Id::from_slice(&hash).unwrap_or_default(),
        source: r.get(at + 1)?,
        first_seen: r.get(at + 2)?,
        last_seen: r.get(at + 3)?,
        times_seen: from_sql_int(r.get(at + 4)?),
        peers: from_sql_count(r.get(at + 5)?),
        seeders: from_sql_count(r.get(at + 6)?),
        leechers: from_sql_count(r.get(at + 7)?),
        name: r.get(at + 8)?,
        total_size: r.get::<_, Option<i64>>(at + 9)?.map(from_sql_int),
        file_count: r.get::<_, Option<i64>>(at + 10)?.map(from_sql_int),
        info: r.get(at + 11)?,
        fetched_at: r.get(at + 12)?,
        files: Vec::new(),
    })
}

fn count(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<u64, StoreError> {
    Ok(from_sql_int(conn.query_row(sql, args, |r| r.get(0))?))
}

fn hash_bytes(hashes: &[Id]) -> Vec<Vec<u8>> {
    hashes.iter().map(|h| h.as_bytes().to_vec()).collect()
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let limits = self.limits;
        let known = self.queued.take();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut queued = match known {
            Some(n) => n,
            None => count(&tx, "SELECT count(*) FROM queue", [])?,
        };
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO torrents (info_hash, source, first_seen, last_seen, times_seen, \
                                       peers, seeders, leechers)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (info_hash) DO UPDATE SET
                     first_seen = min(first_seen, excluded.first_seen),
                     last_seen = max(last_seen, excluded.last_seen),
                     times_seen = times_seen + excluded.times_seen,
                     peers = coalesce(excluded.peers, peers),
                     seeders = coalesce(excluded.seeders, seeders),
                     leechers = coalesce(excluded.leechers, leechers)
                 RETURNING fetched_at IS NULL",
            )?;
            let mut enqueue = tx.prepare_cached(
                "INSERT INTO queue (info_hash, enqueued) VALUES (?1, ?2) \
                 ON CONFLICT (info_hash) DO NOTHING",
            )?;
            for s in batch.sighting_rows() {
                let hash = s.info_hash.as_bytes().as_slice();
                let wanted: bool = upsert.query_row(
                    params![
                        hash,
                        s.source.as_str(),
                        s.first_seen,
                        s.last_seen,
                        to_sql_int(s.times),
                        to_sql_count(s.peers),
                        to_sql_count(s.seeders),
                        to_sql_count(s.leechers),
                    ],
                    |r| r.get(0),
                )?;
                if wanted && queued < limits.max_queue {
                    queued += enqueue.execute(params![hash, s.last_seen])? as u64;
                }
            }
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO torrents (info_hash, source, first_seen, last_seen, times_seen, \
                                       name, total_size, file_count, info, fetched_at)
                 VALUES (?1, 'other', ?6, ?6, 0, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (info_hash) DO UPDATE SET
                     name = excluded.name,
                     total_size = excluded.total_size,
                     file_count = excluded.file_count,
                     info = excluded.info,
                     fetched_at = coalesce(fetched_at, excluded.fetched_at)
                 RETURNING id",
            )?;
            let mut clear = tx.prepare_cached("DELETE FROM files WHERE torrent_id = ?1")?;
            let mut file = tx.prepare_cached(
                "INSERT INTO files (torrent_id, idx, path, size) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut dequeue = tx.prepare_cached("DELETE FROM queue WHERE info_hash = ?1")?;
            for t in batch.torrents() {
                let hash = t.info_hash.as_bytes().as_slice();
                let info = (t.info.len() <= limits.max_info_len).then_some(t.info.as_slice());
                let id: i64 = upsert.query_row(
                    params![
                        hash,
                        clean_text(&t.name, limits.max_text_len),
                        to_sql_int(t.total_size),
                        to_sql_int(t.files.len() as u64),
                        info,
                        t.fetched_at,
                    ],
                    |r| r.get(0),
                )?;
                clear.execute([id])?;
                for (idx, f) in (0_i64..).zip(t.files.iter().take(limits.max_files)) {
                    file.execute(params![
                        id,
                        idx,
                        clean_text(&f.path, limits.max_text_len),
                        to_sql_int(f.size)
                    ])?;
                }
                queued = queued.saturating_sub(dequeue.execute([hash])? as u64);
            }
        }
        tx.commit()?;
        self.queued = Some(queued);
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
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let claimed = {
            let mut stmt = tx.prepare_cached(
                "UPDATE queue SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1
                 WHERE info_hash IN (
                     SELECT info_hash FROM queue
                     WHERE lease_until <= ?3 AND info_hash >= ?4 AND (?5 IS NULL OR info_hash < ?5)
                     ORDER BY lease_until, enqueued LIMIT ?6)
                 RETURNING info_hash",
            )?;
            let rows = stmt.query_map(
                params![
                    owner,
                    now.saturating_add(secs(lease)),
                    now,
                    lo.as_slice(),
                    hi.as_ref().map(<[u8; 20]>::as_slice),
                    to_sql_int(max as u64),
                ],
                |r| r.get::<_, Vec<u8>>(0),
            )?;
            let mut claimed = Vec::new();
            for hash in rows {
                claimed.extend(Id::from_slice(&hash?));
            }
            claimed
        };
        tx.commit()?;
        Ok(claimed)
    }

    fn fail(&mut self, hashes: &[Id], now: i64, retry_after: Duration) -> Result<(), StoreError> {
        let max_attempts = self.limits.max_attempts;
        let known = self.queued.take();
        let mut dropped = 0;
        let tx = self.conn.transaction()?;
        {
            let mut drop =
                tx.prepare_cached("DELETE FROM queue WHERE info_hash = ?1 AND attempts >= ?2")?;
            let mut retry = tx.prepare_cached(
                "UPDATE queue SET lease_until = ?2, lease_owner = NULL WHERE info_hash = ?1",
            )?;
            for hash in hash_bytes(hashes) {
                let gone = drop.execute(params![hash, max_attempts])?;
                if gone == 0 {
                    retry.execute(params![hash, now.saturating_add(secs(retry_after))])?;
                }
                dropped += gone as u64;
            }
        }
        tx.commit()?;
        self.queued = known.map(|n| n.saturating_sub(dropped));
        Ok(())
    }

    fn release(&mut self, hashes: &[Id]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE queue SET lease_until = 0, lease_owner = NULL, \
                 attempts = max(attempts - 1, 0) WHERE info_hash = ?1",
            )?;
            for hash in hash_bytes(hashes) {
                stmt.execute([hash])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn release_owner(&mut self, owner: &str) -> Result<u64, StoreError> {
        let n = self.conn.execute(
            "UPDATE queue SET lease_until = 0, lease_owner = NULL, \
             attempts = max(attempts - 1, 0) WHERE lease_owner = ?1",
            [owner],
        )?;
        Ok(n as u64)
    }

    fn queue_len(&mut self) -> Result<u64, StoreError> {
        if let Some(n) = self.queued {
            return Ok(n);
        }
        let n = count(&self.conn, "SELECT count(*) FROM queue", [])?;
        self.queued = Some(n);
        Ok(n)
    }

    fn get(&mut self, info_hash: Id) -> Result<Option<TorrentRow>, StoreError> {
        let found = self
            .conn
            .query_row(
                &format!("SELECT id, {COLUMNS} FROM torrents WHERE info_hash = ?1"),
                [info_hash.as_bytes().as_slice()],
                |r| Ok((r.get::<_, i64>(0)?, row_at(r, 1)?)),
            )
            .optional()?;
        let Some((id, mut torrent)) = found else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, size FROM files WHERE torrent_id = ?1 ORDER BY idx")?;
        torrent.files = stmt
            .query_map([id], |r| {
                Ok(FileEntry {
                    path: r.get(0)?,
                    size: from_sql_int(r.get(1)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(torrent))
    }

    fn stats(&mut self, now: i64) -> Result<Stats, StoreError> {
        let c = &self.conn;
        let hour = now.saturating_sub(3600);
        let day = now.saturating_sub(86_400);
        let mut stmt = c.prepare(
            "SELECT source, count(*) FROM torrents GROUP BY source ORDER BY 2 DESC, 1 LIMIT 10",
        )?;
        let sources = stmt
            .query_map([], |r| Ok((r.get(0)?, from_sql_int(r.get(1)?))))?
            .collect::<Result<_, _>>()?;
        Ok(Stats {
            torrents: count(c, "SELECT count(*) FROM torrents", [])?,
            with_metadata: count(
                c,
                "SELECT count(*) FROM torrents WHERE fetched_at IS NOT NULL",
                [],
            )?,
            files: count(c, "SELECT count(*) FROM files", [])?,
            queued: count(c, "SELECT count(*) FROM queue", [])?,
            leased: count(
                c,
                "SELECT count(*) FROM queue WHERE lease_until > ?1",
                [now],
            )?,
            found_last_hour: count(
                c,
                "SELECT count(*) FROM torrents WHERE first_seen > ?1",
                [hour],
            )?,
            found_last_day: count(
                c,
                "SELECT count(*) FROM torrents WHERE first_seen > ?1",
                [day],
            )?,
            fetched_last_hour: count(
                c,
                "SELECT count(*) FROM torrents WHERE fetched_at > ?1",
                [hour],
            )?,
            fetched_last_day: count(
                c,
                "SELECT count(*) FROM torrents WHERE fetched_at > ?1",
                [day],
            )?,
            sources,
        })
    }

    fn search(&mut self, text: &str, limit: usize) -> Result<Vec<TorrentRow>, StoreError> {
        let limit = to_sql_int(limit as u64);
        let words = search_words(text);
        if !words.is_empty() {
            // Each word quoted (no FTS5 operator survives) and taken as a prefix.
            let query: Vec<String> = words.iter().map(|w| format!("\"{w}\"*")).collect();
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM torrents
                 WHERE id IN (SELECT rowid FROM torrents_fts WHERE torrents_fts MATCH ?1)
                 ORDER BY times_seen DESC LIMIT ?2"
            ))?;
            let hits: Vec<TorrentRow> = stmt
                .query_map(params![query.join(" "), limit], row)?
                .collect::<Result<_, _>>()?;
            if !hits.is_empty() {
                return Ok(hits);
            }
        }
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM torrents WHERE name LIKE ?1 ESCAPE '\\'
             ORDER BY times_seen DESC LIMIT ?2"
        ))?;
        let hits = stmt
            .query_map(params![like_pattern(text), limit], row)?
            .collect::<Result<_, _>>()?;
        Ok(hits)
    }
}
