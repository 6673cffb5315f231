"""The catalogue's SQLite schema as an ordered list of migrations; `PRAGMA user_version` counts those applied."""

from __future__ import annotations

# Append only: a released migration is never edited, because archives in the field have
# already run it. Each migration is a tuple of single statements (not a script) so it runs
# inside the caller's transaction: sqlite3's executescript() would commit half-way.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: patients, documents, pages, entries, audit.
    (
        """
        CREATE TABLE patients (
            nhs_number TEXT PRIMARY KEY
                CHECK (length(nhs_number) = 10 AND nhs_number NOT GLOB '*[^0-9]*'),
            name TEXT,
            born TEXT  -- ISO date
        )
        """,
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            sha256 TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
            nhs_number TEXT REFERENCES patients (nhs_number),
            page_count INTEGER NOT NULL CHECK (page_count >= 0),
            status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
            pdfa_path TEXT,
            pdfa_valid INTEGER NOT NULL CHECK (pdfa_valid IN (0, 1)),
            part INTEGER CHECK (part IS NULL OR part >= 1),
            parts INTEGER CHECK (parts IS NULL OR parts >= 1),
            reason TEXT,
            code TEXT,
            input_size INTEGER NOT NULL CHECK (input_size >= 0),
            created TEXT NOT NULL,  -- ISO date-time
            indexed INTEGER NOT NULL DEFAULT 0 CHECK (indexed IN (0, 1)),
            -- a digitised document always belongs to a patient and has a hash and a PDF
            CHECK (status = 'failed'
                   OR (nhs_number IS NOT NULL AND sha256 IS NOT NULL AND pdfa_path IS NOT NULL))
        )
        """,
        # One digitised copy per content hash; failures are kept one per hash (latest wins).
        "CREATE UNIQUE INDEX documents_ok_sha256 ON documents (sha256) WHERE status = 'ok'",
        "CREATE UNIQUE INDEX documents_failed_sha256 ON documents (sha256) WHERE status = 'failed'",
        "CREATE INDEX documents_nhs_number ON documents (nhs_number)",
        "CREATE INDEX documents_unindexed ON documents (id) WHERE status = 'ok' AND indexed = 0",
        """
        CREATE TABLE pages (
            document_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            number INTEGER NOT NULL CHECK (number >= 1),
            width INTEGER NOT NULL CHECK (width >= 0),
            height INTEGER NOT NULL CHECK (height >= 0),
            dpi INTEGER NOT NULL CHECK (dpi >= 0),
            rotation INTEGER NOT NULL CHECK (rotation IN (0, 90, 180, 270)),
            skew REAL NOT NULL,
            blank INTEGER NOT NULL CHECK (blank IN (0, 1)),
            phash TEXT NOT NULL,
            duplicate_of INTEGER,
            confidence REAL NOT NULL CHECK (confidence BETWEEN 0 AND 100),
            unreadable INTEGER NOT NULL CHECK (unreadable IN (0, 1)),
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            words BLOB NOT NULL,  -- zlib(compact JSON list of word tuples)
            PRIMARY KEY (document_id, number),
            FOREIGN KEY (document_id, duplicate_of) REFERENCES pages (document_id, number)
                DEFERRABLE INITIALLY DEFERRED
        )
        """,
        """
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL,
            page INTEGER NOT NULL,
            date TEXT,  -- ISO date, NULL when the date could not be read
            date_text TEXT NOT NULL,
            text TEXT NOT NULL,
            x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
            confidence REAL NOT NULL CHECK (confidence BETWEEN 0 AND 100),
            precision TEXT NOT NULL CHECK (precision IN ('day', 'month', 'year')),
            FOREIGN KEY (document_id, page) REFERENCES pages (document_id, number) ON DELETE CASCADE
        )
        """,
        "CREATE INDEX entries_document_page ON entries (document_id, page)",
        # No foreign key on nhs_number: the audit trail must outlive any other row and may
        # name a patient the catalogue never stored (an input that failed before identity).
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            nhs_number TEXT,
            detail TEXT NOT NULL DEFAULT '{}'  -- JSON object
        )
        """,
        "CREATE INDEX audit_nhs_number ON audit (nhs_number, id)",
    ),
    # 2: coded electronic records imported against a patient (`lgd coded import`). Rows are only
    # ever added: the latest per patient is the one in use, older ones stay for the audit trail.
    (
        """
        CREATE TABLE coded_records (
            id INTEGER PRIMARY KEY,
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            format TEXT NOT NULL,
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            imported_at TEXT NOT NULL,  -- ISO date-time
            events_json BLOB NOT NULL,  -- zlib(compact JSON of the whole record: format, events, warnings)
            source_name TEXT NOT NULL
        )
        """,
        "CREATE INDEX coded_records_patient ON coded_records (nhs_number, id)",
    ),
    # 3: reconciliation runs with a decision per page, clinicians' overrides, and packs built.
    # All append-only: a later run or override adds rows, so every pack can name exactly what
    # it was checked against and who changed what.
    (
        """
        CREATE TABLE reconciliations (
            id INTEGER PRIMARY KEY,
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            coded_format TEXT NOT NULL,
            coded_sha256 TEXT NOT NULL CHECK (length(coded_sha256) = 64),
            coded_events INTEGER NOT NULL CHECK (coded_events >= 0),
            created TEXT NOT NULL,  -- ISO date-time
            actor TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}'  -- JSON: rule version and thresholds used
        )
        """,
        "CREATE INDEX reconciliations_patient ON reconciliations (nhs_number, id)",
        """
        CREATE TABLE decisions (
            reconciliation_id INTEGER NOT NULL REFERENCES reconciliations (id),
            document_id INTEGER NOT NULL,
            page INTEGER NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('include', 'omit')),
            reason TEXT NOT NULL,
            evidence BLOB NOT NULL,  -- zlib(compact JSON list of entries with status and evidence)
            PRIMARY KEY (reconciliation_id, document_id, page),
            FOREIGN KEY (document_id, page) REFERENCES pages (document_id, number)
        )
        """,
        """
        CREATE TABLE overrides (
            id INTEGER PRIMARY KEY,
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            document_id INTEGER NOT NULL,
            page INTEGER NOT NULL,
            decision TEXT CHECK (decision IS NULL OR decision IN ('include', 'omit')),  -- NULL: cleared
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL,  -- ISO date-time
            FOREIGN KEY (document_id, page) REFERENCES pages (document_id, number)
        )
        """,
        "CREATE INDEX overrides_patient ON overrides (nhs_number, document_id, page, id)",
        """
        CREATE TABLE packs (
            id INTEGER PRIMARY KEY,
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            reconciliation_id INTEGER NOT NULL REFERENCES reconciliations (id),
            format TEXT NOT NULL,
            created TEXT NOT NULL,  -- ISO date-time
            actor TEXT NOT NULL,
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),  -- the pack document
            detail TEXT NOT NULL DEFAULT '{}'  -- JSON: outputs, counts, manifest hash
        )
        """,
        "CREATE INDEX packs_patient ON packs (nhs_number, id)",
    ),
    # 4: a decision's reason as data (a stable code and its counts), beside the rendered sentence,
    # so no reader has to parse the sentence back. Runs before this have code '' and detail {}.
    (
        "ALTER TABLE decisions ADD COLUMN reason_code TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE decisions ADD COLUMN reason_detail TEXT NOT NULL DEFAULT '{}'",
    ),
    # 5: the people who use `lgd serve` and the shell as themselves: accounts with a role, a
    # password hash (Argon2id, never the password) and API tokens stored only as SHA-256.
    (
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
            role TEXT NOT NULL CHECK (role IN ('clinician', 'practice-admin', 'clerk', 'auditor')),
            password_hash TEXT,  -- NULL: no password login (tokens or single sign-on only)
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
            created TEXT NOT NULL,
            changed TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL REFERENCES users (name),
            sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
            created TEXT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
        )
        """,
        "CREATE INDEX audit_actor ON audit (actor, id)",
    ),
    # 6: four eyes. An omission a second clinician must confirm before it counts is marked so;
    # confirmations are rows of their own (the overrides table stays append-only).
    (
        "ALTER TABLE overrides ADD COLUMN needs_confirmation INTEGER NOT NULL DEFAULT 0"
        " CHECK (needs_confirmation IN (0, 1))",
        """
        CREATE TABLE override_confirmations (
            override_id INTEGER PRIMARY KEY REFERENCES overrides (id),
            actor TEXT NOT NULL,
            at TEXT NOT NULL
        )
        """,
    ),
    # 7: the leavers worklist (issue 14): a patient leaving for another practice, each step of the
    # transfer as a row of its own (the latest is the state), and the packs built for the leaver.
    (
        """
        CREATE TABLE leavers (
            id INTEGER PRIMARY KEY,
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            ods_code TEXT NOT NULL,
            movement_ref TEXT,  -- PCSE Online's movement reference, when given
            added TEXT NOT NULL,
            added_by TEXT NOT NULL
        )
        """,
        "CREATE INDEX leavers_patient ON leavers (nhs_number, id)",
        """
        CREATE TABLE leaver_states (
            id INTEGER PRIMARY KEY,
            leaver_id INTEGER NOT NULL REFERENCES leavers (id),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL CHECK (to_state IN ('awaiting_coded_record', 'reconciled', 'in_review',
                'signed_off', 'packed', 'sent', 'receipt_confirmed', 'returned_for_rescan')),
            reason TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'  -- JSON: a sign-off's fingerprint, a receipt's verify result
        )
        """,
        "CREATE INDEX leaver_states_leaver ON leaver_states (leaver_id, id)",
        """
        CREATE TABLE leaver_packs (
            pack_id INTEGER PRIMARY KEY REFERENCES packs (id),
            leaver_id INTEGER NOT NULL REFERENCES leavers (id),
            folder TEXT NOT NULL,
            ods_code TEXT NOT NULL,
            movement_ref TEXT
        )
        """,
        "CREATE INDEX leaver_packs_leaver ON leaver_packs (leaver_id, pack_id)",
    ),
    # 8: transfer packs received from other practices (issue 14, receiving side): one row per pack
    # (by the SHA-256 of its signed pack.pdf), naming the document its pages became, with the signed
    # manifest and signature kept byte for byte and what the sender's cover says, as provenance.
    (
        """
        CREATE TABLE received_packs (
            id INTEGER PRIMARY KEY,
            pack_sha256 TEXT NOT NULL UNIQUE CHECK (length(pack_sha256) = 64),
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            document_id INTEGER NOT NULL REFERENCES documents (id),
            pack_pdf TEXT NOT NULL,  -- archive path of the pack.pdf as signed (pdf/{nhs}/{sha256}.pdf)
            received_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            signer_fingerprint TEXT NOT NULL,
            trusted_by TEXT NOT NULL,
            manifest BLOB NOT NULL,  -- manifest.json as signed
            signature BLOB NOT NULL,  -- manifest.sig
            provenance TEXT NOT NULL DEFAULT '{}'  -- JSON: sender, cover facts, omitted pages, pack pages
        )
        """,
        "CREATE INDEX received_packs_patient ON received_packs (nhs_number, id)",
        "CREATE INDEX received_packs_document ON received_packs (document_id)",
    ),
    # 9: a clinician marks a paper entry as covered by a named coded event (issue 14). Append-only:
    # clearing is a new row with no event. An entry is keyed by its place on the page AND the SHA-256
    # of its date and text, so a cover whose entry reads differently after a re-run is void.
    (
        """
        CREATE TABLE entry_covers (
            id INTEGER PRIMARY KEY,
            nhs_number TEXT NOT NULL REFERENCES patients (nhs_number),
            document_id INTEGER NOT NULL,
            page INTEGER NOT NULL,
            entry INTEGER NOT NULL,  -- 0-based place among the page's entries as reconciliation stores them
            entry_sha256 TEXT NOT NULL CHECK (length(entry_sha256) = 64),
            entry_status TEXT,  -- what lgd said of the entry when it was covered (uncertain, paper-only)
            coded_sha256 TEXT CHECK (coded_sha256 IS NULL OR length(coded_sha256) = 64),  -- NULL: cleared
            event_system TEXT,
            event_code TEXT,
            event_display TEXT,
            event_date TEXT,
            override_id INTEGER REFERENCES overrides (id),  -- the omission this cover proposed, if it completed the page
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            FOREIGN KEY (document_id, page) REFERENCES pages (document_id, number)
        )
        """,
        "CREATE INDEX entry_covers_patient ON entry_covers (nhs_number, document_id, page, entry, id)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
