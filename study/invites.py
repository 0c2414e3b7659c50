"""Invite links: one rater row and one secret token per link; revocation."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from study.db import immediate, iso_from_ms, log_event, new_token, now_ms, open_db


@dataclass(frozen=True)
class Invite:
    """One invited rater."""

    rater_id: str
    token: str
    url: str


def invite_url(base_url: str, token: str) -> str:
    """Return `base_url` with `token=` added to its query string."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {base_url!r} must start with http:// or https:// and name a host")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "token"] + [("token", token)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def create_invites(db_path: str | Path, n: int, base_url: str) -> list[Invite]:
    """Create `n` invited raters in one transaction and return their links."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, not {n}")
    invite_url(base_url, "check")  # refuse a bad base URL before writing anything
    db = open_db(db_path)
    out = []
    try:
        with immediate(db):
            now = iso_from_ms(now_ms())
            for _ in range(n):
                rater_id, token = "r-" + secrets.token_hex(5), new_token()
                db.execute(
                    "INSERT INTO raters (rater_id, token, source, created_at) VALUES (?, ?, 'invite', ?)",
                    [rater_id, token, now],
                )
                log_event(db, "invited", rater_id)
                out.append(Invite(rater_id, token, invite_url(base_url, token)))
    finally:
        db.conn.close()
    return out


def revoke(db_path: str | Path, token_or_rater: str) -> str:
    """Withdraw a rater's link (by token or rater id); return the rater id. Their answers are kept."""
    db = open_db(db_path, create=False)
    try:
        with immediate(db):
            row = db.execute(
                "SELECT rater_id FROM raters WHERE token = ? OR rater_id = ?", [token_or_rater, token_or_rater]
            ).fetchone()
            if row is None:
                raise KeyError(f"no rater with token or id {token_or_rater!r}")
            db.execute(
                "UPDATE raters SET revoked_at = ? WHERE rater_id = ? AND revoked_at IS NULL", [iso_from_ms(now_ms()), row[0]]
            )
            log_event(db, "revoked", row[0])
    finally:
        db.conn.close()
    return row[0]
