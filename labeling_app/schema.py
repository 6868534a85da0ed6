"""The label store's schema and its migrations, written for SQLite; `labeling_app.postgres` runs the
same steps in PostgreSQL's types.

Every kind of labeling task (a pair, a rating, a ranking) is a row of `items`; a labeler's claim on one
is a row of `claims` (the queue's working state) and their answer a row of `answers`. Answers are never
updated or deleted: an undo inserts a row in `retractions`, so the history of every judgement can be
audited.
"""

from __future__ import annotations

from labeling_app.errors import LabelingError

SCHEMA_VERSION = 5

# MIGRATIONS[i] takes a store from version i to i + 1. Append; never edit a released step.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE prompts (
        id INTEGER PRIMARY KEY,
        messages TEXT NOT NULL UNIQUE,                 -- JSON list of {"role", "content"}
        created_at REAL NOT NULL
    );
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY,
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        messages TEXT NOT NULL,                        -- JSON list of assistant messages
        provenance TEXT NOT NULL DEFAULT '{}',         -- model, adapter, sampling, logprobs, source
        created_at REAL NOT NULL,
        UNIQUE (prompt_id, messages)
    );
    CREATE TABLE pairs (
        seq INTEGER PRIMARY KEY,                       -- insertion order: the default queue order
        pair_id TEXT NOT NULL UNIQUE,                  -- content hash: re-importing adds nothing
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        response_a INTEGER NOT NULL REFERENCES responses(id),
        response_b INTEGER NOT NULL REFERENCES responses(id),
        gold_choice TEXT CHECK (gold_choice IN ('A', 'B', 'tie', 'both_bad')),
        priority REAL NOT NULL DEFAULT 0,              -- higher first; set by a priority hook
        batch TEXT,                                    -- import tag, e.g. "round-2"
        source TEXT,
        completed INTEGER NOT NULL DEFAULT 0,          -- has k live labels: skipped by the queue's scan
        created_at REAL NOT NULL
    );
    CREATE INDEX pairs_queue ON pairs (completed, priority DESC, seq) WHERE gold_choice IS NULL;
    CREATE TABLE labelers (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('labeler', 'admin')),
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE assignments (
        id INTEGER PRIMARY KEY,
        pair_seq INTEGER NOT NULL REFERENCES pairs(seq),
        labeler TEXT NOT NULL REFERENCES labelers(name),
        shown_order TEXT NOT NULL CHECK (shown_order IN ('AB', 'BA')),
        claimed_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'done', 'skipped', 'expired')),
        UNIQUE (labeler, pair_seq)                     -- a labeler never gets a pair twice
    );
    CREATE INDEX assignments_load ON assignments (pair_seq, status, expires_at);
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        assignment_id INTEGER NOT NULL REFERENCES assignments(id),
        pair_seq INTEGER NOT NULL REFERENCES pairs(seq),
        labeler TEXT NOT NULL REFERENCES labelers(name),
        choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'both_bad')),  -- in stored order
        strength INTEGER NOT NULL CHECK (strength BETWEEN 1 AND 4),
        rationale TEXT NOT NULL DEFAULT '',
        shown_order TEXT NOT NULL CHECK (shown_order IN ('AB', 'BA')),
        seconds REAL NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX labels_pair ON labels (pair_seq);
    CREATE INDEX labels_labeler ON labels (labeler, created_at);
    CREATE TABLE retractions (
        label_id INTEGER PRIMARY KEY REFERENCES labels(id),
        labeler TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE VIEW live_labels AS
        SELECT l.* FROM labels l WHERE NOT EXISTS (SELECT 1 FROM retractions r WHERE r.label_id = l.id);
    """,
    # 1 -> 2: a client's request id per label, so that a retried submit gets its original label back;
    # account lockouts after repeated wrong passwords (every replica refuses a locked account).
    """
    CREATE TABLE lockouts (
        labeler TEXT PRIMARY KEY,
        locked_at REAL NOT NULL,
        until REAL NOT NULL,
        reason TEXT NOT NULL
    );
    ALTER TABLE labels ADD COLUMN request_id TEXT;
    CREATE UNIQUE INDEX labels_request ON labels (labeler, request_id) WHERE request_id IS NOT NULL;
    DROP VIEW live_labels;
    CREATE VIEW live_labels AS
        SELECT l.* FROM labels l WHERE NOT EXISTS (SELECT 1 FROM retractions r WHERE r.label_id = l.id);
    """,
    # 2 -> 3: task kinds beyond pairs (labeling_app/tasks.py): single-response ratings (good/bad, for
    # KTO) and K-way rankings (InstructGPT), with claims and answers on the same rules as pairs.
    """
    CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,                  -- content hash (kind, prompt, responses)
        kind TEXT NOT NULL CHECK (kind IN ('rating', 'ranking')),
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        responses TEXT NOT NULL,                       -- JSON list of response ids, in stored order
        batch TEXT,
        source TEXT,
        priority REAL NOT NULL DEFAULT 0,
        completed INTEGER NOT NULL DEFAULT 0,          -- has k live answers
        created_at REAL NOT NULL
    );
    CREATE INDEX tasks_queue ON tasks (kind, completed, priority DESC, seq);
    CREATE TABLE task_claims (
        id INTEGER PRIMARY KEY,
        task_seq INTEGER NOT NULL REFERENCES tasks(seq),
        labeler TEXT NOT NULL REFERENCES labelers(name),
        shown_order TEXT NOT NULL,                     -- JSON: position i on screen shows stored response [i]
        claimed_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'done', 'skipped', 'expired')),
        UNIQUE (labeler, task_seq)
    );
    CREATE INDEX task_claims_load ON task_claims (task_seq, status, expires_at);
    CREATE TABLE task_answers (
        id INTEGER PRIMARY KEY,
        claim_id INTEGER NOT NULL REFERENCES task_claims(id),
        task_seq INTEGER NOT NULL REFERENCES tasks(seq),
        labeler TEXT NOT NULL REFERENCES labelers(name),
        answer TEXT NOT NULL,                          -- good | bad, or JSON ranks in stored order
        rationale TEXT NOT NULL DEFAULT '',
        seconds REAL NOT NULL,
        created_at REAL NOT NULL,
        request_id TEXT
    );
    CREATE INDEX task_answers_task ON task_answers (task_seq);
    CREATE UNIQUE INDEX task_answers_request ON task_answers (labeler, request_id)
        WHERE request_id IS NOT NULL;
    """,
    # 3 -> 4: what a batch of pairs is for. An evaluation batch (the loop's blind comparison of a new
    # policy with an older one) is labelled like any other but never trains anything and is left out of
    # exports unless asked for; a closed batch's unlabelled pairs are not served any more (an evaluation
    # that has its answer). Batches not listed here are training batches, open.
    """
    CREATE TABLE batches (
        name TEXT PRIMARY KEY,
        purpose TEXT NOT NULL CHECK (purpose IN ('train', 'evaluation')),
        closed_at REAL,
        created_at REAL NOT NULL
    );
    """,
    # 4 -> 5: one queue for every kind of task. Pairs, ratings and rankings become `items` of a `kind`
    # (the responses a JSON list of response ids, in stored order), their claims `claims` and their
    # labels and answers `answers`, kept with the same rules (labeling_app/queue.py). Pairs, their claims
    # and labels keep their ids; ratings and rankings follow them. Shown orders become JSON lists
    # ("AB" -> [0, 1]): screen position i shows stored response [i].
    """
    CREATE TABLE items (
        seq INTEGER PRIMARY KEY,                       -- insertion order: the default queue order
        item_id TEXT NOT NULL UNIQUE,                  -- content hash: re-importing adds nothing
        kind TEXT NOT NULL CHECK (kind IN ('pair', 'rating', 'ranking')),
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        responses TEXT NOT NULL,                       -- JSON list of response ids, in stored order
        gold TEXT,                                     -- the known answer, stored as answers are
        priority REAL NOT NULL DEFAULT 0,              -- higher first; set by a priority hook
        batch TEXT,                                    -- import tag, e.g. "round-2"
        source TEXT,
        completed INTEGER NOT NULL DEFAULT 0,          -- has k live answers: skipped by the queue's scan
        created_at REAL NOT NULL
    );
    CREATE INDEX items_queue ON items (kind, completed, priority DESC, seq) WHERE gold IS NULL;
    CREATE TABLE claims (
        id INTEGER PRIMARY KEY,
        item_seq INTEGER NOT NULL REFERENCES items(seq),
        labeler TEXT NOT NULL REFERENCES labelers(name),
        shown_order TEXT NOT NULL,                     -- JSON: screen position i shows stored response [i]
        claimed_at REAL NOT NULL,
        expires_at REAL NOT NULL,                      -- a skipped claim: when it was skipped
        status TEXT NOT NULL CHECK (status IN ('open', 'done', 'skipped', 'expired')),
        UNIQUE (labeler, item_seq)                     -- a labeler never gets an item twice
    );
    CREATE INDEX claims_load ON claims (item_seq, status, expires_at);
    CREATE INDEX claims_open ON claims (labeler, item_seq) WHERE status = 'open';
    CREATE TABLE answers (
        id INTEGER PRIMARY KEY,
        claim_id INTEGER NOT NULL REFERENCES claims(id),
        item_seq INTEGER NOT NULL REFERENCES items(seq),
        labeler TEXT NOT NULL REFERENCES labelers(name),
        answer TEXT NOT NULL,                          -- in stored order: A | B | tie | both_bad, good |
                                                       -- bad, or a JSON list of ranks
        strength INTEGER CHECK (strength BETWEEN 1 AND 4),   -- how much better (pairs)
        rationale TEXT NOT NULL DEFAULT '',
        shown_order TEXT NOT NULL,
        seconds REAL NOT NULL,
        created_at REAL NOT NULL,
        request_id TEXT
    );
    CREATE INDEX answers_item ON answers (item_seq);
    CREATE INDEX answers_labeler ON answers (labeler, created_at);
    CREATE UNIQUE INDEX answers_request ON answers (labeler, request_id) WHERE request_id IS NOT NULL;
    INSERT INTO items (seq, item_id, kind, prompt_id, responses, gold, priority, batch, source, completed,
                       created_at)
        SELECT seq, pair_id, 'pair', prompt_id, '[' || response_a || ', ' || response_b || ']', gold_choice,
               priority, batch, source, completed, created_at FROM pairs;
    INSERT INTO items (seq, item_id, kind, prompt_id, responses, gold, priority, batch, source, completed,
                       created_at)
        SELECT seq + (SELECT COALESCE(MAX(seq), 0) FROM pairs), task_id, kind, prompt_id, responses, NULL,
               priority, batch, source, completed, created_at FROM tasks;
    INSERT INTO claims (id, item_seq, labeler, shown_order, claimed_at, expires_at, status)
        SELECT id, pair_seq, labeler, CASE shown_order WHEN 'AB' THEN '[0, 1]' ELSE '[1, 0]' END,
               claimed_at, expires_at, status FROM assignments;
    INSERT INTO claims (id, item_seq, labeler, shown_order, claimed_at, expires_at, status)
        SELECT id + (SELECT COALESCE(MAX(id), 0) FROM assignments),
               task_seq + (SELECT COALESCE(MAX(seq), 0) FROM pairs), labeler, shown_order, claimed_at,
               expires_at, status FROM task_claims;
    INSERT INTO answers (id, claim_id, item_seq, labeler, answer, strength, rationale, shown_order, seconds,
                         created_at, request_id)
        SELECT id, assignment_id, pair_seq, labeler, choice, strength, rationale,
               CASE shown_order WHEN 'AB' THEN '[0, 1]' ELSE '[1, 0]' END, seconds, created_at, request_id
        FROM labels;
    INSERT INTO answers (id, claim_id, item_seq, labeler, answer, strength, rationale, shown_order, seconds,
                         created_at, request_id)
        SELECT a.id + (SELECT COALESCE(MAX(id), 0) FROM labels),
               a.claim_id + (SELECT COALESCE(MAX(id), 0) FROM assignments),
               a.task_seq + (SELECT COALESCE(MAX(seq), 0) FROM pairs), a.labeler, a.answer, NULL,
               a.rationale, c.shown_order, a.seconds, a.created_at,
               CASE WHEN EXISTS (SELECT 1 FROM labels l WHERE l.labeler = a.labeler
                                 AND l.request_id = a.request_id)
                    THEN 'task:' || a.request_id ELSE a.request_id END
        FROM task_answers a JOIN task_claims c ON c.id = a.claim_id;
    DROP VIEW live_labels;
    ALTER TABLE retractions RENAME TO label_retractions;
    CREATE TABLE retractions (
        answer_id INTEGER PRIMARY KEY REFERENCES answers(id),
        labeler TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    INSERT INTO retractions (answer_id, labeler, created_at)
        SELECT label_id, labeler, created_at FROM label_retractions;
    DROP TABLE label_retractions;
    DROP TABLE labels;
    DROP TABLE assignments;
    DROP TABLE pairs;
    DROP TABLE task_answers;
    DROP TABLE task_claims;
    DROP TABLE tasks;
    CREATE VIEW live_answers AS
        SELECT a.* FROM answers a WHERE NOT EXISTS (SELECT 1 FROM retractions r WHERE r.answer_id = a.id);
    """,
]


def schema_version(db, conn) -> int:
    if not db.has_table(conn, "meta"):
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(db, target: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Bring the schema of `db` (`labeling_app.database.Database`) up to `target` (`SCHEMA_VERSION`), one
    write transaction per step (replicas starting together: the first migrates, the others see it done)."""
    start = version = schema_version(db, db.connect())
    if version > SCHEMA_VERSION:
        raise LabelingError(f"the store has schema version {version}, newer than this align-toolkit "
                            f"({SCHEMA_VERSION}); upgrade align-toolkit to open it.")
    while version < target:
        with db.write() as conn:
            if schema_version(db, conn) == version:
                db.run_script(conn, MIGRATIONS[version])
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version + 1),))
        version = schema_version(db, db.connect())
    return start, version
