"""SQLite persistence. One connection used from the event loop only, so calls are serial."""

import json
import os
import sqlite3

HEARTBEATS_KEPT = 200

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    name TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (tenant, name));
CREATE TABLE IF NOT EXISTS tenant_tokens (
    token_sha256 TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, namespace TEXT NOT NULL,
    device_key TEXT NOT NULL, created_at INTEGER NOT NULL, registered_at INTEGER,
    FOREIGN KEY (tenant, namespace) REFERENCES namespaces(tenant, name) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS nonces (
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    nonce TEXT NOT NULL, seen_at INTEGER NOT NULL, PRIMARY KEY (device_id, nonce));
CREATE TABLE IF NOT EXISTS configs (
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    version INTEGER NOT NULL, body TEXT NOT NULL, valid INTEGER NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (device_id, version));
CREATE TABLE IF NOT EXISTS desired (
    device_id TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
    version INTEGER NOT NULL, relays TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reported (
    device_id TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
    body TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    received_at INTEGER NOT NULL, seq INTEGER, uptime_s INTEGER NOT NULL, command TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS heartbeats_device ON heartbeats(device_id, id);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    command TEXT NOT NULL, created_at INTEGER NOT NULL, delivered_at INTEGER);
CREATE TABLE IF NOT EXISTS alarms (
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    dedup_key TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,
    count INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    received_at INTEGER NOT NULL, PRIMARY KEY (device_id, dedup_key));
CREATE TABLE IF NOT EXISTS alarm_batches (
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    batch_id TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (device_id, batch_id));
CREATE TABLE IF NOT EXISTS ota_releases (
    image_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, namespace TEXT NOT NULL,
    version TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    counter INTEGER NOT NULL, manifest TEXT NOT NULL, signature TEXT NOT NULL,
    key_id TEXT NOT NULL, data BLOB NOT NULL, published_at INTEGER NOT NULL,
    seq INTEGER NOT NULL, UNIQUE (tenant, namespace, version),
    FOREIGN KEY (tenant, namespace) REFERENCES namespaces(tenant, name) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS release_keys (
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    key_id TEXT NOT NULL, public_key TEXT NOT NULL, added_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, key_id));
CREATE TABLE IF NOT EXISTS release_key_manifests (
    tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,
    counter INTEGER NOT NULL, manifest TEXT NOT NULL, signature TEXT NOT NULL,
    published_at INTEGER NOT NULL);
"""


class Store:
    def __init__(self, path):
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.db:
            self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    def _one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()

    def _all(self, sql, *args):
        return self.db.execute(sql, args).fetchall()

    # meta: secrets that must survive restarts (JWT secret)
    def meta_get(self, key):
        row = self._one("SELECT value FROM meta WHERE key=?", key)
        return None if row is None else row["value"]

    def meta_set(self, key, value):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # tenants and namespaces
    def create_tenant(self, name, now):
        with self.db:
            cur = self.db.execute("INSERT OR IGNORE INTO tenants VALUES (?, ?)", (name, now))
        return cur.rowcount == 1

    def get_tenant(self, name):
        return self._one("SELECT * FROM tenants WHERE name=?", name)

    def list_tenants(self, only=None):
        if only is not None:
            return self._all("SELECT * FROM tenants WHERE name=?", only)
        return self._all("SELECT * FROM tenants ORDER BY name")

    def create_namespace(self, tenant, name, now):
        with self.db:
            cur = self.db.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?, ?)",
                                  (tenant, name, now))
        return cur.rowcount == 1

    def get_namespace(self, tenant, name):
        return self._one("SELECT * FROM namespaces WHERE tenant=? AND name=?", tenant, name)

    def list_namespaces(self, tenant):
        return self._all("SELECT * FROM namespaces WHERE tenant=? ORDER BY name", tenant)

    def add_tenant_token(self, token_sha256, tenant, now):
        with self.db:
            self.db.execute("INSERT INTO tenant_tokens VALUES (?, ?, ?)", (token_sha256, tenant, now))

    def tenant_for_token(self, token_sha256):
        row = self._one("SELECT tenant FROM tenant_tokens WHERE token_sha256=?", token_sha256)
        return None if row is None else row["tenant"]

    # devices
    def create_device(self, device_id, tenant, namespace, key, now):
        with self.db:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO devices(device_id, tenant, namespace, device_key, created_at)"
                " VALUES (?, ?, ?, ?, ?)", (device_id, tenant, namespace, key, now))
        return cur.rowcount == 1

    def get_device(self, device_id):
        return self._one("SELECT * FROM devices WHERE device_id=?", device_id)

    def device_in(self, tenant, namespace, device_id):
        return self._one("SELECT * FROM devices WHERE device_id=? AND tenant=? AND namespace=?",
                         device_id, tenant, namespace)

    def list_devices(self, tenant, namespace):
        return self._all("SELECT * FROM devices WHERE tenant=? AND namespace=? ORDER BY device_id",
                         tenant, namespace)

    def delete_device(self, device_id):
        with self.db:
            self.db.execute("DELETE FROM devices WHERE device_id=?", (device_id,))

    def use_nonce(self, device_id, nonce, now, horizon):
        """Record a nonce; False when this device already used it. Forget those past horizon."""
        with self.db:
            self.db.execute("DELETE FROM nonces WHERE seen_at < ?", (now - horizon,))
            cur = self.db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?, ?)",
                                  (device_id, nonce, now))
        return cur.rowcount == 1

    def mark_registered(self, device_id, now):
        with self.db:
            self.db.execute("UPDATE devices SET registered_at=? WHERE device_id=?", (now, device_id))

    # config
    def current_config(self, device_id):
        row = self._one("SELECT * FROM configs WHERE device_id=? ORDER BY version DESC LIMIT 1",
                        device_id)
        if row is None:
            return None
        return {"version": row["version"], "config": json.loads(row["body"]),
                "valid": bool(row["valid"]), "created_at": row["created_at"]}

    def push_config(self, device_id, config, valid, now):
        with self.db:
            row = self._one("SELECT COALESCE(MAX(version), 0) AS v FROM configs WHERE device_id=?",
                            device_id)
            version = row["v"] + 1
            self.db.execute("INSERT INTO configs VALUES (?, ?, ?, ?, ?)",
                            (device_id, version, json.dumps(config, sort_keys=True),
                             1 if valid else 0, now))
        return version

    # desired and reported state
    def get_desired(self, device_id):
        row = self._one("SELECT * FROM desired WHERE device_id=?", device_id)
        if row is None:
            return {"version": 0, "relays": {}, "updated_at": 0}
        return {"version": row["version"], "relays": json.loads(row["relays"]),
                "updated_at": row["updated_at"]}

    def set_desired(self, device_id, relays, now):
        with self.db:
            version = self.get_desired(device_id)["version"] + 1
            self.db.execute("INSERT OR REPLACE INTO desired VALUES (?, ?, ?, ?)",
                            (device_id, version, json.dumps(relays, sort_keys=True), now))
        return {"version": version, "relays": relays, "updated_at": now}

    def set_reported(self, device_id, state, now):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO reported VALUES (?, ?, ?)",
                            (device_id, json.dumps(state, sort_keys=True), now))

    def get_reported(self, device_id):
        row = self._one("SELECT * FROM reported WHERE device_id=?", device_id)
        if row is None:
            return None
        return {"state": json.loads(row["body"]), "received_at": row["received_at"]}

    # watchdog
    def pop_command(self, device_id, now):
        with self.db:
            row = self._one("SELECT id, command FROM commands WHERE device_id=? AND"
                            " delivered_at IS NULL ORDER BY id LIMIT 1", device_id)
            if row is None:
                return None
            self.db.execute("UPDATE commands SET delivered_at=? WHERE id=?", (now, row["id"]))
        return row["id"], row["command"]

    def queue_command(self, device_id, command, now):
        with self.db:
            cur = self.db.execute("INSERT INTO commands(device_id, command, created_at)"
                                  " VALUES (?, ?, ?)", (device_id, command, now))
        return cur.lastrowid

    def pending_commands(self, device_id):
        return self._one("SELECT COUNT(*) AS n FROM commands WHERE device_id=? AND"
                         " delivered_at IS NULL", device_id)["n"]

    def add_heartbeat(self, device_id, now, seq, uptime_s, command):
        with self.db:
            self.db.execute("INSERT INTO heartbeats(device_id, received_at, seq, uptime_s, command)"
                            " VALUES (?, ?, ?, ?, ?)", (device_id, now, seq, uptime_s, command))
            # bounded history: keep the newest HEARTBEATS_KEPT rows of this device
            self.db.execute("DELETE FROM heartbeats WHERE device_id=? AND id NOT IN (SELECT id FROM"
                            " heartbeats WHERE device_id=? ORDER BY id DESC LIMIT ?)",
                            (device_id, device_id, HEARTBEATS_KEPT))

    def list_heartbeats(self, device_id, limit):
        return self._all("SELECT * FROM heartbeats WHERE device_id=? ORDER BY id DESC LIMIT ?",
                         device_id, limit)

    def last_heartbeat(self, device_id):
        row = self._one("SELECT MAX(received_at) AS t FROM heartbeats WHERE device_id=?", device_id)
        return row["t"]

    # alarms
    def merge_alarms(self, device_id, batch_id, alarms, now):
        created = merged = 0
        with self.db:
            if batch_id is not None:
                cur = self.db.execute("INSERT OR IGNORE INTO alarm_batches VALUES (?, ?, ?)",
                                      (device_id, batch_id, now))
                if cur.rowcount == 0:
                    return {"accepted": len(alarms), "created": 0, "merged": 0,
                            "duplicate_batch": True}
            for a in alarms:
                row = self._one("SELECT * FROM alarms WHERE device_id=? AND dedup_key=?",
                                device_id, a["dedup_key"])
                if row is None:
                    self.db.execute("INSERT INTO alarms VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    (device_id, a["dedup_key"], a["severity"], a["message"],
                                     a["count"], a["first_seen"], a["last_seen"], now))
                    created += 1
                    continue
                newer = a["last_seen"] >= row["last_seen"]
                self.db.execute(
                    "UPDATE alarms SET severity=?, message=?, count=?, first_seen=?, last_seen=?,"
                    " received_at=? WHERE device_id=? AND dedup_key=?",
                    (a["severity"] if newer else row["severity"],
                     a["message"] if newer else row["message"],
                     row["count"] + a["count"], min(row["first_seen"], a["first_seen"]),
                     max(row["last_seen"], a["last_seen"]), now, device_id, a["dedup_key"]))
                merged += 1
        return {"accepted": len(alarms), "created": created, "merged": merged,
                "duplicate_batch": False}

    def list_alarms(self, device_id, limit):
        return self._all("SELECT * FROM alarms WHERE device_id=? ORDER BY last_seen DESC,"
                         " dedup_key LIMIT ?", device_id, limit)

    # OTA: releases signed by their owners; the platform only checks and stores them
    def add_image(self, image_id, tenant, namespace, manifest, text, signature, key_id, data,
                  now):
        with self.db:
            if self._one("SELECT 1 FROM ota_releases WHERE tenant=? AND namespace=? AND version=?",
                         tenant, namespace, manifest["version"]):
                return False
            seq = self._one("SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM ota_releases")["s"]
            self.db.execute("INSERT INTO ota_releases VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (image_id, tenant, namespace, manifest["version"], manifest["kind"],
                             len(data), manifest["sha256"], manifest["counter"], text,
                             signature, key_id, data, now, seq))
        return True

    _IMG_COLS = ("image_id, tenant, namespace, version, kind, size, sha256, counter, manifest,"
                 " signature, key_id, published_at")

    def list_images(self, tenant, namespace):
        return self._all("SELECT %s FROM ota_releases WHERE tenant=? AND namespace=?"
                         " ORDER BY seq DESC" % self._IMG_COLS, tenant, namespace)

    def get_image_meta(self, image_id):
        return self._one("SELECT %s FROM ota_releases WHERE image_id=?" % self._IMG_COLS,
                         image_id)

    def add_release_key(self, tenant, key_id, public_key, now):
        with self.db:
            cur = self.db.execute("INSERT OR IGNORE INTO release_keys VALUES (?, ?, ?, ?)",
                                  (tenant, key_id, public_key, now))
        return cur.rowcount == 1

    def release_keys(self, tenant):
        return self._all("SELECT * FROM release_keys WHERE tenant=? ORDER BY added_at, key_id",
                         tenant)

    def set_key_manifest(self, tenant, counter, text, signature, now):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO release_key_manifests VALUES (?, ?, ?, ?, ?)",
                            (tenant, counter, text, signature, now))

    def key_manifest(self, tenant):
        return self._one("SELECT * FROM release_key_manifests WHERE tenant=?", tenant)

    def read_image(self, image_id, start, length):
        # substr on a BLOB is 1-based and returns only the requested bytes
        row = self._one("SELECT substr(data, ?, ?) AS chunk FROM ota_releases WHERE image_id=?",
                        start + 1, length, image_id)
        return None if row is None else bytes(row["chunk"])
